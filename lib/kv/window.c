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
 * Storage per layer: one buffer of rows, the sinks first (positions
 * 0..sinks-1), then a run of consecutive positions run0..n_pos-1. Run
 * rows no query can see any more are dropped when there are window/8 of
 * them (one move per window/8 tokens), so memory is bounded by
 * sinks + window + window/8 + n_batch rows (sinks + window + window/8 + 1
 * when decoding). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

typedef struct window_state {
    sg_kv_base b;
    uint32_t sinks, window, unbounded;
    size_t k_row, v_row;          /* floats per row */
    size_t slack;                 /* droppable rows tolerated before a move */
    size_t max_rows;              /* buffer bound */
    uint32_t *n_pos, *run0;       /* per layer */
    uint8_t **k, **v;
    size_t *kcap, *vcap;
    float *scratch;
    size_t per_thread;
} window_state;

static size_t n_sink_rows(const window_state *s, uint32_t l) {
    return s->n_pos[l] < s->sinks ? s->n_pos[l] : s->sinks;
}

static size_t n_rows(const window_state *s, uint32_t l) {
    return n_sink_rows(s, l) + (s->n_pos[l] > s->sinks ? s->n_pos[l] - s->run0[l] : 0);
}

static void window_destroy(void *state) {
    window_state *s = state;
    if (!s) return;
    sg_alloc a = s->b.alloc;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        if (s->k) sg_free(&a, s->k[l]);
        if (s->v) sg_free(&a, s->v[l]);
    }
    sg_free(&a, s->k);
    sg_free(&a, s->v);
    sg_free(&a, s->kcap);
    sg_free(&a, s->vcap);
    sg_free(&a, s->n_pos);
    sg_free(&a, s->run0);
    sg_free(&a, s->scratch);
    sg_free(&a, s);
}

static int window_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                         char *err, size_t err_size) {
    if (!state) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    int st = sg_kv_check_layout("window", lay, err, err_size);
    if (st != SIGMA_OK) return st;
    sg_kv_opt o[3] = {{"sinks", 0, 1u << 20, 4, 0, 0},
                      {"window", 1, 1u << 22, 256, 0, 0},
                      {"unbounded", 0, 1, 1, 0, 0}};
    if ((st = sg_kv_parse_options("window", options, o, 3, err, err_size)) != SIGMA_OK) return st;
    sg_alloc a;
    sg_kv_env_alloc(user, &a);
    window_state *s = sg_calloc(&a, 1, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    sg_kv_base_init(&s->b, user, &a, lay);
    s->sinks = o[0].val;
    s->window = o[1].val;
    s->unbounded = o[2].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->slack = s->window / 8 ? s->window / 8 : 1;
    s->max_rows = (size_t)s->sinks + s->window + s->slack + s->b.lay.n_batch;
    s->per_thread = (size_t)s->sinks + s->window;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&a, L, sizeof *s->n_pos);
    s->run0 = sg_calloc(&a, L, sizeof *s->run0);
    s->k = sg_calloc(&a, L, sizeof *s->k);
    s->v = sg_calloc(&a, L, sizeof *s->v);
    s->kcap = sg_calloc(&a, L, sizeof *s->kcap);
    s->vcap = sg_calloc(&a, L, sizeof *s->vcap);
    s->scratch = sg_calloc(&a, s->b.n_threads, s->per_thread * sizeof(float));
    if (!s->n_pos || !s->run0 || !s->k || !s->v || !s->kcap || !s->vcap || !s->scratch) {
        window_destroy(s);
        return SIGMA_E_NOMEM;
    }
    for (uint32_t l = 0; l < L; l++) s->run0[l] = s->sinks;
    *state = s;
    return SIGMA_OK;
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
    size_t kb = s->k_row * sizeof(float), vb = s->v_row * sizeof(float);
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
            memmove(s->k[layer] + at * kb, s->k[layer] + (at + drop) * kb, keep * kb);
            memmove(s->v[layer] + at * vb, s->v[layer] + (at + drop) * vb, keep * vb);
            s->run0[layer] = (uint32_t)need;
            rows -= drop;
        }
    }
    if (rows + n > s->max_rows) return SIGMA_E_INTERNAL;
    int st = sg_kv_reserve(&s->b.alloc, &s->k[layer], &s->kcap[layer], rows * kb, (rows + n) * kb);
    if (st == SIGMA_OK)
        st = sg_kv_reserve(&s->b.alloc, &s->v[layer], &s->vcap[layer], rows * vb, (rows + n) * vb);
    if (st != SIGMA_OK) return st;
    if (n) {
        memcpy(s->k[layer] + rows * kb, k, (size_t)n * kb);
        memcpy(s->v[layer] + rows * vb, v, (size_t)n * vb);
    }
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

typedef struct window_job {
    window_state *s;
    const sigma_kv_attend_args *a;
} window_job;

static void window_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const window_job *j = ctx;
    window_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t layer = j->a->layer;
    float *sc = s->scratch + (size_t)tid * s->per_thread;
    const float *kb = (const float *)(const void *)s->k[layer];
    const float *vb = (const float *)(const void *)s->v[layer];
    uint32_t run0 = s->run0[layer];
    for (size_t t = begin; t < end; t++) {
        size_t qi = t / L->n_q_heads;
        uint32_t h = (uint32_t)(t % L->n_q_heads);
        uint32_t kh = h / (L->n_q_heads / L->n_k_heads);
        uint32_t vh = h / (L->n_q_heads / L->n_v_heads);
        const float *q = j->a->q + (qi * L->n_q_heads + h) * L->d_qk;
        float *out = j->a->out + (qi * L->n_q_heads + h) * L->d_v;
        const float *kh0 = kb + (size_t)kh * L->d_qk;
        const float *vh0 = vb + (size_t)vh * L->d_v;
        uint64_t p = (uint64_t)j->a->pos0 + qi;
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
    window_job j = {s, a};
    sg_pool_run(s->b.exec->pool, (size_t)a->n_queries * s->b.lay.n_q_heads, 1, window_task, &j);
    return SIGMA_OK;
}

static size_t window_bytes_used(void *state) {
    window_state *s = state;
    if (!s) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        total += n_rows(s, l) * (s->k_row + s->v_row) * sizeof(float);
    return total;
}

/* Format: header (tag "WIND", options: sinks, window, unbounded), then per
 * layer u32 n_pos, u32 run0, u32 rows, rows K rows and rows V rows (f32). */
static int window_save(void *state, sigma_write_fn wf, void *ctx) {
    window_state *s = state;
    if (!s || !wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    uint32_t opts[3] = {s->sinks, s->window, s->unbounded};
    sg_kv_w_header(&w, "WIND", &s->b.lay, opts, 3);
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        size_t rows = n_rows(s, l);
        sg_kv_w_u32(&w, s->n_pos[l]);
        sg_kv_w_u32(&w, s->run0[l]);
        sg_kv_w_u32(&w, (uint32_t)rows);
        sg_kv_w_words(&w, s->k[l], rows * s->k_row, 4);
        sg_kv_w_words(&w, s->v[l], rows * s->v_row, 4);
    }
    return w.st;
}

static int window_load(void *state, const void *data, size_t size) {
    window_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    uint32_t opts[3] = {s->sinks, s->window, s->unbounded};
    int st = sg_kv_r_header(&r, "WIND", &s->b.lay, opts, 3);
    if (st != SIGMA_OK) return st;
    uint32_t L = s->b.lay.n_layers;
    size_t hdr = r.off;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n = sg_kv_r_u32(&r), run0 = sg_kv_r_u32(&r), rows = sg_kv_r_u32(&r);
        if (r.bad) return SIGMA_E_FORMAT;
        if (!s->unbounded && n > s->b.lay.n_ctx) return SIGMA_E_FORMAT;
        if (n <= s->sinks) {
            if (run0 != s->sinks || rows != n) return SIGMA_E_FORMAT;
        } else {
            uint64_t need = (uint64_t)n + 1 > s->window ? (uint64_t)n + 1 - s->window : 0;
            if (need < s->sinks) need = s->sinks;
            if (run0 < s->sinks || run0 > need || (uint64_t)rows != (uint64_t)s->sinks + (n - run0))
                return SIGMA_E_FORMAT;
        }
        if (rows > s->max_rows) return SIGMA_E_FORMAT;
        sg_kv_r_bytes(&r, (uint64_t)rows * s->k_row, 4);
        sg_kv_r_bytes(&r, (uint64_t)rows * s->v_row, 4);
        if (r.bad) return SIGMA_E_FORMAT;
    }
    if (r.off != size) return SIGMA_E_FORMAT;
    uint8_t **nk = sg_calloc(&s->b.alloc, L, sizeof *nk);
    uint8_t **nv = sg_calloc(&s->b.alloc, L, sizeof *nv);
    size_t *nkc = sg_calloc(&s->b.alloc, L, sizeof *nkc);
    size_t *nvc = sg_calloc(&s->b.alloc, L, sizeof *nvc);
    st = (nk && nv && nkc && nvc) ? SIGMA_OK : SIGMA_E_NOMEM;
    r.off = hdr;
    for (uint32_t l = 0; l < L && st == SIGMA_OK; l++) {
        sg_kv_r_u32(&r);
        sg_kv_r_u32(&r);
        uint32_t rows = sg_kv_r_u32(&r);
        const uint8_t *kp = sg_kv_r_bytes(&r, (uint64_t)rows * s->k_row, 4);
        const uint8_t *vp = sg_kv_r_bytes(&r, (uint64_t)rows * s->v_row, 4);
        size_t kbytes = (size_t)rows * s->k_row * 4, vbytes = (size_t)rows * s->v_row * 4;
        st = sg_kv_reserve(&s->b.alloc, &nk[l], &nkc[l], 0, kbytes ? kbytes : 1);
        if (st == SIGMA_OK) st = sg_kv_reserve(&s->b.alloc, &nv[l], &nvc[l], 0, vbytes ? vbytes : 1);
        if (st != SIGMA_OK) break;
        sg_kv_copy_words(nk[l], kp, (size_t)rows * s->k_row, 4);
        sg_kv_copy_words(nv[l], vp, (size_t)rows * s->v_row, 4);
    }
    if (st == SIGMA_OK) {
        r.off = hdr;
        for (uint32_t l = 0; l < L; l++) {
            uint32_t n = sg_kv_r_u32(&r), run0 = sg_kv_r_u32(&r), rows = sg_kv_r_u32(&r);
            sg_kv_r_bytes(&r, (uint64_t)rows * (s->k_row + s->v_row), 4);
            sg_free(&s->b.alloc, s->k[l]);
            sg_free(&s->b.alloc, s->v[l]);
            s->k[l] = nk[l];
            s->v[l] = nv[l];
            s->kcap[l] = nkc[l];
            s->vcap[l] = nvc[l];
            s->n_pos[l] = n;
            s->run0[l] = run0;
        }
    } else {
        for (uint32_t l = 0; nk && nv && l < L; l++) {
            sg_free(&s->b.alloc, nk[l]);
            sg_free(&s->b.alloc, nv[l]);
        }
    }
    sg_free(&s->b.alloc, nk);
    sg_free(&s->b.alloc, nv);
    sg_free(&s->b.alloc, nkc);
    sg_free(&s->b.alloc, nvc);
    return st;
}

void sg_kv_window_init(sigma_kv_strategy *k) {
    memset(k, 0, sizeof *k);
    k->version = SIGMA_KV_STRATEGY_VERSION;
    k->name = "window";
    /* lets the session go past n_ctx; append enforces n_ctx when the
     * session was created with unbounded=0 */
    k->unbounded = 1;
    k->create = window_create;
    k->destroy = window_destroy;
    k->append = window_append;
    k->attend = window_attend;
    k->truncate = window_truncate;
    k->bytes_used = window_bytes_used;
    k->save = window_save;
    k->load = window_load;
}
