#define _POSIX_C_SOURCE 200809L
#include "base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *default_alloc(void *user, size_t size, size_t align) {
    (void)user;
    void *p = NULL;
    if (align < sizeof(void *)) align = sizeof(void *);
    if (posix_memalign(&p, align, size) != 0) return NULL;
    return p;
}

static void default_free(void *user, void *ptr) {
    (void)user;
    free(ptr);
}

void sg_alloc_init(sg_alloc *a, const sigma_allocator *pub) {
    a->user = NULL;
    a->alloc = default_alloc;
    a->free = default_free;
    if (pub && pub->struct_size >= offsetof(sigma_allocator, free) + sizeof(pub->free) &&
        pub->alloc && pub->free) {
        a->user = pub->user;
        a->alloc = pub->alloc;
        a->free = pub->free;
    }
}

void *sg_malloc_aligned(const sg_alloc *a, size_t size, size_t align) {
    if (size == 0) size = 1;
    /* Refuse sizes no allocator could satisfy; keeps absurd requests from
     * reaching the host's allocator. */
    if (size > ((size_t)1 << 46)) return NULL;
    return a->alloc(a->user, size, align);
}

void *sg_malloc(const sg_alloc *a, size_t size) { return sg_malloc_aligned(a, size, 64); }

void *sg_calloc(const sg_alloc *a, size_t n, size_t size) {
    size_t total;
    if (!sg_mul_size(n, size, &total)) return NULL;
    void *p = sg_malloc(a, total);
    if (p) memset(p, 0, total);
    return p;
}

void sg_free(const sg_alloc *a, void *p) {
    if (p) a->free(a->user, p);
}

char *sg_strndup(const sg_alloc *a, const char *s, size_t n) {
    size_t total;
    if (!sg_add_size(n, 1, &total)) return NULL;
    char *p = sg_malloc_aligned(a, total, 8);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void sg_logf(const sg_log *log, sigma_log_level level, const char *fmt, ...) {
    if (!log || !log->fn || level > log->level) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log->fn(log->user, level, buf);
}

int sg_verror(sg_err *err, int status, const char *fmt, va_list ap) {
    if (err) vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return status;
}

int sg_error(sg_err *err, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sg_verror(err, status, fmt, ap);
    va_end(ap);
    return status;
}

void sg_err_clear(sg_err *err) {
    if (err) err->msg[0] = '\0';
}

double sg_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

uint32_t sg_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 1024) n = 1024;
    return (uint32_t)n;
}

void sg_params_merge(void *dst, size_t dst_size, const void *src, uint32_t src_size) {
    size_t n = src_size < dst_size ? src_size : dst_size;
    memcpy(dst, src, n);
    /* The struct_size field itself keeps the library's size. */
    uint32_t sz = (uint32_t)dst_size;
    memcpy(dst, &sz, sizeof sz);
}

/* ---- growable buffers ----------------------------------------------------- */

/* Doubling from 4096 bytes up to `max` bytes (need <= max). */
static int reserve_bytes(const sg_alloc *a, void **buf, size_t *cap, size_t used, size_t need,
                         size_t max) {
    if (need <= *cap) return SIGMA_OK;
    if (need > max) return SIGMA_E_NOMEM;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need) {
        if (nc > SIZE_MAX / 2) return SIGMA_E_NOMEM;
        nc *= 2;
    }
    if (nc > max) nc = max;
    void *p = sg_malloc(a, nc);
    if (!p) return SIGMA_E_NOMEM;
    if (used && *buf) memcpy(p, *buf, used);
    sg_free(a, *buf);
    *buf = p;
    *cap = nc;
    return SIGMA_OK;
}

int sg_reserve(const sg_alloc *a, void **buf, size_t *cap, size_t used, size_t need) {
    return reserve_bytes(a, buf, cap, used, need, SIZE_MAX);
}

int sg_reserve_n_max(const sg_alloc *a, void **buf, size_t *cap_elems, size_t used_elems,
                     size_t need_elems, size_t elem, size_t max_elems) {
    size_t cap_b, used_b, need_b, max_b;
    if (!elem || !sg_mul_size(*cap_elems, elem, &cap_b) || !sg_mul_size(used_elems, elem, &used_b) ||
        !sg_mul_size(need_elems, elem, &need_b))
        return SIGMA_E_NOMEM;
    if (!sg_mul_size(max_elems, elem, &max_b)) max_b = SIZE_MAX;
    int st = reserve_bytes(a, buf, &cap_b, used_b, need_b, max_b);
    if (st == SIGMA_OK) *cap_elems = cap_b / elem;
    return st;
}

int sg_reserve_n(const sg_alloc *a, void **buf, size_t *cap_elems, size_t used_elems,
                 size_t need_elems, size_t elem) {
    return sg_reserve_n_max(a, buf, cap_elems, used_elems, need_elems, elem, SIZE_MAX);
}

int sg_buf_append(sg_buf *b, const void *data, size_t n) {
    size_t need;
    int st = sg_add_size(b->len, n, &need) ? sg_reserve(b->alloc, (void **)&b->data, &b->cap, b->len, need)
                                           : SIGMA_E_NOMEM;
    if (st != SIGMA_OK) {
        b->failed = 1;
        return st;
    }
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    return SIGMA_OK;
}

int sg_buf_write_cb(void *ctx, const void *data, size_t n) { return sg_buf_append(ctx, data, n); }

void sg_buf_free(sg_buf *b) {
    sg_free(b->alloc, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int sg_params_init(void *params, size_t struct_size, size_t min_size, const void *defaults,
                   size_t dsize) {
    if (!params || struct_size < min_size || struct_size < sizeof(uint32_t) ||
        struct_size > UINT32_MAX)
        return SIGMA_E_INVALID_ARG;
    memset(params, 0, struct_size);
    memcpy(params, defaults, struct_size < dsize ? struct_size : dsize);
    uint32_t sz = (uint32_t)struct_size;
    memcpy(params, &sz, sizeof sz);
    return SIGMA_OK;
}
