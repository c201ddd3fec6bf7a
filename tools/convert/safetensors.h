/* Safetensors reading for sigma-convert: single files or sharded checkpoints
 * (model.safetensors.index.json). Files are mmapped; every header field is
 * validated against the file before use (inputs may be hostile). */
#ifndef CV_SAFETENSORS_H
#define CV_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define CV_ST_MAX_DIMS 8

typedef enum cv_st_dtype {
    CV_ST_F32, CV_ST_F16, CV_ST_BF16, /* convertible */
    CV_ST_F64, CV_ST_I64, CV_ST_U64, CV_ST_I32, CV_ST_U32, CV_ST_I16, CV_ST_U16,
    CV_ST_I8, CV_ST_U8, CV_ST_BOOL, CV_ST_F8_E4M3, CV_ST_F8_E5M2
} cv_st_dtype;

typedef struct cv_st_tensor {
    char *name;
    cv_st_dtype dtype;
    uint32_t n_dims;
    uint64_t shape[CV_ST_MAX_DIMS]; /* row-major: shape[n_dims-1] is contiguous */
    uint64_t n_elems;
    const uint8_t *data;            /* inside the mapped file */
    uint64_t nbytes;
    const char *file;               /* file name it came from */
    int used;                       /* set by the converter */
} cv_st_tensor;

typedef struct cv_st_file {
    char *path;
    char *name;
    void *map;
    size_t size;
} cv_st_file;

typedef struct cv_st {
    cv_st_file *files;
    size_t n_files;
    cv_st_tensor *t; /* sorted by name */
    size_t n;
} cv_st;

/* Open the checkpoint's weights in dir: model.safetensors.index.json if
 * present, else model.safetensors. 0 or -1 (reported). */
int cv_st_open_dir(cv_st *st, const char *dir);
/* Open one safetensors file (adds its tensors). 0 or -1 (reported). */
int cv_st_add_file(cv_st *st, const char *path, const char *name);
/* Sort and check for duplicate names; call after adding files. */
int cv_st_finish(cv_st *st);
void cv_st_close(cv_st *st);

const cv_st_tensor *cv_st_find(const cv_st *st, const char *name);
const char *cv_st_dtype_name(cv_st_dtype d);
uint32_t cv_st_dtype_size(cv_st_dtype d);

/* Read element range [i0, i0+n) of a float tensor (F32/F16/BF16) into f32. */
void cv_st_read_f32(const cv_st_tensor *t, uint64_t i0, uint64_t n, float *dst);

#endif
