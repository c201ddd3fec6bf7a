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
 * Rows are f32; a dropped row is replaced by the last row (no ordering). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

typedef struct h2o_state {
    sg_kv_base b;
    uint32_t budget, recent;
    size_t k_row, v_row;
    size_t cap_rows;              /* budget + n_batch */
    uint32_t *n_pos, *n_rows, *ordered; /* per layer */
    uint8_t **k, **v;             /* per layer, cap_rows rows */
    uint32_t **pos;               /* per layer, position of each row */
    float **acc;                  /* per layer, accumulated attention */
    float *w;                     /* [n_q][cap_rows] weights of the current query */
} h2o_state;

static void h2o_destroy(void *state) {
    h2o_state *s = state;
    if (!s) return;
    sg_alloc a = s->b.alloc;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        if (s->k) sg_free(&a, s->k[l]);
        if (s->v) sg_free(&a, s->v[l]);
        if (s->pos) sg_free(&a, s->pos[l]);
        if (s->acc) sg_free(&a, s->acc[l]);
    }
    sg_free(&a, s->k);
    sg_free(&a, s->v);
    sg_free(&a, s->pos);
    sg_free(&a, s->acc);
    sg_free(&a, s->n_pos);
    sg_free(&a, s->n_rows);
    sg_free(&a, s->ordered);
    sg_free(&a, s->w);
    sg_free(&a, s);
}

static int h2o_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                      char *err, size_t err_size) {
    if (!state) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    int st = sg_kv_check_layout("h2o", lay, err, err_size);
    if (st != SIGMA_OK) return st;
    sg_kv_opt o[2] = {{"budget", 1, 1u << 22, 256, 0, 0}, {"recent", 1, 1u << 22, 0, 0, 0}};
    if ((st = sg_kv_parse_options("h2o", options, o, 2, err, err_size)) != SIGMA_OK) return st;
    if (!o[1].set) o[1].val = o[0].val / 2 ? o[0].val / 2 : 1;
    if (o[1].val > o[0].val) {
        if (err && err_size)
            snprintf(err, err_size, "h2o: recent=%u is larger than budget=%u", o[1].val, o[0].val);
        return SIGMA_E_INVALID_ARG;
    }
    sg_alloc a;
    sg_kv_env_alloc(user, &a);
    h2o_state *s = sg_calloc(&a, 1, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    sg_kv_base_init(&s->b, user, &a, lay);
    s->budget = o[0].val;
    s->recent = o[1].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->cap_rows = (size_t)s->budget + s->b.lay.n_batch;
    if (s->cap_rows > s->b.lay.n_ctx) s->cap_rows = s->b.lay.n_ctx;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&a, L, sizeof *s->n_pos);
    s->n_rows = sg_calloc(&a, L, sizeof *s->n_rows);
    s->ordered = sg_calloc(&a, L, sizeof *s->ordered);
    s->k = sg_calloc(&a, L, sizeof *s->k);
    s->v = sg_calloc(&a, L, sizeof *s->v);
    s->pos = sg_calloc(&a, L, sizeof *s->pos);
    s->acc = sg_calloc(&a, L, sizeof *s->acc);
    s->w = sg_calloc(&a, (size_t)lay->n_q_heads * s->cap_rows, sizeof(float));
    int ok = s->n_pos && s->n_rows && s->ordered && s->k && s->v && s->pos && s->acc && s->w;
    for (uint32_t l = 0; ok && l < L; l++) {
        s->ordered[l] = 1;
        s->k[l] = sg_malloc(&a, s->cap_rows * s->k_row * sizeof(float));
        s->v[l] = sg_malloc(&a, s->cap_rows * s->v_row * sizeof(float));
        s->pos[l] = sg_malloc(&a, s->cap_rows * sizeof(uint32_t));
        s->acc[l] = sg_malloc(&a, s->cap_rows * sizeof(float));
        ok = s->k[l] && s->v[l] && s->pos[l] && s->acc[l];
    }
    if (!ok) {
        h2o_destroy(s);
        return SIGMA_E_NOMEM;
    }
    *state = s;
    return SIGMA_OK;
}

static void drop_row(h2o_state *s, uint32_t l, size_t r) {
    size_t last = (size_t)s->n_rows[l] - 1;
    if (r != last) {
        memcpy(s->k[l] + r * s->k_row * 4, s->k[l] + last * s->k_row * 4, s->k_row * 4);
        memcpy(s->v[l] + r * s->v_row * 4, s->v[l] + last * s->v_row * 4, s->v_row * 4);
        s->pos[l][r] = s->pos[l][last];
        s->acc[l][r] = s->acc[l][last];
    }
    s->ordered[l] = 0;
    s->n_rows[l]--;
}

/* Evict until at most `limit` rows have a position <= p, choosing among
 * positions <= p - recent the lowest score (ties: the older). */
static void evict_to(h2o_state *s, uint32_t l, size_t limit, uint64_t p) {
    for (;;) {
        size_t count = 0, best = SIZE_MAX;
        for (size_t r = 0; r < s->n_rows[l]; r++) {
            uint32_t ps = s->pos[l][r];
            if (ps > p) continue;
            count++;
            if ((uint64_t)ps + s->recent > p) continue;
            if (best == SIZE_MAX || s->acc[l][r] < s->acc[l][best] ||
                (s->acc[l][r] == s->acc[l][best] && ps < s->pos[l][best]))
                best = r;
        }
        if (count <= limit || best == SIZE_MAX) return;
        drop_row(s, l, best);
    }
}

static void do_truncate(h2o_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l]) return;
    size_t m = 0;
    for (size_t r = 0; r < s->n_rows[l]; r++) {
        if (s->pos[l][r] >= n) continue;
        if (m != r) {
            memcpy(s->k[l] + m * s->k_row * 4, s->k[l] + r * s->k_row * 4, s->k_row * 4);
            memcpy(s->v[l] + m * s->v_row * 4, s->v[l] + r * s->v_row * 4, s->v_row * 4);
            s->pos[l][m] = s->pos[l][r];
            s->acc[l][m] = s->acc[l][r];
        }
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
        memcpy(s->k[layer] + r0 * s->k_row * 4, k, (size_t)n * s->k_row * 4);
        memcpy(s->v[layer] + r0 * s->v_row * 4, v, (size_t)n * s->v_row * 4);
    }
    for (uint32_t i = 0; i < n; i++) {
        s->pos[layer][r0 + i] = pos0 + i;
        s->acc[layer][r0 + i] = 0.0f;
    }
    s->n_rows[layer] += n;
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

typedef struct h2o_job {
    h2o_state *s;
    const sigma_kv_attend_args *a;
    size_t qi;
} h2o_job;

/* One query (j->qi), heads [begin, end). */
static void h2o_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const h2o_job *j = ctx;
    h2o_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t l = j->a->layer;
    const float *kb = (const float *)(const void *)s->k[l];
    const float *vb = (const float *)(const void *)s->v[l];
    const uint32_t *pos = s->pos[l];
    size_t rows = s->n_rows[l];
    uint64_t p = (uint64_t)j->a->pos0 + j->qi;
    /* the model's sliding window (a->window) hides positions < pw */
    uint64_t pw = j->a->window && p + 1 > j->a->window ? p + 1 - j->a->window : 0;
    float cap = j->a->softcap;
    for (size_t h = begin; h < end; h++) {
        uint32_t kh = (uint32_t)h / (L->n_q_heads / L->n_k_heads);
        uint32_t vh = (uint32_t)h / (L->n_q_heads / L->n_v_heads);
        const float *q = j->a->q + (j->qi * L->n_q_heads + h) * L->d_qk;
        float *out = j->a->out + (j->qi * L->n_q_heads + h) * L->d_v;
        const float *kh0 = kb + (size_t)kh * L->d_qk;
        const float *vh0 = vb + (size_t)vh * L->d_v;
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
        h2o_job j = {s, a, i};
        sg_pool_run(s->b.exec->pool, s->b.lay.n_q_heads, 1, h2o_task, &j);
        /* accumulate in a fixed order (thread-count independent) */
        size_t rows = s->n_rows[l];
        for (size_t h = 0; h < s->b.lay.n_q_heads; h++) {
            const float *w = s->w + h * s->cap_rows;
            for (size_t r = 0; r < rows; r++) s->acc[l][r] += w[r];
        }
    }
    return SIGMA_OK;
}

static size_t h2o_bytes_used(void *state) {
    h2o_state *s = state;
    if (!s) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        total += (size_t)s->n_rows[l] * ((s->k_row + s->v_row) * sizeof(float) + 8);
    return total;
}

/* Format: header (tag "H2O_", options: budget, recent), then per layer
 * u32 n_pos, u32 n_rows, u32 ordered, n_rows u32 positions, n_rows f32
 * scores, n_rows K rows, n_rows V rows (f32). */
static int h2o_save(void *state, sigma_write_fn wf, void *ctx) {
    h2o_state *s = state;
    if (!s || !wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    uint32_t opts[2] = {s->budget, s->recent};
    sg_kv_w_header(&w, "H2O_", &s->b.lay, opts, 2);
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        size_t rows = s->n_rows[l];
        sg_kv_w_u32(&w, s->n_pos[l]);
        sg_kv_w_u32(&w, (uint32_t)rows);
        sg_kv_w_u32(&w, s->ordered[l]);
        sg_kv_w_words(&w, s->pos[l], rows, 4);
        sg_kv_w_words(&w, s->acc[l], rows, 4);
        sg_kv_w_words(&w, s->k[l], rows * s->k_row, 4);
        sg_kv_w_words(&w, s->v[l], rows * s->v_row, 4);
    }
    return w.st;
}

/* Validate everything first; the copy into the preallocated buffers
 * cannot fail. */
static int h2o_load(void *state, const void *data, size_t size) {
    h2o_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    uint32_t opts[2] = {s->budget, s->recent};
    int st = sg_kv_r_header(&r, "H2O_", &s->b.lay, opts, 2);
    if (st != SIGMA_OK) return st;
    uint32_t L = s->b.lay.n_layers;
    size_t hdr = r.off;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n = sg_kv_r_u32(&r), rows = sg_kv_r_u32(&r), ord = sg_kv_r_u32(&r);
        if (r.bad || n > s->b.lay.n_ctx || rows > n || rows > s->cap_rows || ord > 1 ||
            (ord && rows != n))
            return SIGMA_E_FORMAT;
        const uint8_t *pp = sg_kv_r_bytes(&r, rows, 4);
        sg_kv_r_bytes(&r, rows, 4);
        sg_kv_r_bytes(&r, (uint64_t)rows * s->k_row, 4);
        sg_kv_r_bytes(&r, (uint64_t)rows * s->v_row, 4);
        if (r.bad) return SIGMA_E_FORMAT;
        for (uint32_t i = 0; i < rows; i++) {
            uint32_t ps = sg_kv_get32(pp + 4 * (size_t)i);
            if (ps >= n || (ord && ps != i)) return SIGMA_E_FORMAT;
        }
    }
    if (r.off != size) return SIGMA_E_FORMAT;
    r.off = hdr;
    for (uint32_t l = 0; l < L; l++) {
        s->n_pos[l] = sg_kv_r_u32(&r);
        uint32_t rows = sg_kv_r_u32(&r);
        s->n_rows[l] = rows;
        s->ordered[l] = sg_kv_r_u32(&r);
        sg_kv_copy_words(s->pos[l], sg_kv_r_bytes(&r, rows, 4), rows, 4);
        sg_kv_copy_words(s->acc[l], sg_kv_r_bytes(&r, rows, 4), rows, 4);
        sg_kv_copy_words(s->k[l], sg_kv_r_bytes(&r, (uint64_t)rows * s->k_row, 4), rows * s->k_row, 4);
        sg_kv_copy_words(s->v[l], sg_kv_r_bytes(&r, (uint64_t)rows * s->v_row, 4), rows * s->v_row, 4);
    }
    return SIGMA_OK;
}

void sg_kv_h2o_init(sigma_kv_strategy *k) {
    memset(k, 0, sizeof *k);
    k->version = SIGMA_KV_STRATEGY_VERSION;
    k->name = "h2o";
    k->create = h2o_create;
    k->destroy = h2o_destroy;
    k->append = h2o_append;
    k->attend = h2o_attend;
    k->truncate = h2o_truncate;
    k->bytes_used = h2o_bytes_used;
    k->save = h2o_save;
    k->load = h2o_load;
}
