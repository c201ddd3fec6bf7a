/* The `dense` KV strategy: every position's K (per K head, after RoPE) and V
 * (per V head) rows, in f16 (the default), f32 or bf16 ("type=..." option).
 * f16 halves the cache of f32 (perplexity on SmolLM2-135M: +0.07% at 1k,
 * -0.16% at 2k, docs/kv-strategies.md); type=f32 keeps the exact rows.
 *
 * A saved cache restores in the type it was saved in: a state created
 * without a type option adopts the blob's type on load (session files of
 * older versions hold f32 rows, the default then), so the session continues
 * exactly as saved; with an explicit type another type is
 * SIGMA_E_MISMATCH.
 *
 * Storage is head-major: per layer, K is [n_k][cap][d_qk] and V is
 * [n_v][cap][d_v], so the rows of one head are contiguous and attention
 * streams through them (with position-major rows a task read one head's
 * piece out of every n_k*d_qk-element row; on Sigma-1.5B a V row is 4 KB,
 * so every position touched a new page, where the hardware prefetchers
 * stop: attention at 16k took twice as long; docs/performance.md). The rows
 * live in the shared row store as two head-major planes: capacity grows by
 * doubling up to n_ctx (each head's rows move to their new place) and the
 * serialized rows stay position-major (see dense_save).
 *
 * Attention streams over the rows with an online softmax, one task per
 * (query, K head): the query heads sharing a K head read each block of its
 * rows once (sg_kv_attend_exact in common.c, which topv shares). */
#include <string.h>

#include "../core/core.h"
#include "kv.h"

enum { DENSE_K, DENSE_V };

typedef struct dense_state {
    sg_kv_base b;
    sg_kv_type type;
    int type_set;                /* type given in the options (else load adopts the blob's) */
    size_t esize;                /* bytes per stored element */
    size_t k_row, v_row;         /* elements per token and layer */
    uint32_t *n_pos;             /* per layer */
} dense_state;

/* the row store's view of a layer: u32 n_pos, then n_pos K and V rows */
static void dense_words(const void *owner, uint32_t l, uint32_t *w) {
    w[0] = ((const dense_state *)owner)->n_pos[l];
}
static int dense_rows(const void *owner, const uint32_t *w, uint64_t *rows) {
    const dense_state *s = owner;
    if (w[0] > s->b.lay.n_ctx) return SIGMA_E_FORMAT;
    rows[DENSE_K] = rows[DENSE_V] = w[0];
    return SIGMA_OK;
}
static void dense_set(void *owner, uint32_t l, const uint32_t *w) {
    ((dense_state *)owner)->n_pos[l] = w[0];
}

static void dense_destroy(void *state) {
    dense_state *s = state;
    if (!s) return;
    void *own[1] = {s->n_pos};
    sg_kv_state_free(s, own, 1);
}

static size_t type_size(sg_kv_type t) { return t == SG_KV_F32 ? 4 : 2; }

/* The row store's planes for rows of `esize`-byte elements: two head-major
 * planes, 64 positions at first, at most n_ctx. */
static void dense_planes(const dense_state *s, size_t esize, sg_kv_plane pl[2]) {
    const sigma_kv_layout *lay = &s->b.lay;
    pl[DENSE_K] = sg_kv_plane_words(s->k_row, (uint32_t)esize);
    pl[DENSE_V] = sg_kv_plane_words(s->v_row, (uint32_t)esize);
    pl[DENSE_K].heads = lay->n_k_heads;
    pl[DENSE_V].heads = lay->n_v_heads;
    for (int i = 0; i < 2; i++) {
        pl[i].min_rows = 64;
        pl[i].max_rows = lay->n_ctx;
    }
}

static int dense_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                        char *err, size_t err_size) {
    /* type: the index of its name is the sg_kv_type; f16 by default */
    static const char *const type_names[] = {"f32", "f16", "bf16", NULL};
    const char *const *const names[1] = {type_names};
    sg_kv_opt o[1] = {{"type", 0, 0, SG_KV_F16, 0, 0}};
    int st = sg_kv_create_begin("dense", lay, options, o, names, 1, state, err, err_size);
    if (st != SIGMA_OK) return st;
    dense_state *s = sg_kv_state_new(user, lay, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    s->type = (sg_kv_type)o[0].val;
    s->type_set = o[0].set;
    s->esize = type_size(s->type);
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->n_pos = sg_calloc(&s->b.alloc, lay->n_layers, sizeof *s->n_pos);
    sg_kv_plane pl[2];
    dense_planes(s, s->esize, pl);
    st = sg_kv_store_init(&s->b, pl, 2, 1, dense_words, dense_rows, NULL, dense_set);
    return sg_kv_create_end(s, st == SIGMA_OK && s->n_pos, state, dense_destroy);
}

static int dense_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                        const float *v) {
    dense_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v))) return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG; /* no holes */
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->b.lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    int st = sg_kv_store_reserve_all(&s->b.st, layer, s->n_pos[layer], (size_t)end);
    if (st != SIGMA_OK) return st;
    const sigma_kv_layout *L = &s->b.lay;
    sg_kv_scatter(&s->b.st, layer, DENSE_K, s->type, pos0, n, k, L->n_k_heads, L->d_qk);
    sg_kv_scatter(&s->b.st, layer, DENSE_V, s->type, pos0, n, v, L->n_v_heads, L->d_v);
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

static int dense_attend(void *state, const sigma_kv_attend_args *a) {
    dense_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[a->layer]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    sg_kv_attend_exact(&s->b, DENSE_K, DENSE_V, s->type, a);
    return SIGMA_OK;
}

static int dense_truncate(void *state, uint32_t n_pos) {
    dense_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        if (s->n_pos[l] > n_pos) s->n_pos[l] = n_pos;
    return SIGMA_OK;
}

/* Serialized form (little-endian): "DKV1", u32 type, u32 n_layers,
 * u32 k_row, u32 v_row; then per layer (the row store): u32 n_pos, n_pos K
 * rows, n_pos V rows, in the stored element type (f16/bf16 as 2-byte
 * words). A row is one position's heads in order (position-major, as the
 * rows were appended): the store gathers the head-major planes into rows on
 * save and scatters them back on load. */
static int dense_save(void *state, sigma_write_fn wf, void *ctx) {
    dense_state *s = state;
    if (!s || !wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    sg_kv_w_bytes(&w, "DKV1", 4);
    sg_kv_w_u32(&w, (uint32_t)s->type);
    sg_kv_w_u32(&w, s->b.lay.n_layers);
    sg_kv_w_u32(&w, (uint32_t)s->k_row);
    sg_kv_w_u32(&w, (uint32_t)s->v_row);
    return sg_kv_store_save(&s->b.st, &w);
}

/* All-or-nothing (the row store validates everything before it swaps).
 * A blob of another type: SIGMA_E_MISMATCH if the type was given at
 * create, else the state adopts it (rows of another size: the store loads
 * into planes of that size and swaps them in only on success). */
static int dense_load(void *state, const void *data, size_t size) {
    dense_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    const uint8_t *m = sg_kv_r_bytes(&r, 4, 1);
    uint32_t type = sg_kv_r_u32(&r), n_layers = sg_kv_r_u32(&r), k_row = sg_kv_r_u32(&r),
             v_row = sg_kv_r_u32(&r);
    if (r.bad || memcmp(m, "DKV1", 4) != 0) return SIGMA_E_FORMAT;
    if (n_layers != s->b.lay.n_layers || k_row != s->k_row || v_row != s->v_row)
        return SIGMA_E_MISMATCH;
    if (type == (uint32_t)s->type) return sg_kv_store_load(&s->b.st, &r);
    if (s->type_set || type > (uint32_t)SG_KV_BF16) return SIGMA_E_MISMATCH;
    sg_kv_plane pl[2];
    dense_planes(s, type_size((sg_kv_type)type), pl);
    int st = sg_kv_store_load_planes(&s->b.st, pl, &r);
    if (st != SIGMA_OK) return st;
    s->type = (sg_kv_type)type;
    s->esize = type_size(s->type);
    return SIGMA_OK;
}

void sg_kv_dense_init(sigma_kv_strategy *k) {
    *k = (sigma_kv_strategy){.version = SIGMA_KV_STRATEGY_VERSION, .name = "dense", .unbounded = 0,
                             .create = dense_create, .destroy = dense_destroy, .append = dense_append,
                             .attend = dense_attend, .truncate = dense_truncate,
                             .bytes_used = sg_kv_bytes_used, .save = dense_save, .load = dense_load};
}
