/* The `window` KV strategy (StreamingLLM): the first `sinks` positions
 * (attention sinks) plus a sliding window of the `window` most recent
 * positions (the query's own included). Options: sinks=4, window=256,
 * unbounded=1 (0: refuse positions past n_ctx, like dense).
 *
 * Positions: K rows are cached as they arrive, RoPE'd at their original
 * absolute positions, and never re-rotated. Relative distances between a
 * query and the window are therefore exact; the distance to the sinks keeps
 * growing, past the trained context in long generations (the StreamingLLM
 * paper re-assigns cache positions instead; we keep the original ones so the
 * strategy needs no knowledge of the model's RoPE and a window covering the
 * whole context is exactly dense attention).
 *
 * Storage per layer (two planes of the row store, K and V rows in f32): the
 * sinks first (positions 0..sinks-1), then a run of consecutive positions
 * run0..n_pos-1. Run
 * rows no query can see any more are dropped when there are window/8 of
 * them (one move per window/8 tokens), so memory is bounded by
 * sinks + window + window/8 + n_batch rows (sinks + window + window/8 + 1
 * when decoding). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

enum { WIN_K, WIN_V };

typedef struct window_state {
    sg_kv_base b;
    uint32_t sinks, window, unbounded;
    size_t k_row, v_row;          /* floats per row */
    size_t slack;                 /* droppable rows tolerated before a move */
    size_t max_rows;              /* buffer bound */
    uint32_t *n_pos, *run0;       /* per layer */
    float *scratch;
    size_t per_thread;
} window_state;

static size_t n_sink_rows(const window_state *s, uint32_t l) {
    return s->n_pos[l] < s->sinks ? s->n_pos[l] : s->sinks;
}

static size_t n_rows(const window_state *s, uint32_t l) {
    return n_sink_rows(s, l) + (s->n_pos[l] > s->sinks ? s->n_pos[l] - s->run0[l] : 0);
}

/* the row store's view of a layer: u32 n_pos, run0, rows; rows K and V rows */
static void window_words(const void *owner, uint32_t l, uint32_t *w) {
    const window_state *s = owner;
    w[0] = s->n_pos[l];
    w[1] = s->run0[l];
    w[2] = (uint32_t)n_rows(s, l);
}
static int window_rows(const void *owner, const uint32_t *w, uint64_t *rows) {
    const window_state *s = owner;
    uint32_t n = w[0], run0 = w[1];
    if (!s->unbounded && n > s->b.lay.n_ctx) return SIGMA_E_FORMAT;
    if (n <= s->sinks) {
        if (run0 != s->sinks || w[2] != n) return SIGMA_E_FORMAT;
    } else {
        uint64_t need = (uint64_t)n + 1 > s->window ? (uint64_t)n + 1 - s->window : 0;
        if (need < s->sinks) need = s->sinks;
        if (run0 < s->sinks || run0 > need || (uint64_t)w[2] != (uint64_t)s->sinks + (n - run0))
            return SIGMA_E_FORMAT;
    }
    if (w[2] > s->max_rows) return SIGMA_E_FORMAT;
    rows[WIN_K] = rows[WIN_V] = w[2];
    return SIGMA_OK;
}
static void window_set(void *owner, uint32_t l, const uint32_t *w) {
    window_state *s = owner;
    s->n_pos[l] = w[0];
    s->run0[l] = w[1];
}

static void window_destroy(void *state) {
    window_state *s = state;
    if (!s) return;
    void *own[3] = {s->n_pos, s->run0, s->scratch};
    sg_kv_state_free(s, own, 3);
}

static int window_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                         char *err, size_t err_size) {
    sg_kv_opt o[3] = {{"sinks", 0, 1u << 20, 4, 0, 0},
                      {"window", 1, 1u << 22, 256, 0, 0},
                      {"unbounded", 0, 1, 1, 0, 0}};
    int st = sg_kv_create_begin("window", lay, options, o, NULL, 3, state, err, err_size);
    if (st != SIGMA_OK) return st;
    window_state *s = sg_kv_state_new(user, lay, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    s->sinks = o[0].val;
    s->window = o[1].val;
    s->unbounded = o[2].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->slack = s->window / 8 ? s->window / 8 : 1;
    s->max_rows = (size_t)s->sinks + s->window + s->slack + s->b.lay.n_batch;
    s->per_thread = (size_t)s->sinks + s->window;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&s->b.alloc, L, sizeof *s->n_pos);
    s->run0 = sg_calloc(&s->b.alloc, L, sizeof *s->run0);
    s->scratch = sg_calloc(&s->b.alloc, s->b.n_threads, s->per_thread * sizeof(float));
    sg_kv_plane pl[2] = {sg_kv_plane_words(s->k_row, 4), sg_kv_plane_words(s->v_row, 4)};
    pl[WIN_K].max_rows = pl[WIN_V].max_rows = s->max_rows;
    st = sg_kv_store_init(&s->b, pl, 2, 3, window_words, window_rows, NULL, window_set);
    int ok = st == SIGMA_OK && s->n_pos && s->run0 && s->scratch;
    for (uint32_t l = 0; ok && l < L; l++) s->run0[l] = s->sinks;
    return sg_kv_create_end(s, ok, state, window_destroy);
}

/* Can layer l be cut back to n positions? Queries from n on need the run
 * positions max(sinks, n-window+1) .. n-1. */
static int can_truncate(const window_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l] || n <= s->sinks) return 1;
    uint64_t need = (uint64_t)n + 1 > s->window ? (uint64_t)n + 1 - s->window : 0;
    if (need < s->sinks) need = s->sinks;
    return s->run0[l] <= need;
}

static void do_truncate(window_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l]) return;
    s->n_pos[l] = n;
    if (n <= s->sinks) s->run0[l] = s->sinks;
}

static int window_truncate(void *state, uint32_t n_pos) {
    window_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        if (!can_truncate(s, l, n_pos)) return SIGMA_E_UNSUPPORTED;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) do_truncate(s, l, n_pos);
    return SIGMA_OK;
}

static int window_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                         const float *v) {
    window_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v)) || n > s->b.lay.n_batch)
        return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG;
    uint64_t end = (uint64_t)pos0 + n;
    if (end > UINT32_MAX || (!s->unbounded && end > s->b.lay.n_ctx)) return SIGMA_E_CONTEXT_FULL;
    if (!can_truncate(s, layer, pos0)) return SIGMA_E_UNSUPPORTED;
    do_truncate(s, layer, pos0);
    size_t rows = n_rows(s, layer);
    /* drop the run rows no future query needs once there are `slack` of
     * them (or the new rows would not fit) */
    if (pos0 > s->sinks) {
        uint64_t need = (uint64_t)pos0 + 1 > s->window ? (uint64_t)pos0 + 1 - s->window : 0;
        if (need < s->sinks) need = s->sinks;
        if (need > s->run0[layer] &&
            (need - s->run0[layer] >= s->slack || rows + n > s->max_rows)) {
            size_t drop = (size_t)(need - s->run0[layer]);
            size_t at = s->sinks, keep = rows - at - drop;
            sg_kv_store_move_all(&s->b.st, layer, at, at + drop, keep);
            s->run0[layer] = (uint32_t)need;
            rows -= drop;
        }
    }
    if (rows + n > s->max_rows) return SIGMA_E_INTERNAL;
    int st = sg_kv_store_reserve_all(&s->b.st, layer, rows, rows + n);
    if (st != SIGMA_OK) return st;
    if (n) {
        memcpy(sg_kv_row(&s->b.st, layer, WIN_K, rows), k, (size_t)n * s->k_row * sizeof(float));
        memcpy(sg_kv_row(&s->b.st, layer, WIN_V, rows), v, (size_t)n * s->v_row * sizeof(float));
    }
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

static void window_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const sg_kv_job *j = ctx;
    window_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t layer = j->a->layer;
    float *sc = s->scratch + (size_t)tid * s->per_thread;
    const float *kb = (const float *)(const void *)sg_kv_row(&s->b.st, layer, WIN_K, 0);
    const float *vb = (const float *)(const void *)sg_kv_row(&s->b.st, layer, WIN_V, 0);
    uint32_t run0 = s->run0[layer];
    for (size_t t = begin; t < end; t++) {
        sg_kv_qhead x = sg_kv_qhead_at(L, j->a, t / L->n_q_heads, (uint32_t)(t % L->n_q_heads));
        const float *q = x.q, *kh0 = kb + (size_t)x.kh * L->d_qk, *vh0 = vb + (size_t)x.vh * L->d_v;
        float *out = x.out;
        uint64_t p = x.pos;
        uint64_t lo = p + 1 > s->window ? p + 1 - s->window : 0;
        if (lo < s->sinks) lo = s->sinks;
        if (lo < run0) lo = run0; /* defensive: dropped rows are gone */
        /* the model's sliding window (a->window) hides positions < pw,
         * sinks included */
        uint64_t pw = j->a->window && p + 1 > j->a->window ? p + 1 - j->a->window : 0;
        if (lo < pw) lo = pw;
        size_t s0 = pw < s->sinks ? (size_t)pw : s->sinks;
        if (p < s->sinks || (run0 == s->sinks && lo == s->sinks)) {
            /* contiguous rows pw..p: exactly dense attention */
            const void *vr = vh0 + (size_t)pw * s->v_row;
            sg_attn_group_capped(kern, 1, q, 0, kh0 + (size_t)pw * s->k_row, s->k_row, &vr,
                                 s->v_row, SG_KV_F32, (size_t)(p + 1 - pw), L->d_qk, L->d_v,
                                 j->a->scale, j->a->softcap, out, 0);
            continue;
        }
        /* sink rows s0..sinks-1, then run rows for positions lo..p */
        size_t r0 = s->sinks + (size_t)(lo - run0), r1 = s->sinks + (size_t)(p - run0) + 1;
        size_t m = 0;
        for (size_t r = s0; r < s->sinks; r++)
            sc[m++] = kern->dot_f32(q, kh0 + r * s->k_row, L->d_qk) * j->a->scale;
        for (size_t r = r0; r < r1; r++)
            sc[m++] = kern->dot_f32(q, kh0 + r * s->k_row, L->d_qk) * j->a->scale;
        if (j->a->softcap > 0.0f) sg_softcap(sc, m, j->a->softcap);
        sigma_kernel_softmax_f32(sc, m);
        memset(out, 0, (size_t)L->d_v * sizeof(float));
        m = 0;
        for (size_t r = s0; r < s->sinks; r++) kern->axpy_f32(out, sc[m++], vh0 + r * s->v_row, L->d_v);
        for (size_t r = r0; r < r1; r++) kern->axpy_f32(out, sc[m++], vh0 + r * s->v_row, L->d_v);
    }
}

static int window_attend(void *state, const sigma_kv_attend_args *a) {
    window_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if (a->n_queries == 0) return SIGMA_OK;
    uint32_t l = a->layer;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[l]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    /* the first query's window must still be there */
    if (a->pos0 >= s->sinks) {
        uint64_t lo = (uint64_t)a->pos0 + 1 > s->window ? (uint64_t)a->pos0 + 1 - s->window : 0;
        if (lo < s->sinks) lo = s->sinks;
        if (lo < s->run0[l]) return SIGMA_E_INVALID_ARG;
    }
    sg_kv_job j = {s, a, 0};
    sg_pool_run(s->b.exec->pool, (size_t)a->n_queries * s->b.lay.n_q_heads, 1, window_task, &j);
    return SIGMA_OK;
}

/* Format: header (tag "WIND", options: sinks, window, unbounded), then per
 * layer (the row store) u32 n_pos, u32 run0, u32 rows, rows K rows and rows
 * V rows (f32). */
static int window_save(void *state, sigma_write_fn wf, void *ctx) {
    window_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[3] = {s->sinks, s->window, s->unbounded};
    return sg_kv_store_save_tagged(&s->b.st, "WIND", opts, 3, wf, ctx);
}

static int window_load(void *state, const void *data, size_t size) {
    window_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[3] = {s->sinks, s->window, s->unbounded};
    return sg_kv_store_load_tagged(&s->b.st, "WIND", opts, 3, 3, NULL, data, size);
}

void sg_kv_window_init(sigma_kv_strategy *k) {
    /* unbounded: lets the session go past n_ctx; append enforces n_ctx when
     * the session was created with unbounded=0 */
    *k = (sigma_kv_strategy){.version = SIGMA_KV_STRATEGY_VERSION, .name = "window", .unbounded = 1,
                             .create = window_create, .destroy = window_destroy, .append = window_append,
                             .attend = window_attend, .truncate = window_truncate,
                             .bytes_used = sg_kv_bytes_used, .save = window_save, .load = window_load};
}
