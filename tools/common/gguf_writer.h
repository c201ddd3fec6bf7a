/* A small GGUF v3 writer for tools and tests (not part of libsigma's API):
 * collect metadata and tensors, then write a file or a memory image.
 * Owned data: the writer copies keys, strings and tensor data it is given. */
#ifndef SGT_GGUF_WRITER_H
#define SGT_GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_writer gw_writer;

/* GGUF metadata value types (GGUF numbering). */
enum {
    GW_U8 = 0, GW_I8 = 1, GW_U16 = 2, GW_I16 = 3, GW_U32 = 4, GW_I32 = 5, GW_F32 = 6,
    GW_BOOL = 7, GW_STRING = 8, GW_ARRAY = 9, GW_U64 = 10, GW_I64 = 11, GW_F64 = 12
};

gw_writer *gw_new(void);                  /* NULL on OOM */
void gw_free(gw_writer *w);
void gw_set_alignment(gw_writer *w, uint32_t alignment); /* also writes general.alignment if != 32 */
void gw_set_version(gw_writer *w, uint32_t version);     /* 2 or 3 (default 3) */

/* Metadata, in insertion order. Return 0 or -1 (OOM). */
int gw_kv_u32(gw_writer *w, const char *key, uint32_t v);
int gw_kv_i32(gw_writer *w, const char *key, int32_t v);
int gw_kv_u64(gw_writer *w, const char *key, uint64_t v);
int gw_kv_f32(gw_writer *w, const char *key, float v);
int gw_kv_bool(gw_writer *w, const char *key, int v);
int gw_kv_str(gw_writer *w, const char *key, const char *v);
/* Any scalar type given as raw little-endian bytes of its size. */
int gw_kv_scalar(gw_writer *w, const char *key, uint32_t type, const void *v);
/* Array of scalars (elem_type not STRING/ARRAY): n elements of raw bytes. */
int gw_kv_arr(gw_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
/* Array of NUL-terminated strings. */
int gw_kv_arr_str(gw_writer *w, const char *key, const char *const *strs, uint64_t n);
/* Raw pre-encoded value bytes (for nested arrays and malformed-file tests):
 * writes key, then `type`, then `bytes` verbatim. */
int gw_kv_raw(gw_writer *w, const char *key, uint32_t type, const void *bytes, size_t n);

/* A tensor: ne[0] is the contiguous dimension; data of nbytes (already in
 * the tensor type's layout) is copied. */
int gw_tensor(gw_writer *w, const char *name, uint32_t type, uint32_t n_dims,
              const uint64_t *ne, const void *data, size_t nbytes);

/* Serialise: to a malloc'd buffer (caller frees) or a file. 0 or -1. */
int gw_write_mem(gw_writer *w, uint8_t **out, size_t *out_size);
int gw_write_file(gw_writer *w, const char *path);

#endif
