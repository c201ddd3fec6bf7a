/* kv: the built-in KV-cache strategies, their registry and shared helpers.
 * Strategies implement the public sigma_kv_strategy interface
 * (include/sigma/sigma.h); depends on core and base only. */
#ifndef SG_KV_H
#define SG_KV_H

#include "../core/core.h"

/* What the session gives a built-in strategy: a session copies the built-in
 * table and sets its `user` to an sg_kv_env that outlives the strategy
 * state. With user == NULL a built-in runs single-threaded on the portable
 * kernels. */
typedef struct sg_kv_env {
    const sg_exec *exec;        /* kernels and thread pool */
    const sg_alloc *alloc;      /* NULL = C library */
} sg_kv_env;

/* Fill *out with the built-in strategy called `name` ("dense", "quant",
 * "window", "h2o", "topv"); returns 1, or 0 if there is none. (Filled in
 * code rather than kept as const tables: a table of pointers would be
 * writable relocated data in a PIC build.) */
int sg_kv_find(const char *name, sigma_kv_strategy *out);

void sg_kv_dense_init(sigma_kv_strategy *out);
void sg_kv_quant_init(sigma_kv_strategy *out);
void sg_kv_window_init(sigma_kv_strategy *out);
void sg_kv_h2o_init(sigma_kv_strategy *out);
void sg_kv_topv_init(sigma_kv_strategy *out);

/* ---- shared helpers (lib/kv/common.c) ------------------------------------ */

/* Allocator, kernels and threads of a strategy state. Lives inside the
 * (heap) state: `exec` may point at exec_local, so never copy it. */
typedef struct sg_kv_base {
    sg_alloc alloc;
    const sg_exec *exec;
    sg_kernels kern_local;
    sg_exec exec_local;
    sigma_kv_layout lay;
    uint32_t n_threads;
} sg_kv_base;

/* Validate a layout (heads divide, dims bounded); message into err. */
int sg_kv_check_layout(const char *strategy, const sigma_kv_layout *lay, char *err,
                       size_t err_size);
/* The allocator an env asks for (copied into *a). */
void sg_kv_env_alloc(const void *user, sg_alloc *a);
/* Fill b (already inside its heap state) from the env and layout. */
void sg_kv_base_init(sg_kv_base *b, const void *user, const sg_alloc *a,
                     const sigma_kv_layout *lay);

/* One numeric option: key, accepted range, default (val on input), and
 * whether it must be a power of two. `set` is written 1 when given. */
typedef struct sg_kv_opt {
    const char *key;
    uint32_t min, max;
    uint32_t val;
    int pow2;
    int set;
} sg_kv_opt;

/* Parse "key=value,key=value" (NULL or "" = defaults; empty items are
 * skipped). Unknown keys and out-of-range or malformed values fail with
 * SIGMA_E_INVALID_ARG and a message naming the strategy. */
int sg_kv_parse_options(const char *strategy, const char *options, sg_kv_opt *opts, size_t n,
                        char *err, size_t err_size);
/* The same with named values: names[i] (names may be NULL) is NULL for a
 * numeric option or a NULL-terminated list of the words option i accepts;
 * its value is then the index of the word given (min/max/pow2 unused). */
int sg_kv_parse_options_named(const char *strategy, const char *options, sg_kv_opt *opts,
                              const char *const *const *names, size_t n, char *err,
                              size_t err_size);

/* Little-endian serialization. Header shared by quant/window/h2o/topv:
 *   "SGKV", tag[4], u32 format version (1), u32 n_layers, n_q, n_k, n_v,
 *   d_qk, d_v, u32 n_opts, n_opts u32 option values; then strategy data. */
#define SG_KV_HDR_FIXED 40u
void sg_kv_put32(uint8_t *p, uint32_t v);
uint32_t sg_kv_get32(const uint8_t *p);

/* A writer that remembers the first error. */
typedef struct sg_kv_wr {
    sigma_write_fn w;
    void *ctx;
    int st;
} sg_kv_wr;
void sg_kv_w_bytes(sg_kv_wr *w, const void *p, size_t n);
void sg_kv_w_u32(sg_kv_wr *w, uint32_t v);
void sg_kv_w_header(sg_kv_wr *w, const char tag[4], const sigma_kv_layout *lay,
                    const uint32_t *opts, uint32_t n_opts);

/* A bounds-checked reader: every read past the end sets `bad` and returns
 * 0 / NULL. */
typedef struct sg_kv_rd {
    const uint8_t *p;
    size_t size, off;
    int bad;
} sg_kv_rd;
uint32_t sg_kv_r_u32(sg_kv_rd *r);
/* n elements of `elem` bytes (overflow-checked), or NULL. */
const uint8_t *sg_kv_r_bytes(sg_kv_rd *r, uint64_t n, uint64_t elem);
/* Check the header: SIGMA_E_FORMAT for a wrong magic/tag/version or a
 * truncated header, SIGMA_E_MISMATCH for another layout or other options. */
int sg_kv_r_header(sg_kv_rd *r, const char tag[4], const sigma_kv_layout *lay,
                   const uint32_t *opts, uint32_t n_opts);
/* The same for a strategy whose option list grew from n_old to n_opts
 * options (n_old <= n_opts): a header with any count c in n_old..n_opts
 * (written before the later options existed, or by a strategy that leaves
 * trailing options at their old values out) is accepted and read as if
 * options c..n_opts-1 had the values old_vals[c-n_old .. n_opts-n_old). */
int sg_kv_r_header_compat(sg_kv_rd *r, const char tag[4], const sigma_kv_layout *lay,
                          const uint32_t *opts, uint32_t n_opts, uint32_t n_old,
                          const uint32_t *old_vals);

/* Arrays of 1-, 2- or 4-byte words in little-endian order (converted on
 * big-endian hosts). */
void sg_kv_w_words(sg_kv_wr *w, const void *p, size_t n, size_t wsize);
void sg_kv_copy_words(void *dst, const uint8_t *src, size_t n, size_t wsize);

/* Grow a buffer to at least `bytes` (contents kept, doubling). */
int sg_kv_reserve(const sg_alloc *a, uint8_t **buf, size_t *cap, size_t used, size_t bytes);


#endif
