/* kv: the built-in KV-cache strategies (what to keep, how to attend) over one shared row store.
 * Strategies implement the public sigma_kv_strategy interface
 * (include/sigma/sigma.h). Each strategy file holds only its policy; the
 * rows themselves (per-layer storage, growth, save and all-or-nothing load,
 * little-endian) live in the row store (store.c), options, layout checks
 * and the blob header in common.c. Depends on core and base only. */
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

/* ---- attention tasks ---------------------------------------------------- */

/* The context of an attend task (sg_pool_run): the strategy state, the
 * call, and the query for strategies that attend query by query. */
typedef struct sg_kv_job {
    void *s;
    const sigma_kv_attend_args *a;
    size_t qi;
} sg_kv_job;

/* Query qi, query head h of an attend call: its position, the K and V
 * heads it reads (sg_head_map), its q row and out row. */
typedef struct sg_kv_qhead {
    uint64_t pos;
    uint32_t kh, vh;
    const float *q;
    float *out;
} sg_kv_qhead;

static inline sg_kv_qhead sg_kv_qhead_at(const sigma_kv_layout *L, const sigma_kv_attend_args *a,
                                         size_t qi, uint32_t h) {
    sg_kv_qhead x;
    x.pos = (uint64_t)a->pos0 + qi;
    x.kh = sg_head_map(h, L->n_q_heads, L->n_k_heads);
    x.vh = sg_head_map(h, L->n_q_heads, L->n_v_heads);
    x.q = a->q + (qi * L->n_q_heads + h) * L->d_qk;
    x.out = a->out + (qi * L->n_q_heads + h) * L->d_v;
    return x;
}

/* ---- shared helpers (lib/kv/common.c) ------------------------------------ */

typedef struct sg_kv_base sg_kv_base; /* below, after the row store */


/* One numeric option: key, accepted range, default (val on input), and
 * whether it must be a power of two. `set` is written 1 when given. */
typedef struct sg_kv_opt {
    const char *key;
    uint32_t min, max;
    uint32_t val;
    int pow2;
    int set;
} sg_kv_opt;

/* Validate a layout (heads divide, dims bounded); message into err. */
int sg_kv_check_layout(const char *strategy, const sigma_kv_layout *lay, char *err,
                       size_t err_size);
/* The start of every create: *state = NULL, the layout checked, the
 * options parsed (names as in sg_kv_parse_options, may be NULL). */
int sg_kv_create_begin(const char *strategy, const sigma_kv_layout *lay, const char *options,
                       sg_kv_opt *opts, const char *const *const *names, size_t n, void **state,
                       char *err, size_t err_size);
/* A zeroed strategy state of `size` bytes whose first member is its
 * sg_kv_base, filled from the env (`user`) and layout; NULL if out of
 * memory. */
void *sg_kv_state_new(void *user, const sigma_kv_layout *lay, size_t size);
/* The end of every create: with ok, *state = s and SIGMA_OK; otherwise
 * destroy(s) and SIGMA_E_NOMEM (s may be NULL). */
int sg_kv_create_end(void *s, int ok, void **state, void (*destroy)(void *));
/* Free such a state (NULL: nothing): its row store, the n arrays own[]
 * (from its allocator, NULL allowed), then the state. */
void sg_kv_state_free(void *state, void *const *own, size_t n);
/* bytes_used of every built-in: the bytes of its live rows. */
size_t sg_kv_bytes_used(void *state);

/* Parse "key=value,key=value" (NULL or "" = defaults; empty items are
 * skipped). Unknown keys and out-of-range or malformed values fail with
 * SIGMA_E_INVALID_ARG and a message naming the strategy and quoting the
 * item. names[i] (names may be NULL) is NULL for a numeric option or a
 * NULL-terminated list of the words option i accepts; its value is then the
 * index of the word given (min/max/pow2 unused). */
int sg_kv_parse_options(const char *strategy, const char *options, sg_kv_opt *opts,
                        const char *const *const *names, size_t n, char *err,
                        size_t err_size);

/* Serialization, little-endian through the base codec (sg_put_le32 ...).
 * Header shared by quant/window/h2o/topv:
 *   "SGKV", tag[4], u32 format version (1), u32 n_layers, n_q, n_k, n_v,
 *   d_qk, d_v, u32 n_opts, n_opts u32 option values; then the row store's
 *   layers (below). dense keeps its own "DKV1" header. */

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
 * truncated header, SIGMA_E_MISMATCH for another layout or other options.
 * For a strategy whose option list grew from n_old to n_opts options
 * (n_old <= n_opts; n_old = n_opts when it never grew): a header with any
 * count c in n_old..n_opts (written before the later options existed, or by
 * a strategy that leaves trailing options at their old values out) is
 * accepted and read as if options c..n_opts-1 had the values
 * old_vals[c-n_old .. n_opts-n_old). */
int sg_kv_r_header_compat(sg_kv_rd *r, const char tag[4], const sigma_kv_layout *lay,
                          const uint32_t *opts, uint32_t n_opts, uint32_t n_old,
                          const uint32_t *old_vals);
/* The options a blob was saved with (read as sg_kv_r_header_compat reads
 * them, out[0..n_opts)), without comparing them: what a strategy created
 * without some options uses to adopt the blob's values (it validates them,
 * then loads with those values in its option list). SIGMA_E_FORMAT,
 * SIGMA_E_UNSUPPORTED as the header check; SIGMA_E_MISMATCH for another
 * layout. n_opts <= SG_KV_OPTS_MAX. */
#define SG_KV_OPTS_MAX 16
int sg_kv_blob_opts(const void *data, size_t size, const char tag[4], const sigma_kv_layout *lay,
                    uint32_t n_opts, uint32_t n_old, const uint32_t *old_vals, uint32_t *out);

/* Arrays of 1-, 2- or 4-byte words in little-endian order (converted on
 * big-endian hosts). */
void sg_kv_w_words(sg_kv_wr *w, const void *p, size_t n, size_t wsize);
void sg_kv_copy_words(void *dst, const uint8_t *src, size_t n, size_t wsize);

/* ---- the row store (lib/kv/store.c) ---------------------------------------
 * What every built-in keeps per layer, in up to SG_KV_PLANES_MAX planes of
 * fixed-size rows (K rows, V rows, quantized blocks, positions, scores). A
 * plane's row is one or two runs of words (n1 words of w1 bytes, then n2 of
 * w2), serialized little-endian. Position-major planes keep row r at
 * r * row bytes; a head-major plane (heads > 1, one run) keeps each head's
 * part of the rows contiguous, [head][cap][row/heads], and still serializes
 * position-major rows. Capacity (rows, per layer and plane) grows through
 * sg_reserve_n (doubling), at least min_rows, at most max_rows.
 *
 * Every strategy state starts with an sg_kv_base, which holds the store
 * (b.st). Which rows are live is the strategy's policy: it keeps its own
 * per-layer counters and tells the store through four callbacks, called
 * with the state. Serialized, a layer is n_words u32 counters, then each
 * plane's rows in plane order:
 *   words(owner, l, w)   the layer's counters (save);
 *   rows(owner, w, n)    validate counters read from a blob and give each
 *                        plane's row count (SIGMA_E_FORMAT if invalid);
 *                        also used on save to count the rows;
 *   check(owner, w, d)   optional: validate the rows' serialized bytes
 *                        d[plane] (little-endian);
 *   set(owner, l, w)     adopt the counters of a loaded layer.
 * Load parses and validates the whole blob first, builds new buffers aside,
 * and only then frees the old ones and calls set: a bad blob or a failed
 * allocation leaves the strategy untouched. */
#define SG_KV_PLANES_MAX 4
#define SG_KV_WORDS_MAX 4

typedef struct sg_kv_plane {
    size_t n1, n2;          /* words per row in the two runs (n2 = 0: one run) */
    uint32_t w1, w2;        /* their sizes in bytes: 1, 2 or 4 */
    uint32_t heads;         /* > 1: head-major (n2 = 0, heads divides n1) */
    size_t min_rows;        /* first allocation */
    size_t max_rows;        /* capacity bound (rows never exceed it) */
    size_t row;             /* bytes per row (set by sg_kv_store_init) */
} sg_kv_plane;

/* A position-major plane of n words of wsize bytes per row, no bounds. */
sg_kv_plane sg_kv_plane_words(size_t n, uint32_t wsize);

typedef void (*sg_kv_words_fn)(const void *owner, uint32_t layer, uint32_t *w);
typedef int (*sg_kv_rows_fn)(const void *owner, const uint32_t *w, uint64_t *rows);
typedef int (*sg_kv_check_fn)(const void *owner, const uint32_t *w, const uint8_t *const *data);
typedef void (*sg_kv_set_fn)(void *owner, uint32_t layer, const uint32_t *w);

typedef struct sg_kv_store {
    sg_kv_base *b;          /* the state it is in: allocator, layout, callbacks' argument */
    uint32_t n_planes, n_words;
    sg_kv_plane plane[SG_KV_PLANES_MAX];
    uint8_t **buf;          /* [layer * n_planes + plane] */
    size_t *cap;            /* rows allocated, same index */
    sg_kv_words_fn words;   /* their owner argument: the strategy state (starts with b) */
    sg_kv_rows_fn rows;
    sg_kv_check_fn check;   /* may be NULL */
    sg_kv_set_fn set;
} sg_kv_store;

/* Set up b->st, empty (no rows allocated); SIGMA_E_NOMEM. The callbacks
 * get the state b starts. sg_kv_state_free frees it also after a failure. */
int sg_kv_store_init(sg_kv_base *b, const sg_kv_plane *planes, uint32_t n_planes,
                     uint32_t n_words, sg_kv_words_fn words, sg_kv_rows_fn rows,
                     sg_kv_check_fn check, sg_kv_set_fn set);
void sg_kv_store_free(sg_kv_store *st);
/* Room for `need` rows in plane p of layer l, the first `used` rows (of
 * every head) kept; SIGMA_E_NOMEM (nothing changed), SIGMA_E_INTERNAL if
 * need > max_rows. sg_kv_store_reserve_all: every plane. */
int sg_kv_store_reserve(sg_kv_store *st, uint32_t l, uint32_t p, size_t used, size_t need);
int sg_kv_store_reserve_all(sg_kv_store *st, uint32_t l, size_t used, size_t need);
/* Move n rows from row src to row dst (overlap allowed) in plane p, or in
 * every plane (position-major planes). */
void sg_kv_store_move(sg_kv_store *st, uint32_t l, uint32_t p, size_t dst, size_t src, size_t n);
void sg_kv_store_move_all(sg_kv_store *st, uint32_t l, size_t dst, size_t src, size_t n);
/* Bytes of the live rows (every layer and plane). */
size_t sg_kv_store_bytes(const sg_kv_store *st);
/* The layers (counters and rows) through w / from r->off to the end. */
int sg_kv_store_save(const sg_kv_store *st, sg_kv_wr *w);
int sg_kv_store_load(sg_kv_store *st, sg_kv_rd *r);
/* The same load with other plane descriptions (st->n_planes of them, as for
 * sg_kv_store_init; same counters and callbacks), for a blob whose rows
 * have another size (dense: another element type). All-or-nothing: only a
 * load that succeeds replaces the store's planes (before it calls set);
 * otherwise rows, planes and counters stay as they were. The rows and
 * check callbacks must not depend on the planes' row sizes. */
int sg_kv_store_load_planes(sg_kv_store *st, const sg_kv_plane *planes, sg_kv_rd *r);
/* A whole blob with the shared header (tag, options; n_old/old_vals as in
 * sg_kv_r_header_compat, n_old = n_opts when the list never grew). */
int sg_kv_store_save_tagged(const sg_kv_store *st, const char tag[4], const uint32_t *opts,
                            uint32_t n_opts, sigma_write_fn wf, void *ctx);
int sg_kv_store_load_tagged(sg_kv_store *st, const char tag[4], const uint32_t *opts,
                            uint32_t n_opts, uint32_t n_old, const uint32_t *old_vals,
                            const void *data, size_t size);

/* Row r of plane p of layer l (position-major), and row r of head h
 * (head-major). */
static inline uint8_t *sg_kv_row(const sg_kv_store *st, uint32_t l, uint32_t p, size_t r) {
    size_t i = (size_t)l * st->n_planes + p;
    return st->buf[i] + r * st->plane[p].row;
}
static inline uint8_t *sg_kv_head_row(const sg_kv_store *st, uint32_t l, uint32_t p, uint32_t h,
                                      size_t r) {
    size_t i = (size_t)l * st->n_planes + p;
    return st->buf[i] + ((size_t)h * st->cap[i] + r) * (st->plane[p].row / st->plane[p].heads);
}

/* What every strategy state starts with: allocator, kernels and threads,
 * layout, and its rows. Lives inside the (heap) state: `exec` may point at
 * exec_local and `st` points back at it, so never copy it. */
struct sg_kv_base {
    sg_alloc alloc;
    const sg_exec *exec;
    sg_kernels kern_local;
    sg_exec exec_local;
    sigma_kv_layout lay;
    uint32_t n_threads;
    sg_kv_store st;
};

/* ---- head-major K and V planes (common.c): dense's rows, also topv's ---- */

/* Convert n positions' rows src (position-major: n rows of heads * d
 * floats) to `type` and store them from row pos0 of head-major plane p of
 * layer l (room reserved by the caller). */
void sg_kv_scatter(sg_kv_store *st, uint32_t l, uint32_t p, sg_kv_type type, size_t pos0,
                   uint32_t n, const float *src, uint32_t heads, uint32_t d);

/* Exact attention of call a (every query over all its rows; a sliding
 * window reads only its last `window` rows) over layer a->layer's
 * head-major K plane kp and V plane vp of b's store, rows of `type`: one
 * task per (query, K head) on b's pool, the query heads sharing a K head
 * reading each block of its rows once (sg_attn_group_capped); the group is
 * split into more tasks only when there are fewer than two per thread.
 * Per-head results do not depend on the split or the grouping. The caller
 * has validated a. */
void sg_kv_attend_exact(const sg_kv_base *b, uint32_t kp, uint32_t vp, sg_kv_type type,
                        const sigma_kv_attend_args *a);

#endif
