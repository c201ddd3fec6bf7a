/* The `quant` KV strategy (after KIVI): K and V quantized with independent
 * precision, grouped asymmetric quantization with f16 scale and minimum
 * (sigma_kernel_quantize), the most recent tokens kept in f32.
 * Options: kbits=8, vbits=8 (2, 4 or 8), group=32 (a power of two 8..256),
 * residual=128.
 *
 *   - K is quantized per channel: a group is `group` consecutive tokens of
 *     one channel, so K is quantized in blocks of `group` tokens once a
 *     block is complete and older than the residual window;
 *   - V is quantized per token: a group is `group` consecutive channels of
 *     one head of one token (quantized together with its K block);
 *   - after p+1 tokens, the tokens before bq(p) = group*floor((p+1-residual)
 *     /group) are quantized, the rest (residual..residual+group-1 tokens)
 *     are f32. A query at position p sees exactly that state, also inside a
 *     prompt: the f32 rows of a block are kept until the next append, so a
 *     prompt is computed as token-by-token decoding would be;
 *   - while nothing is quantized the result is the dense computation;
 *   - rewinding inside the f32 rows is exact; rewinding into the quantized
 *     part keeps the quantized values (the originals are gone).
 *
 * Storage per layer: K blocks (per block: k_row channels x packed codes,
 * then k_row (scale, min) f16 pairs), V tokens (per token: n_v heads x
 * packed codes padded to even bytes, then n_v x ceil(d_v/group) pairs), and
 * f32 residual rows for positions res0..n_pos-1 (res0 <= nq). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

typedef struct quant_state {
    sg_kv_base b;
    uint32_t kbits, vbits, group, residual;
    size_t k_row, v_row;
    size_t kcb, kblock;           /* K: code bytes per channel per block; bytes per block */
    size_t vcb, ngv, vtok;        /* V: code bytes per head, groups per head, bytes per token */
    uint32_t *n_pos, *nq, *res0;  /* per layer */
    uint8_t **kq, **vq, **kr, **vr;
    size_t *kqcap, *vqcap, *krcap, *vrcap;
    float *scratch;
    size_t per_thread;
} quant_state;

static void quant_destroy(void *state) {
    quant_state *s = state;
    if (!s) return;
    sg_alloc a = s->b.alloc;
    uint8_t **bufs[4] = {s->kq, s->vq, s->kr, s->vr};
    for (int i = 0; i < 4; i++) {
        if (!bufs[i]) continue;
        for (uint32_t l = 0; l < s->b.lay.n_layers; l++) sg_free(&a, bufs[i][l]);
        sg_free(&a, bufs[i]);
    }
    sg_free(&a, s->kqcap);
    sg_free(&a, s->vqcap);
    sg_free(&a, s->krcap);
    sg_free(&a, s->vrcap);
    sg_free(&a, s->n_pos);
    sg_free(&a, s->nq);
    sg_free(&a, s->res0);
    sg_free(&a, s->scratch);
    sg_free(&a, s);
}

static int quant_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                        char *err, size_t err_size) {
    if (!state) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    int st = sg_kv_check_layout("quant", lay, err, err_size);
    if (st != SIGMA_OK) return st;
    sg_kv_opt o[4] = {{"kbits", 2, 8, 8, 1, 0},
                      {"vbits", 2, 8, 8, 1, 0},
                      {"group", 8, 256, 32, 1, 0},
                      {"residual", 0, 1u << 20, 128, 0, 0}};
    if ((st = sg_kv_parse_options("quant", options, o, 4, err, err_size)) != SIGMA_OK) return st;
    sg_alloc a;
    sg_kv_env_alloc(user, &a);
    quant_state *s = sg_calloc(&a, 1, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    sg_kv_base_init(&s->b, user, &a, lay);
    s->kbits = o[0].val;
    s->vbits = o[1].val;
    s->group = o[2].val;
    s->residual = o[3].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->kcb = sigma_kernel_quant_bytes(s->group, (int)s->kbits);
    s->kblock = s->k_row * (s->kcb + 4);
    s->vcb = (sigma_kernel_quant_bytes(lay->d_v, (int)s->vbits) + 1) & ~(size_t)1;
    s->ngv = (lay->d_v + s->group - 1) / s->group;
    s->vtok = lay->n_v_heads * (s->vcb + s->ngv * 4);
    s->per_thread = (size_t)lay->n_ctx;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&a, L, sizeof *s->n_pos);
    s->nq = sg_calloc(&a, L, sizeof *s->nq);
    s->res0 = sg_calloc(&a, L, sizeof *s->res0);
    s->kq = sg_calloc(&a, L, sizeof *s->kq);
    s->vq = sg_calloc(&a, L, sizeof *s->vq);
    s->kr = sg_calloc(&a, L, sizeof *s->kr);
    s->vr = sg_calloc(&a, L, sizeof *s->vr);
    s->kqcap = sg_calloc(&a, L, sizeof(size_t));
    s->vqcap = sg_calloc(&a, L, sizeof(size_t));
    s->krcap = sg_calloc(&a, L, sizeof(size_t));
    s->vrcap = sg_calloc(&a, L, sizeof(size_t));
    s->scratch = sg_calloc(&a, s->b.n_threads, s->per_thread * sizeof(float));
    if (!s->n_pos || !s->nq || !s->res0 || !s->kq || !s->vq || !s->kr || !s->vr || !s->kqcap ||
        !s->vqcap || !s->krcap || !s->vrcap || !s->scratch) {
        quant_destroy(s);
        return SIGMA_E_NOMEM;
    }
    *state = s;
    return SIGMA_OK;
}

/* Quantized-token boundary after p+1 tokens. */
static uint64_t bq(const quant_state *s, uint64_t p) {
    uint64_t m = p + 1;
    if (m < (uint64_t)s->residual + s->group) return 0;
    return (m - s->residual) / s->group * s->group;
}

static uint8_t *kcodes(const quant_state *s, uint32_t l, size_t blk, size_t c) {
    return s->kq[l] + blk * s->kblock + c * s->kcb;
}
static uint16_t *kparams(const quant_state *s, uint32_t l, size_t blk, size_t c) {
    return (uint16_t *)(void *)(s->kq[l] + blk * s->kblock + s->k_row * s->kcb) + 2 * c;
}
static uint8_t *vcodes(const quant_state *s, uint32_t l, size_t t, size_t h) {
    return s->vq[l] + t * s->vtok + h * s->vcb;
}
static uint16_t *vparams(const quant_state *s, uint32_t l, size_t t, size_t h) {
    return (uint16_t *)(void *)(s->vq[l] + t * s->vtok + s->b.lay.n_v_heads * s->vcb) +
           2 * h * s->ngv;
}
static float *krow(const quant_state *s, uint32_t l, size_t pos) {
    return (float *)(void *)s->kr[l] + (pos - s->res0[l]) * s->k_row;
}
static float *vrow(const quant_state *s, uint32_t l, size_t pos) {
    return (float *)(void *)s->vr[l] + (pos - s->res0[l]) * s->v_row;
}

/* Quantize tokens [from, to) (whole blocks, all in the residual rows). */
static void quantize_range(quant_state *s, uint32_t l, size_t from, size_t to) {
    float col[256];
    const size_t G = s->group, dv = s->b.lay.d_v;
    for (size_t t0 = from; t0 < to; t0 += G) {
        size_t blk = t0 / G;
        for (size_t c = 0; c < s->k_row; c++) {
            for (size_t i = 0; i < G; i++) col[i] = krow(s, l, t0 + i)[c];
            sigma_kernel_quantize(kcodes(s, l, blk, c), kparams(s, l, blk, c), col, G, G,
                                  (int)s->kbits);
        }
        for (size_t t = t0; t < t0 + G; t++)
            for (size_t h = 0; h < s->b.lay.n_v_heads; h++)
                sigma_kernel_quantize(vcodes(s, l, t, h), vparams(s, l, t, h), vrow(s, l, t) + h * dv,
                                      dv, G, (int)s->vbits);
    }
}

/* Drop f32 rows of tokens that are quantized. */
static void compact(quant_state *s, uint32_t l) {
    if (s->res0[l] >= s->nq[l]) return;
    size_t drop = s->nq[l] - s->res0[l], keep = s->n_pos[l] - s->nq[l];
    memmove(s->kr[l], s->kr[l] + drop * s->k_row * 4, keep * s->k_row * 4);
    memmove(s->vr[l], s->vr[l] + drop * s->v_row * 4, keep * s->v_row * 4);
    s->res0[l] = s->nq[l];
}

/* Rewind layer l to n positions. Case D (n before the f32 rows) needs
 * room for n - floor(n/G)*G rows, reserved by prepare_truncate(). */
static int prepare_truncate(quant_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l] || n >= s->res0[l]) return SIGMA_OK;
    size_t m = n - n / s->group * s->group;
    int st = sg_kv_reserve(&s->b.alloc, &s->kr[l], &s->krcap[l], 0, m * s->k_row * 4);
    if (st == SIGMA_OK) st = sg_kv_reserve(&s->b.alloc, &s->vr[l], &s->vrcap[l], 0, m * s->v_row * 4);
    return st;
}

static void do_truncate(quant_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l]) return;
    uint64_t target = n ? bq(s, (uint64_t)n - 1) : 0;
    if (s->res0[l] <= target) {
        /* exact: the state after n tokens */
        s->nq[l] = (uint32_t)target;
        s->n_pos[l] = n;
        compact(s, l);
    } else if (n >= s->res0[l]) {
        s->nq[l] = s->res0[l];
        s->n_pos[l] = n;
    } else {
        /* n inside the quantized part: keep whole blocks, dequantize the rest */
        const size_t G = s->group, dv = s->b.lay.d_v;
        uint32_t nq2 = n / s->group * s->group;
        size_t m = n - nq2, blk = nq2 / G;
        float col[256];
        float *kr = (float *)(void *)s->kr[l], *vr = (float *)(void *)s->vr[l];
        for (size_t c = 0; m && c < s->k_row; c++) {
            sigma_kernel_dequantize(col, kcodes(s, l, blk, c), kparams(s, l, blk, c), G, G,
                                    (int)s->kbits);
            for (size_t i = 0; i < m; i++) kr[i * s->k_row + c] = col[i];
        }
        for (size_t i = 0; i < m; i++)
            for (size_t h = 0; h < s->b.lay.n_v_heads; h++)
                sigma_kernel_dequantize(vr + i * s->v_row + h * dv, vcodes(s, l, nq2 + i, h),
                                        vparams(s, l, nq2 + i, h), dv, G, (int)s->vbits);
        s->nq[l] = nq2;
        s->res0[l] = nq2;
        s->n_pos[l] = n;
    }
}

static int quant_truncate(void *state, uint32_t n_pos) {
    quant_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        int st = prepare_truncate(s, l, n_pos);
        if (st != SIGMA_OK) return st;
    }
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) do_truncate(s, l, n_pos);
    return SIGMA_OK;
}

static int quant_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                        const float *v) {
    quant_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v))) return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG;
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->b.lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    if (n == 0) return SIGMA_OK;
    int st = prepare_truncate(s, layer, pos0);
    if (st != SIGMA_OK) return st;
    do_truncate(s, layer, pos0);
    compact(s, layer);
    uint64_t nq_new = bq(s, end - 1);
    if (nq_new < s->nq[layer]) nq_new = s->nq[layer];
    size_t rows = (size_t)(end - s->res0[layer]), used = s->n_pos[layer] - s->res0[layer];
    size_t nblk = (size_t)nq_new / s->group, nqold = s->nq[layer];
    if ((st = sg_kv_reserve(&s->b.alloc, &s->kr[layer], &s->krcap[layer], used * s->k_row * 4,
                            rows * s->k_row * 4)) != SIGMA_OK ||
        (st = sg_kv_reserve(&s->b.alloc, &s->vr[layer], &s->vrcap[layer], used * s->v_row * 4,
                            rows * s->v_row * 4)) != SIGMA_OK ||
        (st = sg_kv_reserve(&s->b.alloc, &s->kq[layer], &s->kqcap[layer],
                            nqold / s->group * s->kblock, nblk * s->kblock)) != SIGMA_OK ||
        (st = sg_kv_reserve(&s->b.alloc, &s->vq[layer], &s->vqcap[layer], nqold * s->vtok,
                            (size_t)nq_new * s->vtok)) != SIGMA_OK)
        return st;
    memcpy(krow(s, layer, pos0), k, (size_t)n * s->k_row * 4);
    memcpy(vrow(s, layer, pos0), v, (size_t)n * s->v_row * 4);
    s->n_pos[layer] = (uint32_t)end;
    quantize_range(s, layer, nqold, (size_t)nq_new);
    s->nq[layer] = (uint32_t)nq_new;
    return SIGMA_OK;
}

typedef struct quant_job {
    quant_state *s;
    const sigma_kv_attend_args *a;
} quant_job;

static void quant_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const quant_job *j = ctx;
    quant_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t l = j->a->layer;
    const size_t G = s->group;
    float *sc = s->scratch + (size_t)tid * s->per_thread;
    for (size_t t = begin; t < end; t++) {
        size_t qi = t / L->n_q_heads;
        uint32_t h = (uint32_t)(t % L->n_q_heads);
        uint32_t kh = h / (L->n_q_heads / L->n_k_heads);
        uint32_t vh = h / (L->n_q_heads / L->n_v_heads);
        const float *q = j->a->q + (qi * L->n_q_heads + h) * L->d_qk;
        float *out = j->a->out + (qi * L->n_q_heads + h) * L->d_v;
        uint64_t p = (uint64_t)j->a->pos0 + qi;
        uint64_t b = bq(s, p);
        if (b < s->res0[l]) b = s->res0[l];
        if (b > s->nq[l]) b = s->nq[l];
        /* a sliding-window layer reads positions first..p only */
        size_t first = j->a->window && p + 1 > j->a->window ? (size_t)(p + 1 - j->a->window) : 0;
        if (b == 0) {
            /* all f32, rows first..p: the dense computation */
            const void *vb = vrow(s, l, first) + (size_t)vh * L->d_v;
            sg_attn_group_capped(kern, 1, q, 0, krow(s, l, first) + (size_t)kh * L->d_qk, s->k_row,
                                 &vb, s->v_row, SG_KV_F32, (size_t)p + 1 - first, L->d_qk, L->d_v,
                                 j->a->scale, j->a->softcap, out, 0);
            continue;
        }
        for (size_t blk = 0; blk < b / G; blk++) {
            float *sb = sc + blk * G;
            memset(sb, 0, G * sizeof(float));
            for (size_t c = 0; c < L->d_qk; c++) {
                size_t cc = (size_t)kh * L->d_qk + c;
                sigma_kernel_axpy_quant(sb, q[c], kcodes(s, l, blk, cc), kparams(s, l, blk, cc), G, G,
                                        (int)s->kbits);
            }
            for (size_t i = 0; i < G; i++) sb[i] *= j->a->scale;
        }
        for (size_t ps = (size_t)b; ps <= p; ps++)
            sc[ps] = kern->dot_f32(q, krow(s, l, ps) + (size_t)kh * L->d_qk, L->d_qk) * j->a->scale;
        for (size_t ps = 0; ps < first; ps++) sc[ps] = -INFINITY;
        if (j->a->softcap > 0.0f) sg_softcap(sc + first, (size_t)p + 1 - first, j->a->softcap);
        sigma_kernel_softmax_f32(sc, (size_t)p + 1);
        memset(out, 0, (size_t)L->d_v * sizeof(float));
        for (size_t ps = 0; ps < b; ps++)
            sigma_kernel_axpy_quant(out, sc[ps], vcodes(s, l, ps, vh), vparams(s, l, ps, vh), L->d_v, G,
                                    (int)s->vbits);
        for (size_t ps = (size_t)b; ps <= p; ps++)
            kern->axpy_f32(out, sc[ps], vrow(s, l, ps) + (size_t)vh * L->d_v, L->d_v);
    }
}

static int quant_attend(void *state, const sigma_kv_attend_args *a) {
    quant_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if (a->n_queries == 0) return SIGMA_OK;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[a->layer]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    quant_job j = {s, a};
    sg_pool_run(s->b.exec->pool, (size_t)a->n_queries * s->b.lay.n_q_heads, 1, quant_task, &j);
    return SIGMA_OK;
}

static size_t quant_bytes_used(void *state) {
    quant_state *s = state;
    if (!s) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        total += (size_t)s->nq[l] / s->group * s->kblock + (size_t)s->nq[l] * s->vtok +
                 (size_t)(s->n_pos[l] - s->res0[l]) * (s->k_row + s->v_row) * 4;
    return total;
}

/* Format: header (tag "QUAN", options: kbits, vbits, group, residual),
 * then per layer u32 n_pos, u32 nq, u32 res0; nq/group K blocks (codes,
 * then u16 params); nq V tokens (codes, then u16 params); n_pos-res0 f32 K
 * rows, then as many f32 V rows. */
static int quant_save(void *state, sigma_write_fn wf, void *ctx) {
    quant_state *s = state;
    if (!s || !wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    uint32_t opts[4] = {s->kbits, s->vbits, s->group, s->residual};
    sg_kv_w_header(&w, "QUAN", &s->b.lay, opts, 4);
    size_t kc = s->k_row * s->kcb, vc = s->b.lay.n_v_heads * s->vcb;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        sg_kv_w_u32(&w, s->n_pos[l]);
        sg_kv_w_u32(&w, s->nq[l]);
        sg_kv_w_u32(&w, s->res0[l]);
        for (size_t blk = 0; blk < s->nq[l] / s->group; blk++) {
            sg_kv_w_bytes(&w, kcodes(s, l, blk, 0), kc);
            sg_kv_w_words(&w, kparams(s, l, blk, 0), 2 * s->k_row, 2);
        }
        for (size_t t = 0; t < s->nq[l]; t++) {
            sg_kv_w_bytes(&w, vcodes(s, l, t, 0), vc);
            sg_kv_w_words(&w, vparams(s, l, t, 0), 2 * s->ngv * s->b.lay.n_v_heads, 2);
        }
        size_t rows = s->n_pos[l] - s->res0[l];
        sg_kv_w_words(&w, s->kr[l], rows * s->k_row, 4);
        sg_kv_w_words(&w, s->vr[l], rows * s->v_row, 4);
    }
    return w.st;
}

static int quant_load(void *state, const void *data, size_t size) {
    quant_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    uint32_t opts[4] = {s->kbits, s->vbits, s->group, s->residual};
    int st = sg_kv_r_header(&r, "QUAN", &s->b.lay, opts, 4);
    if (st != SIGMA_OK) return st;
    uint32_t L = s->b.lay.n_layers;
    size_t hdr = r.off;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n = sg_kv_r_u32(&r), nq = sg_kv_r_u32(&r), res0 = sg_kv_r_u32(&r);
        if (r.bad || n > s->b.lay.n_ctx || nq > n || nq % s->group || res0 > nq || res0 % s->group)
            return SIGMA_E_FORMAT;
        sg_kv_r_bytes(&r, nq / s->group, s->kblock);
        sg_kv_r_bytes(&r, nq, s->vtok);
        sg_kv_r_bytes(&r, (uint64_t)(n - res0) * s->k_row, 4);
        sg_kv_r_bytes(&r, (uint64_t)(n - res0) * s->v_row, 4);
        if (r.bad) return SIGMA_E_FORMAT;
    }
    if (r.off != size) return SIGMA_E_FORMAT;
    /* build new buffers aside */
    uint8_t **nb[4];
    size_t *nc[4];
    for (int i = 0; i < 4; i++) {
        nb[i] = sg_calloc(&s->b.alloc, L, sizeof(uint8_t *));
        nc[i] = sg_calloc(&s->b.alloc, L, sizeof(size_t));
        if (!nb[i] || !nc[i]) st = SIGMA_E_NOMEM;
    }
    size_t kc = s->k_row * s->kcb, vc = s->b.lay.n_v_heads * s->vcb;
    r.off = hdr;
    for (uint32_t l = 0; l < L && st == SIGMA_OK; l++) {
        uint32_t n = sg_kv_r_u32(&r), nq = sg_kv_r_u32(&r), res0 = sg_kv_r_u32(&r);
        size_t rows = n - res0;
        size_t need[4] = {nq / s->group * s->kblock, (size_t)nq * s->vtok, rows * s->k_row * 4,
                          rows * s->v_row * 4};
        for (int i = 0; i < 4 && st == SIGMA_OK; i++)
            st = sg_kv_reserve(&s->b.alloc, &nb[i][l], &nc[i][l], 0, need[i] ? need[i] : 1);
        if (st != SIGMA_OK) break;
        for (size_t blk = 0; blk < nq / s->group; blk++) {
            uint8_t *dst = nb[0][l] + blk * s->kblock;
            memcpy(dst, sg_kv_r_bytes(&r, kc, 1), kc);
            sg_kv_copy_words(dst + kc, sg_kv_r_bytes(&r, 2 * s->k_row, 2), 2 * s->k_row, 2);
        }
        for (size_t t = 0; t < nq; t++) {
            uint8_t *dst = nb[1][l] + t * s->vtok;
            size_t np = 2 * s->ngv * s->b.lay.n_v_heads;
            memcpy(dst, sg_kv_r_bytes(&r, vc, 1), vc);
            sg_kv_copy_words(dst + vc, sg_kv_r_bytes(&r, np, 2), np, 2);
        }
        sg_kv_copy_words(nb[2][l], sg_kv_r_bytes(&r, rows * s->k_row, 4), rows * s->k_row, 4);
        sg_kv_copy_words(nb[3][l], sg_kv_r_bytes(&r, rows * s->v_row, 4), rows * s->v_row, 4);
    }
    uint8_t **cur[4] = {s->kq, s->vq, s->kr, s->vr};
    size_t *curc[4] = {s->kqcap, s->vqcap, s->krcap, s->vrcap};
    if (st == SIGMA_OK) {
        r.off = hdr;
        for (uint32_t l = 0; l < L; l++) {
            s->n_pos[l] = sg_kv_r_u32(&r);
            s->nq[l] = sg_kv_r_u32(&r);
            s->res0[l] = sg_kv_r_u32(&r);
            size_t rows = s->n_pos[l] - s->res0[l];
            sg_kv_r_bytes(&r, s->nq[l] / s->group, s->kblock);
            sg_kv_r_bytes(&r, s->nq[l], s->vtok);
            sg_kv_r_bytes(&r, (uint64_t)rows * (s->k_row + s->v_row), 4);
            for (int i = 0; i < 4; i++) {
                sg_free(&s->b.alloc, cur[i][l]);
                cur[i][l] = nb[i][l];
                curc[i][l] = nc[i][l];
            }
        }
    } else {
        for (int i = 0; i < 4; i++)
            for (uint32_t l = 0; nb[i] && l < L; l++) sg_free(&s->b.alloc, nb[i][l]);
    }
    for (int i = 0; i < 4; i++) {
        sg_free(&s->b.alloc, nb[i]);
        sg_free(&s->b.alloc, nc[i]);
    }
    return st;
}

void sg_kv_quant_init(sigma_kv_strategy *k) {
    memset(k, 0, sizeof *k);
    k->version = SIGMA_KV_STRATEGY_VERSION;
    k->name = "quant";
    k->create = quant_create;
    k->destroy = quant_destroy;
    k->append = quant_append;
    k->attend = quant_attend;
    k->truncate = quant_truncate;
    k->bytes_used = quant_bytes_used;
    k->save = quant_save;
    k->load = quant_load;
}
