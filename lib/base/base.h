/* base: what every part needs and nothing else: allocation through the
 * host's allocator, per-object error messages, logging, overflow-safe sizes,
 * the little-endian byte codec, growable buffers, version and status
 * strings (version.c). Depends on nothing but the public header; nothing
 * here has global state. */
#ifndef SG_BASE_H
#define SG_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sigma/sigma.h"

#define SG_ERRMSG_MAX 512

#if defined(__GNUC__) || defined(__clang__)
#  define SG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define SG_PRINTF(a, b)
#endif

/* The allocator an object family uses (copied from the model params). */
typedef struct sg_alloc {
    void *user;
    void *(*alloc)(void *user, size_t size, size_t align);
    void (*free)(void *user, void *ptr);
} sg_alloc;

/* Initialise from a public allocator (NULL = C library). */
void sg_alloc_init(sg_alloc *a, const sigma_allocator *pub);
/* 64-byte aligned; NULL on failure or size 0 overflow. */
void *sg_malloc(const sg_alloc *a, size_t size);
void *sg_calloc(const sg_alloc *a, size_t n, size_t size);
void *sg_malloc_aligned(const sg_alloc *a, size_t size, size_t align);
void sg_free(const sg_alloc *a, void *p);
/* Duplicate a string / byte range (NUL-terminated copy). */
char *sg_strndup(const sg_alloc *a, const char *s, size_t n);

/* Logging sink (copied from the model params). */
typedef struct sg_log {
    sigma_log_fn fn;
    void *user;
    sigma_log_level level;
} sg_log;

void sg_logf(const sg_log *log, sigma_log_level level, const char *fmt, ...) SG_PRINTF(3, 4);

/* A per-object error message. */
typedef struct sg_err {
    char msg[SG_ERRMSG_MAX];
} sg_err;

/* Format a message into err (may be NULL) and return status (for
 * `return sg_error(err, SIGMA_E_FORMAT, "...")`). */
int sg_error(sg_err *err, int status, const char *fmt, ...) SG_PRINTF(3, 4);
int sg_verror(sg_err *err, int status, const char *fmt, va_list ap);
void sg_err_clear(sg_err *err);

/* Overflow-checked arithmetic: return false on overflow. */
static inline bool sg_add_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_add_overflow(a, b, r);
}
static inline bool sg_mul_u64(uint64_t a, uint64_t b, uint64_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}
static inline bool sg_add_size(size_t a, size_t b, size_t *r) {
    return !__builtin_add_overflow(a, b, r);
}
static inline bool sg_mul_size(size_t a, size_t b, size_t *r) {
    return !__builtin_mul_overflow(a, b, r);
}

/* Monotonic clock in milliseconds. */
double sg_now_ms(void);

/* Number of online CPUs (>= 1). */
uint32_t sg_cpu_count(void);

/* Read the first `struct_size` bytes of a caller's params struct over a
 * defaults copy: handles older (shorter) and newer (longer) callers. */
void sg_params_merge(void *dst, size_t dst_size, const void *src, uint32_t src_size);

/* The body of every public *_params_init(): fill the caller's struct of
 * struct_size bytes with the first bytes of `defaults` (dsize bytes; fields
 * the library does not know are zeroed) and set its leading uint32_t
 * struct_size. SIGMA_E_INVALID_ARG if params is NULL or struct_size is below
 * min_size or above UINT32_MAX. */
int sg_params_init(void *params, size_t struct_size, size_t min_size, const void *defaults,
                   size_t dsize);

/* ---- little-endian byte codec (the one codec every file format uses) ---- */
static inline void sg_put_le16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void sg_put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void sg_put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t sg_get_le16(const uint8_t *p) {
    return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint32_t sg_get_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t sg_get_le64(const uint8_t *p) {
    return (uint64_t)sg_get_le32(p) | (uint64_t)sg_get_le32(p + 4) << 32;
}

/* ---- a growable buffer on an allocator (the one growth policy) ---------- */

/* Grow *buf (capacity *cap bytes, first `used` bytes live) to hold at least
 * `need` bytes, doubling from 4096; contents kept. SIGMA_E_NOMEM on overflow
 * or allocation failure (the old buffer is then untouched). */
int sg_reserve(const sg_alloc *a, void **buf, size_t *cap, size_t used, size_t need);
/* The same counted in elements of `elem` bytes (overflow-checked). */
int sg_reserve_n(const sg_alloc *a, void **buf, size_t *cap_elems, size_t used_elems,
                 size_t need_elems, size_t elem);
/* The same for a buffer that never holds more than max_elems (>= need):
 * the doubling stops at exactly max_elems, so a full buffer wastes nothing. */
int sg_reserve_n_max(const sg_alloc *a, void **buf, size_t *cap_elems, size_t used_elems,
                     size_t need_elems, size_t elem, size_t max_elems);

/* An append-only byte buffer; `failed` remembers the first failure so a
 * sequence of appends can be checked once. */
typedef struct sg_buf {
    const sg_alloc *alloc;
    uint8_t *data;
    size_t len, cap;
    int failed;
} sg_buf;

int sg_buf_append(sg_buf *b, const void *data, size_t n);
/* sigma_write_fn-shaped adapter: ctx is an sg_buf. */
int sg_buf_write_cb(void *ctx, const void *data, size_t n);
void sg_buf_free(sg_buf *b);

#endif
