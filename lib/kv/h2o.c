/* The `h2o` KV strategy (Heavy-Hitter Oracle): at most `budget` cached
 * positions per layer, of which the `recent` most recent are always kept
 * and the rest are the "heavy hitters", the positions with the largest
 * attention accumulated so far. Options: budget=256, recent=budget/2
 * (1 <= recent <= budget).
 *
 * Choices:
 *   - eviction is per layer (a position is kept or dropped for all heads of
 *     the layer, which also works when n_k != n_v); its score is the
 *     attention weight it received, summed over all query heads and over
 *     every query since it arrived;
 *   - queries are processed in order, also within a prompt: before query p
 *     attends, positions are evicted (lowest score first, ties to the
 *     older) until at most `budget` positions <= p remain, so a prompt sees
 *     what token-by-token decoding would have seen;
 *   - the attention weights are computed inside attend (an explicit
 *     softmax per head); while nothing has been evicted the output is the
 *     dense computation (bitwise equal to `dense` type=f32);
 *   - an evicted position is gone: rewinding behind it does not restore it.
 * Rows are f32, in four planes of the row store (position, score, K row, V
 * row); a dropped row is replaced by the last row (no ordering). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

/* planes, in their serialized order */
enum { H2O_POS, H2O_ACC, H2O_K, H2O_V };

typedef struct h2o_state {
    sg_kv_base b;
    uint32_t budget, recent;
    size_t k_row, v_row;
    size_t cap_rows;              /* budget + n_batch */
    uint32_t *n_pos, *n_rows, *ordered; /* per layer */
    float *w;                     /* [n_q][cap_rows] weights of the current query */
} h2o_state;

/* position and accumulated attention of each row of layer l */
static uint32_t *pos_of(const h2o_state *s, uint32_t l) {
    return (uint32_t *)(void *)sg_kv_row(&s->b.st, l, H2O_POS, 0);
}
static float *acc_of(const h2o_state *s, uint32_t l) {
    return (float *)(void *)sg_kv_row(&s->b.st, l, H2O_ACC, 0);
}

/* the row store's view of a layer: u32 n_pos, n_rows, ordered; n_rows of
 * each plane */
static void h2o_words(const void *owner, uint32_t l, uint32_t *w) {
    const h2o_state *s = owner;
    w[0] = s->n_pos[l];
    w[1] = s->n_rows[l];
    w[2] = s->ordered[l];
}
static int h2o_rows(const void *owner, const uint32_t *w, uint64_t *rows) {
    const h2o_state *s = owner;
    uint32_t n = w[0], nr = w[1], ord = w[2];
    if (n > s->b.lay.n_ctx || nr > n || nr > s->cap_rows || ord > 1 || (ord && nr != n))
        return SIGMA_E_FORMAT;
    for (int p = 0; p < 4; p++) rows[p] = nr;
    return SIGMA_OK;
}
/* every position before n_pos; ordered rows hold positions 0..n-1 */
static int h2o_check(const void *owner, const uint32_t *w, const uint8_t *const *data) {
    (void)owner;
    for (uint32_t i = 0; i < w[1]; i++) {
        uint32_t ps = sg_get_le32(data[H2O_POS] + 4 * (size_t)i);
        if (ps >= w[0] || (w[2] && ps != i)) return SIGMA_E_FORMAT;
    }
    return SIGMA_OK;
}
static void h2o_set(void *owner, uint32_t l, const uint32_t *w) {
    h2o_state *s = owner;
    s->n_pos[l] = w[0];
    s->n_rows[l] = w[1];
    s->ordered[l] = w[2];
}

static void h2o_destroy(void *state) {
    h2o_state *s = state;
    if (!s) return;
    void *own[4] = {s->n_pos, s->n_rows, s->ordered, s->w};
    sg_kv_state_free(s, own, 4);
}

static int h2o_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                      char *err, size_t err_size) {
    sg_kv_opt o[2] = {{"budget", 1, 1u << 22, 256, 0, 0}, {"recent", 1, 1u << 22, 0, 0, 0}};
    int st = sg_kv_create_begin("h2o", lay, options, o, NULL, 2, state, err, err_size);
    if (st != SIGMA_OK) return st;
    if (!o[1].set) o[1].val = o[0].val / 2 ? o[0].val / 2 : 1;
    if (o[1].val > o[0].val) {
        if (err && err_size)
            snprintf(err, err_size, "h2o: recent=%u is larger than budget=%u", o[1].val, o[0].val);
        return SIGMA_E_INVALID_ARG;
    }
    h2o_state *s = sg_kv_state_new(user, lay, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    s->budget = o[0].val;
    s->recent = o[1].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->cap_rows = (size_t)s->budget + s->b.lay.n_batch;
    if (s->cap_rows > s->b.lay.n_ctx) s->cap_rows = s->b.lay.n_ctx;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&s->b.alloc, L, sizeof *s->n_pos);
    s->n_rows = sg_calloc(&s->b.alloc, L, sizeof *s->n_rows);
    s->ordered = sg_calloc(&s->b.alloc, L, sizeof *s->ordered);
    s->w = sg_calloc(&s->b.alloc, (size_t)lay->n_q_heads * s->cap_rows, sizeof(float));
    /* every layer's cap_rows rows allocated up front: appends never allocate */
    sg_kv_plane pl[4] = {sg_kv_plane_words(1, 4), sg_kv_plane_words(1, 4),
                         sg_kv_plane_words(s->k_row, 4), sg_kv_plane_words(s->v_row, 4)};
    for (int p = 0; p < 4; p++) pl[p].min_rows = pl[p].max_rows = s->cap_rows;
    st = sg_kv_store_init(&s->b, pl, 4, 3, h2o_words, h2o_rows, h2o_check, h2o_set);
    int ok = st == SIGMA_OK && s->n_pos && s->n_rows && s->ordered && s->w;
    for (uint32_t l = 0; ok && l < L; l++) {
        s->ordered[l] = 1;
        ok = sg_kv_store_reserve_all(&s->b.st, l, 0, s->cap_rows) == SIGMA_OK;
    }
    return sg_kv_create_end(s, ok, state, h2o_destroy);
}

static void drop_row(h2o_state *s, uint32_t l, size_t r) {
    size_t last = (size_t)s->n_rows[l] - 1;
    sg_kv_store_move_all(&s->b.st, l, r, last, 1);
    s->ordered[l] = 0;
    s->n_rows[l]--;
}

/* Evict until at most `limit` rows have a position <= p, choosing among
 * positions <= p - recent the lowest score (ties: the older). */
static void evict_to(h2o_state *s, uint32_t l, size_t limit, uint64_t p) {
    const uint32_t *pos = pos_of(s, l);
    const float *acc = acc_of(s, l);
    for (;;) {
        size_t count = 0, best = SIZE_MAX;
        for (size_t r = 0; r < s->n_rows[l]; r++) {
            uint32_t ps = pos[r];
            if (ps > p) continue;
            count++;
            if ((uint64_t)ps + s->recent > p) continue;
            if (best == SIZE_MAX || acc[r] < acc[best] || (acc[r] == acc[best] && ps < pos[best]))
                best = r;
        }
        if (count <= limit || best == SIZE_MAX) return;
        drop_row(s, l, best);
    }
}

static void do_truncate(h2o_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l]) return;
    size_t m = 0;
    const uint32_t *pos = pos_of(s, l);
    for (size_t r = 0; r < s->n_rows[l]; r++) {
        if (pos[r] >= n) continue;
        sg_kv_store_move_all(&s->b.st, l, m, r, 1);
        m++;
    }
    s->n_rows[l] = (uint32_t)m;
    s->n_pos[l] = n;
    if (n == 0) s->ordered[l] = 1;
}

static int h2o_truncate(void *state, uint32_t n_pos) {
    h2o_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) do_truncate(s, l, n_pos);
    return SIGMA_OK;
}

static int h2o_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                      const float *v) {
    h2o_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v)) || n > s->b.lay.n_batch)
        return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG;
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->b.lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    do_truncate(s, layer, pos0);
    /* rows appended without attention since: make room by score */
    if (s->n_rows[layer] + (size_t)n > s->cap_rows && pos0 > 0)
        evict_to(s, layer, s->cap_rows - n, (uint64_t)pos0 - 1);
    if (s->n_rows[layer] + (size_t)n > s->cap_rows) return SIGMA_E_INTERNAL;
    size_t r0 = s->n_rows[layer];
    if (n) {
        memcpy(sg_kv_row(&s->b.st, layer, H2O_K, r0), k, (size_t)n * s->k_row * 4);
        memcpy(sg_kv_row(&s->b.st, layer, H2O_V, r0), v, (size_t)n * s->v_row * 4);
    }
    for (uint32_t i = 0; i < n; i++) {
        pos_of(s, layer)[r0 + i] = pos0 + i;
        acc_of(s, layer)[r0 + i] = 0.0f;
    }
    s->n_rows[layer] += n;
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

/* One query (j->qi), heads [begin, end). */
static void h2o_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const sg_kv_job *j = ctx;
    h2o_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t l = j->a->layer;
    const float *kb = (const float *)(const void *)sg_kv_row(&s->b.st, l, H2O_K, 0);
    const float *vb = (const float *)(const void *)sg_kv_row(&s->b.st, l, H2O_V, 0);
    const uint32_t *pos = pos_of(s, l);
    size_t rows = s->n_rows[l];
    uint64_t p = (uint64_t)j->a->pos0 + j->qi;
    /* the model's sliding window (a->window) hides positions < pw */
    uint64_t pw = j->a->window && p + 1 > j->a->window ? p + 1 - j->a->window : 0;
    float cap = j->a->softcap;
    for (size_t h = begin; h < end; h++) {
        sg_kv_qhead x = sg_kv_qhead_at(L, j->a, j->qi, (uint32_t)h);
        const float *q = x.q, *kh0 = kb + (size_t)x.kh * L->d_qk, *vh0 = vb + (size_t)x.vh * L->d_v;
        float *out = x.out;
        float *w = s->w + h * s->cap_rows;
        for (size_t r = 0; r < rows; r++) {
            w[r] = pos[r] <= p && pos[r] >= pw
                       ? kern->dot_f32(q, kh0 + r * s->k_row, L->d_qk) * j->a->scale
                       : -INFINITY;
            if (cap > 0.0f && w[r] > -INFINITY) sg_softcap(&w[r], 1, cap);
        }
        sigma_kernel_softmax_f32(w, rows);
        if (s->ordered[l]) {
            /* rows 0..p hold positions 0..p: the dense computation */
            const void *vr = vh0 + (size_t)pw * s->v_row;
            sg_attn_group_capped(kern, 1, q, 0, kh0 + (size_t)pw * s->k_row, s->k_row, &vr,
                                 s->v_row, SG_KV_F32, (size_t)(p + 1 - pw), L->d_qk, L->d_v,
                                 j->a->scale, cap, out, 0);
        } else {
            memset(out, 0, (size_t)L->d_v * sizeof(float));
            for (size_t r = 0; r < rows; r++)
                if (pos[r] <= p && pos[r] >= pw)
                    kern->axpy_f32(out, w[r], vh0 + r * s->v_row, L->d_v);
        }
    }
}

static int h2o_attend(void *state, const sigma_kv_attend_args *a) {
    h2o_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    uint32_t l = a->layer;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[l]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    /* every query's own row must be there (the recent ones are kept) */
    for (uint32_t i = 0; i < a->n_queries; i++) {
        uint64_t p = (uint64_t)a->pos0 + i;
        evict_to(s, l, s->budget, p);
        if (s->ordered[l] && s->n_rows[l] != s->n_pos[l]) return SIGMA_E_INTERNAL;
        sg_kv_job j = {s, a, i};
        sg_pool_run(s->b.exec->pool, s->b.lay.n_q_heads, 1, h2o_task, &j);
        /* accumulate in a fixed order (thread-count independent) */
        size_t rows = s->n_rows[l];
        float *acc = acc_of(s, l);
        for (size_t h = 0; h < s->b.lay.n_q_heads; h++) {
            const float *w = s->w + h * s->cap_rows;
            for (size_t r = 0; r < rows; r++) acc[r] += w[r];
        }
    }
    return SIGMA_OK;
}

/* Format: header (tag "H2O_", options: budget, recent), then per layer (the
 * row store) u32 n_pos, u32 n_rows, u32 ordered, n_rows u32 positions,
 * n_rows f32 scores, n_rows K rows, n_rows V rows (f32). */
static int h2o_save(void *state, sigma_write_fn wf, void *ctx) {
    h2o_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[2] = {s->budget, s->recent};
    return sg_kv_store_save_tagged(&s->b.st, "H2O_", opts, 2, wf, ctx);
}

static int h2o_load(void *state, const void *data, size_t size) {
    h2o_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[2] = {s->budget, s->recent};
    return sg_kv_store_load_tagged(&s->b.st, "H2O_", opts, 2, 2, NULL, data, size);
}

void sg_kv_h2o_init(sigma_kv_strategy *k) {
    *k = (sigma_kv_strategy){.version = SIGMA_KV_STRATEGY_VERSION, .name = "h2o", .unbounded = 0,
                             .create = h2o_create, .destroy = h2o_destroy, .append = h2o_append,
                             .attend = h2o_attend, .truncate = h2o_truncate,
                             .bytes_used = sg_kv_bytes_used, .save = h2o_save, .load = h2o_load};
}
