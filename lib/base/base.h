/* Internal foundation shared by every part of libsigma: allocation through
 * the host's allocator, per-object error messages, logging, and overflow-safe
 * size arithmetic. Nothing here has global state. */
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

#endif
