/* A hardened GGUF (v2/v3) reader. Every offset, size, count and length read
 * from the file is validated against the file size before use; a malformed
 * file gives SIGMA_E_FORMAT with a message naming what is wrong. */
#ifndef SG_GGUF_H
#define SG_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/base.h"
#include "../core/tensor.h"

typedef enum sg_gguf_vtype {
    SG_GGUF_U8 = 0, SG_GGUF_I8 = 1, SG_GGUF_U16 = 2, SG_GGUF_I16 = 3,
    SG_GGUF_U32 = 4, SG_GGUF_I32 = 5, SG_GGUF_F32 = 6, SG_GGUF_BOOL = 7,
    SG_GGUF_STRING = 8, SG_GGUF_ARRAY = 9, SG_GGUF_U64 = 10, SG_GGUF_I64 = 11,
    SG_GGUF_F64 = 12
} sg_gguf_vtype;

/* A string inside the file image (not NUL-terminated). */
typedef struct sg_str {
    const char *ptr;
    uint64_t len;
} sg_str;

/* A metadata value. Scalars are decoded; arrays point into the image. */
typedef struct sg_gguf_value {
    uint32_t type;               /* sg_gguf_vtype */
    union {
        uint64_t u;              /* U8..U64, BOOL */
        int64_t i;               /* I8..I64 */
        double f;                /* F32, F64 */
        sg_str s;                /* STRING */
        struct {
            uint32_t elem_type;  /* sg_gguf_vtype; nested ARRAY allowed */
            uint64_t count;
            const uint8_t *data; /* first element in the image */
            uint64_t nbytes;     /* bytes the elements occupy */
        } arr;
    } v;
} sg_gguf_value;

typedef struct sg_gguf_kv {
    char *key;                   /* NUL-terminated copy */
    sg_gguf_value value;
} sg_gguf_kv;

typedef struct sg_gguf {
    sg_alloc alloc;
    const uint8_t *base;         /* the whole file image */
    uint64_t size;
    int mapped;                  /* 1: munmap at close, 2: sg_free, 0: borrowed */
    uint32_t version;
    uint64_t n_kv;
    sg_gguf_kv *kv;
    uint64_t n_tensors;
    sg_tensor *tensors;          /* names are NUL-terminated copies */
    uint64_t alignment;
    uint64_t data_offset;        /* start of the tensor data section */
} sg_gguf;

/* Open from a file (mmap or read) or a borrowed memory image. */
int sg_gguf_open_file(const sg_alloc *a, const char *path, int use_mmap, sg_gguf **out,
                      sg_err *err);
int sg_gguf_open_memory(const sg_alloc *a, const void *data, size_t size, sg_gguf **out,
                        sg_err *err);
void sg_gguf_close(sg_gguf *g);
/* Give back the resident pages of bytes [p, p + n) of a memory-mapped
 * image (whole pages inside the range only) after they were copied: the
 * mapping stays valid and reads fault the pages in again from the file.
 * Nothing for read or borrowed images. */
void sg_gguf_release_pages(const sg_gguf *g, const void *p, uint64_t n);

const sg_gguf_kv *sg_gguf_find(const sg_gguf *g, const char *key);
const sg_tensor *sg_gguf_tensor(const sg_gguf *g, const char *name);

/* Typed getters: SIGMA_OK, SIGMA_E_NOT_FOUND (absent) or SIGMA_E_FORMAT
 * (present with a wrong type / out of range; message in err). Integer
 * getters accept any integer type whose value fits. */
/* Size in bytes of one scalar of GGUF value type t (0 for string, array or
 * an unknown type). */
uint64_t sg_gguf_scalar_size(uint32_t t);

int sg_gguf_get_u32(const sg_gguf *g, const char *key, uint32_t *out, sg_err *err);
int sg_gguf_get_f32(const sg_gguf *g, const char *key, float *out, sg_err *err);
int sg_gguf_get_bool(const sg_gguf *g, const char *key, bool *out, sg_err *err);
int sg_gguf_get_str(const sg_gguf *g, const char *key, sg_str *out, sg_err *err);
/* An array of elem_type (checked); returns count and the element data. */
int sg_gguf_get_arr(const sg_gguf *g, const char *key, uint32_t elem_type,
                    uint64_t *count, const uint8_t **data, sg_err *err);

/* Walk an array of strings (validated at open): call with *pos = data of the
 * array and get successive strings; no bounds checks needed after open. */
static inline sg_str sg_gguf_next_str(const uint8_t **pos) {
    uint64_t len;
    __builtin_memcpy(&len, *pos, 8);
    sg_str s = {(const char *)*pos + 8, len};
    *pos += 8 + len;
    return s;
}

#endif
