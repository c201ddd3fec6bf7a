/* The `topv` KV strategy: Sigma's selective V fetching (paper, appendix B.2).
 * Every position's K and V rows are kept (f32). A query head computes its
 * scores against all K rows, keeps the k largest (option k, default 100),
 * and reads only the V rows of those: softmax renormalised over the kept
 * scores. Choices:
 *   - selection is per query head (heads sharing a V head under GQA may
 *     pick different rows);
 *   - ties at the k-th score are broken towards the earlier position, so
 *     exactly k rows are used;
 *   - with k >= the number of positions nothing is dropped and the result
 *     is the dense computation (the same kernel, bitwise equal to `dense`
 *     with type=f32). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../attn/attn.h"
#include "kv.h"

typedef struct topv_state {
    sg_kv_base b;
    uint32_t topk;
    size_t k_row, v_row;          /* floats per token and layer */
    uint32_t *n_pos;              /* per layer */
    uint8_t **k, **v;             /* per layer, f32 rows */
    size_t *kcap, *vcap;          /* bytes allocated */
    float *scratch;               /* per thread: per_thread floats */
    size_t per_thread;
} topv_state;

static void topv_destroy(void *state) {
    topv_state *s = state;
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
    sg_free(&a, s->scratch);
    sg_free(&a, s);
}

static int topv_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                       char *err, size_t err_size) {
    if (!state) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    int st = sg_kv_check_layout("topv", lay, err, err_size);
    if (st != SIGMA_OK) return st;
    sg_kv_opt o[1] = {{"k", 1, 1u << 24, 100, 0, 0}};
    if ((st = sg_kv_parse_options("topv", options, o, 1, err, err_size)) != SIGMA_OK) return st;
    sg_alloc a;
    sg_kv_env_alloc(user, &a);
    topv_state *s = sg_calloc(&a, 1, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    sg_kv_base_init(&s->b, user, &a, lay);
    s->topk = o[0].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    uint32_t kk = s->topk < lay->n_ctx ? s->topk : lay->n_ctx;
    /* scores, selection copy, kept scores, kept indices, conversion tmp */
    s->per_thread = 2 * (size_t)lay->n_ctx + 2 * (size_t)kk + lay->d_qk + lay->d_v;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&a, L, sizeof *s->n_pos);
    s->k = sg_calloc(&a, L, sizeof *s->k);
    s->v = sg_calloc(&a, L, sizeof *s->v);
    s->kcap = sg_calloc(&a, L, sizeof *s->kcap);
    s->vcap = sg_calloc(&a, L, sizeof *s->vcap);
    s->scratch = sg_calloc(&a, s->b.n_threads, s->per_thread * sizeof(float));
    if (!s->n_pos || !s->k || !s->v || !s->kcap || !s->vcap || !s->scratch) {
        topv_destroy(s);
        return SIGMA_E_NOMEM;
    }
    *state = s;
    return SIGMA_OK;
}

static int topv_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                       const float *v) {
    topv_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v))) return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG;
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->b.lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    size_t kb = s->k_row * sizeof(float), vb = s->v_row * sizeof(float);
    int st = sg_kv_reserve(&s->b.alloc, &s->k[layer], &s->kcap[layer], (size_t)pos0 * kb,
                           (size_t)end * kb);
    if (st == SIGMA_OK)
        st = sg_kv_reserve(&s->b.alloc, &s->v[layer], &s->vcap[layer], (size_t)pos0 * vb,
                           (size_t)end * vb);
    if (st != SIGMA_OK) return st;
    if (n) {
        memcpy(s->k[layer] + (size_t)pos0 * kb, k, (size_t)n * kb);
        memcpy(s->v[layer] + (size_t)pos0 * vb, v, (size_t)n * vb);
    }
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

/* The k-th largest of a[0..n) (1 <= k <= n); a is reordered. */
static float kth_largest(float *a, size_t n, size_t k) {
    ptrdiff_t lo = 0, hi = (ptrdiff_t)n - 1, t = (ptrdiff_t)k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float x = a[i];
                a[i] = a[j];
                a[j] = x;
                i++;
                j--;
            }
        }
        if (t <= j)
            hi = j;
        else if (t >= i)
            lo = i;
        else
            return a[t];
    }
    return a[t];
}

typedef struct topv_job {
    topv_state *s;
    const sigma_kv_attend_args *a;
} topv_job;

static void topv_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const topv_job *j = ctx;
    topv_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t layer = j->a->layer;
    float *sc = s->scratch + (size_t)tid * s->per_thread;
    uint32_t kk = s->topk < L->n_ctx ? s->topk : L->n_ctx;
    float *sel = sc + L->n_ctx, *w = sel + L->n_ctx, *wi = w + kk;
    float *tmp = wi + kk;
    uint32_t *idx = (uint32_t *)(void *)wi;
    const float *kb = (const float *)(const void *)s->k[layer];
    const float *vb = (const float *)(const void *)s->v[layer];
    for (size_t t = begin; t < end; t++) {
        size_t qi = t / L->n_q_heads;
        uint32_t h = (uint32_t)(t % L->n_q_heads);
        uint32_t kh = h / (L->n_q_heads / L->n_k_heads);
        uint32_t vh = h / (L->n_q_heads / L->n_v_heads);
        const float *q = j->a->q + (qi * L->n_q_heads + h) * L->d_qk;
        float *out = j->a->out + (qi * L->n_q_heads + h) * L->d_v;
        const float *kh0 = kb + (size_t)kh * L->d_qk;
        const float *vh0 = vb + (size_t)vh * L->d_v;
        size_t n = (size_t)j->a->pos0 + qi + 1;
        if (n <= s->topk) {
            sg_attn_head(kern, q, kh0, s->k_row, vh0, s->v_row, SG_KV_F32, n, L->d_qk, L->d_v,
                         j->a->scale, out, tmp);
            continue;
        }
        for (size_t p = 0; p < n; p++) {
            float x = kern->dot_f32(q, kh0 + p * s->k_row, L->d_qk) * j->a->scale;
            sc[p] = x == x ? x : -INFINITY;
            sel[p] = sc[p];
        }
        float thr = kth_largest(sel, n, kk);
        size_t greater = 0;
        for (size_t p = 0; p < n; p++) greater += sc[p] > thr;
        size_t eq_left = kk - greater, m = 0;
        for (size_t p = 0; p < n && m < kk; p++) {
            if (sc[p] > thr || (sc[p] == thr && eq_left > 0)) {
                if (!(sc[p] > thr)) eq_left--;
                w[m] = sc[p];
                idx[m] = (uint32_t)p;
                m++;
            }
        }
        sigma_kernel_softmax_f32(w, m);
        memset(out, 0, (size_t)L->d_v * sizeof(float));
        for (size_t i = 0; i < m; i++) kern->axpy_f32(out, w[i], vh0 + (size_t)idx[i] * s->v_row, L->d_v);
    }
}

static int topv_attend(void *state, const sigma_kv_attend_args *a) {
    topv_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if (a->n_queries == 0) return SIGMA_OK;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[a->layer]) return SIGMA_E_INVALID_ARG;
    topv_job j = {s, a};
    sg_pool_run(s->b.exec->pool, (size_t)a->n_queries * s->b.lay.n_q_heads, 1, topv_task, &j);
    return SIGMA_OK;
}

static int topv_truncate(void *state, uint32_t n_pos) {
    topv_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        if (s->n_pos[l] > n_pos) s->n_pos[l] = n_pos;
    return SIGMA_OK;
}

static size_t topv_bytes_used(void *state) {
    topv_state *s = state;
    if (!s) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        total += (size_t)s->n_pos[l] * (s->k_row + s->v_row) * sizeof(float);
    return total;
}

/* Format: header (tag "TOPV", options: k), then per layer u32 n_pos,
 * n_pos K rows and n_pos V rows of f32. */
static int topv_save(void *state, sigma_write_fn wf, void *ctx) {
    topv_state *s = state;
    if (!s || !wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    uint32_t opts[1] = {s->topk};
    sg_kv_w_header(&w, "TOPV", &s->b.lay, opts, 1);
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        sg_kv_w_u32(&w, s->n_pos[l]);
        sg_kv_w_words(&w, s->k[l], (size_t)s->n_pos[l] * s->k_row, 4);
        sg_kv_w_words(&w, s->v[l], (size_t)s->n_pos[l] * s->v_row, 4);
    }
    return w.st;
}

static int topv_load(void *state, const void *data, size_t size) {
    topv_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    uint32_t opts[1] = {s->topk};
    int st = sg_kv_r_header(&r, "TOPV", &s->b.lay, opts, 1);
    if (st != SIGMA_OK) return st;
    uint32_t L = s->b.lay.n_layers;
    size_t hdr = r.off;
    /* pass 1: validate */
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n = sg_kv_r_u32(&r);
        if (r.bad || n > s->b.lay.n_ctx) return SIGMA_E_FORMAT;
        sg_kv_r_bytes(&r, (uint64_t)n * s->k_row, 4);
        sg_kv_r_bytes(&r, (uint64_t)n * s->v_row, 4);
        if (r.bad) return SIGMA_E_FORMAT;
    }
    if (r.off != size) return SIGMA_E_FORMAT;
    /* pass 2: allocate aside */
    uint8_t **nk = sg_calloc(&s->b.alloc, L, sizeof *nk);
    uint8_t **nv = sg_calloc(&s->b.alloc, L, sizeof *nv);
    size_t *nkc = sg_calloc(&s->b.alloc, L, sizeof *nkc);
    size_t *nvc = sg_calloc(&s->b.alloc, L, sizeof *nvc);
    uint32_t *npos = sg_calloc(&s->b.alloc, L, sizeof *npos);
    st = (nk && nv && nkc && nvc && npos) ? SIGMA_OK : SIGMA_E_NOMEM;
    r.off = hdr;
    for (uint32_t l = 0; l < L && st == SIGMA_OK; l++) {
        uint32_t n = sg_kv_r_u32(&r);
        const uint8_t *kp = sg_kv_r_bytes(&r, (uint64_t)n * s->k_row, 4);
        const uint8_t *vp = sg_kv_r_bytes(&r, (uint64_t)n * s->v_row, 4);
        size_t kbytes = (size_t)n * s->k_row * 4, vbytes = (size_t)n * s->v_row * 4;
        st = sg_kv_reserve(&s->b.alloc, &nk[l], &nkc[l], 0, kbytes ? kbytes : 1);
        if (st == SIGMA_OK) st = sg_kv_reserve(&s->b.alloc, &nv[l], &nvc[l], 0, vbytes ? vbytes : 1);
        if (st != SIGMA_OK) break;
        sg_kv_copy_words(nk[l], kp, (size_t)n * s->k_row, 4);
        sg_kv_copy_words(nv[l], vp, (size_t)n * s->v_row, 4);
        npos[l] = n;
    }
    if (st == SIGMA_OK) {
        for (uint32_t l = 0; l < L; l++) {
            sg_free(&s->b.alloc, s->k[l]);
            sg_free(&s->b.alloc, s->v[l]);
            s->k[l] = nk[l];
            s->v[l] = nv[l];
            s->kcap[l] = nkc[l];
            s->vcap[l] = nvc[l];
            s->n_pos[l] = npos[l];
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
    sg_free(&s->b.alloc, npos);
    return st;
}

void sg_kv_topv_init(sigma_kv_strategy *k) {
    memset(k, 0, sizeof *k);
    k->version = SIGMA_KV_STRATEGY_VERSION;
    k->name = "topv";
    k->create = topv_create;
    k->destroy = topv_destroy;
    k->append = topv_append;
    k->attend = topv_attend;
    k->truncate = topv_truncate;
    k->bytes_used = topv_bytes_used;
    k->save = topv_save;
    k->load = topv_load;
}
