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
 * Storage per layer, four planes of the row store: K blocks (a row per
 * block: k_row channels x packed codes, then k_row (scale, min) f16 pairs),
 * V tokens (a row per token: n_v heads x packed codes padded to even bytes
 * (the pad zero), then n_v x ceil(d_v/group) pairs), and f32 residual K and
 * V rows for positions res0..n_pos-1 (res0 <= nq). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

/* planes, in their serialized order */
enum { Q_KQ, Q_VQ, Q_KR, Q_VR };

typedef struct quant_state {
    sg_kv_base b;
    uint32_t kbits, vbits, group, residual;
    size_t k_row, v_row;
    size_t kcb, kblock;           /* K: code bytes per channel per block; bytes per block */
    size_t vqb, vcb;              /* V: code bytes per head, unpadded and padded to even */
    size_t ngv, vtok;             /* V: groups per head, bytes per token */
    uint32_t *n_pos, *nq, *res0;  /* per layer */
    float *scratch;
    size_t per_thread;
} quant_state;

/* the row store's view of a layer: u32 n_pos, nq, res0; nq/group K blocks,
 * nq V tokens, n_pos-res0 f32 K rows and V rows */
static void quant_words(const void *owner, uint32_t l, uint32_t *w) {
    const quant_state *s = owner;
    w[0] = s->n_pos[l];
    w[1] = s->nq[l];
    w[2] = s->res0[l];
}
static int quant_rows(const void *owner, const uint32_t *w, uint64_t *rows) {
    const quant_state *s = owner;
    uint32_t n = w[0], nq = w[1], res0 = w[2];
    if (n > s->b.lay.n_ctx || nq > n || nq % s->group || res0 > nq || res0 % s->group)
        return SIGMA_E_FORMAT;
    rows[Q_KQ] = nq / s->group;
    rows[Q_VQ] = nq;
    rows[Q_KR] = rows[Q_VR] = n - res0;
    return SIGMA_OK;
}
static void quant_set(void *owner, uint32_t l, const uint32_t *w) {
    quant_state *s = owner;
    s->n_pos[l] = w[0];
    s->nq[l] = w[1];
    s->res0[l] = w[2];
}

static void quant_destroy(void *state) {
    quant_state *s = state;
    if (!s) return;
    void *own[4] = {s->n_pos, s->nq, s->res0, s->scratch};
    sg_kv_state_free(s, own, 4);
}

static int quant_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                        char *err, size_t err_size) {
    sg_kv_opt o[4] = {{"kbits", 2, 8, 8, 1, 0},
                      {"vbits", 2, 8, 8, 1, 0},
                      {"group", 8, 256, 32, 1, 0},
                      {"residual", 0, 1u << 20, 128, 0, 0}};
    int st = sg_kv_create_begin("quant", lay, options, o, NULL, 4, state, err, err_size);
    if (st != SIGMA_OK) return st;
    quant_state *s = sg_kv_state_new(user, lay, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    s->kbits = o[0].val;
    s->vbits = o[1].val;
    s->group = o[2].val;
    s->residual = o[3].val;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    s->kcb = sigma_kernel_quant_bytes(s->group, (int)s->kbits);
    s->kblock = s->k_row * (s->kcb + 4);
    s->vqb = sigma_kernel_quant_bytes(lay->d_v, (int)s->vbits);
    s->vcb = (s->vqb + 1) & ~(size_t)1;
    s->ngv = (lay->d_v + s->group - 1) / s->group;
    s->vtok = lay->n_v_heads * (s->vcb + s->ngv * 4);
    s->per_thread = (size_t)lay->n_ctx;
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(&s->b.alloc, L, sizeof *s->n_pos);
    s->nq = sg_calloc(&s->b.alloc, L, sizeof *s->nq);
    s->res0 = sg_calloc(&s->b.alloc, L, sizeof *s->res0);
    s->scratch = sg_calloc(&s->b.alloc, s->b.n_threads, s->per_thread * sizeof(float));
    /* a K block: codes (bytes), then 2 * k_row f16 words; a V token: codes, then 2 * n_v * ngv */
    sg_kv_plane pl[4] = {sg_kv_plane_words(s->k_row * s->kcb, 1),
                         sg_kv_plane_words((size_t)lay->n_v_heads * s->vcb, 1),
                         sg_kv_plane_words(s->k_row, 4), sg_kv_plane_words(s->v_row, 4)};
    pl[Q_KQ].n2 = 2 * s->k_row;
    pl[Q_VQ].n2 = 2 * s->ngv * lay->n_v_heads;
    pl[Q_KQ].w2 = pl[Q_VQ].w2 = 2;
    st = sg_kv_store_init(&s->b, pl, 4, 3, quant_words, quant_rows, NULL, quant_set);
    return sg_kv_create_end(s, st == SIGMA_OK && s->n_pos && s->nq && s->res0 && s->scratch, state,
                            quant_destroy);
}

/* Quantized-token boundary after p+1 tokens. */
static uint64_t bq(const quant_state *s, uint64_t p) {
    uint64_t m = p + 1;
    if (m < (uint64_t)s->residual + s->group) return 0;
    return (m - s->residual) / s->group * s->group;
}

static uint8_t *kcodes(const quant_state *s, uint32_t l, size_t blk, size_t c) {
    return sg_kv_row(&s->b.st, l, Q_KQ, blk) + c * s->kcb;
}
static uint16_t *kparams(const quant_state *s, uint32_t l, size_t blk, size_t c) {
    return (uint16_t *)(void *)(sg_kv_row(&s->b.st, l, Q_KQ, blk) + s->k_row * s->kcb) + 2 * c;
}
static uint8_t *vcodes(const quant_state *s, uint32_t l, size_t t, size_t h) {
    return sg_kv_row(&s->b.st, l, Q_VQ, t) + h * s->vcb;
}
static uint16_t *vparams(const quant_state *s, uint32_t l, size_t t, size_t h) {
    return (uint16_t *)(void *)(sg_kv_row(&s->b.st, l, Q_VQ, t) + s->b.lay.n_v_heads * s->vcb) +
           2 * h * s->ngv;
}
static float *krow(const quant_state *s, uint32_t l, size_t pos) {
    return (float *)(void *)sg_kv_row(&s->b.st, l, Q_KR, pos - s->res0[l]);
}
static float *vrow(const quant_state *s, uint32_t l, size_t pos) {
    return (float *)(void *)sg_kv_row(&s->b.st, l, Q_VR, pos - s->res0[l]);
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
            for (size_t h = 0; h < s->b.lay.n_v_heads; h++) {
                sigma_kernel_quantize(vcodes(s, l, t, h), vparams(s, l, t, h), vrow(s, l, t) + h * dv,
                                      dv, G, (int)s->vbits);
                if (s->vcb > s->vqb) vcodes(s, l, t, h)[s->vqb] = 0; /* the pad byte */
            }
    }
}

/* Drop f32 rows of tokens that are quantized. */
static void compact(quant_state *s, uint32_t l) {
    if (s->res0[l] >= s->nq[l]) return;
    size_t drop = s->nq[l] - s->res0[l], keep = s->n_pos[l] - s->nq[l];
    sg_kv_store_move(&s->b.st, l, Q_KR, 0, drop, keep);
    sg_kv_store_move(&s->b.st, l, Q_VR, 0, drop, keep);
    s->res0[l] = s->nq[l];
}

/* Rewind layer l to n positions. Case D (n before the f32 rows) needs
 * room for n - floor(n/G)*G rows, reserved by prepare_truncate(). */
static int prepare_truncate(quant_state *s, uint32_t l, uint32_t n) {
    if (n >= s->n_pos[l] || n >= s->res0[l]) return SIGMA_OK;
    size_t m = n - n / s->group * s->group;
    int st = sg_kv_store_reserve(&s->b.st, l, Q_KR, 0, m);
    return st == SIGMA_OK ? sg_kv_store_reserve(&s->b.st, l, Q_VR, 0, m) : st;
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
        float *kr = (float *)(void *)sg_kv_row(&s->b.st, l, Q_KR, 0);
        float *vr = (float *)(void *)sg_kv_row(&s->b.st, l, Q_VR, 0);
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
    if ((st = sg_kv_store_reserve(&s->b.st, layer, Q_KR, used, rows)) != SIGMA_OK ||
        (st = sg_kv_store_reserve(&s->b.st, layer, Q_VR, used, rows)) != SIGMA_OK ||
        (st = sg_kv_store_reserve(&s->b.st, layer, Q_KQ, nqold / s->group, nblk)) != SIGMA_OK ||
        (st = sg_kv_store_reserve(&s->b.st, layer, Q_VQ, nqold, (size_t)nq_new)) != SIGMA_OK)
        return st;
    memcpy(krow(s, layer, pos0), k, (size_t)n * s->k_row * 4);
    memcpy(vrow(s, layer, pos0), v, (size_t)n * s->v_row * 4);
    s->n_pos[layer] = (uint32_t)end;
    quantize_range(s, layer, nqold, (size_t)nq_new);
    s->nq[layer] = (uint32_t)nq_new;
    return SIGMA_OK;
}

static void quant_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const sg_kv_job *j = ctx;
    quant_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t l = j->a->layer;
    const size_t G = s->group;
    float *sc = s->scratch + (size_t)tid * s->per_thread;
    for (size_t t = begin; t < end; t++) {
        sg_kv_qhead x = sg_kv_qhead_at(L, j->a, t / L->n_q_heads, (uint32_t)(t % L->n_q_heads));
        const float *q = x.q;
        float *out = x.out;
        uint32_t kh = x.kh, vh = x.vh;
        uint64_t p = x.pos;
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
    sg_kv_job j = {s, a, 0};
    sg_pool_run(s->b.exec->pool, (size_t)a->n_queries * s->b.lay.n_q_heads, 1, quant_task, &j);
    return SIGMA_OK;
}

/* Format: header (tag "QUAN", options: kbits, vbits, group, residual),
 * then per layer (the row store) u32 n_pos, u32 nq, u32 res0; nq/group K
 * blocks (codes, then u16 params); nq V tokens (codes, then u16 params);
 * n_pos-res0 f32 K rows, then as many f32 V rows. */
static int quant_save(void *state, sigma_write_fn wf, void *ctx) {
    quant_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[4] = {s->kbits, s->vbits, s->group, s->residual};
    return sg_kv_store_save_tagged(&s->b.st, "QUAN", opts, 4, wf, ctx);
}

static int quant_load(void *state, const void *data, size_t size) {
    quant_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[4] = {s->kbits, s->vbits, s->group, s->residual};
    return sg_kv_store_load_tagged(&s->b.st, "QUAN", opts, 4, 4, NULL, data, size);
}

void sg_kv_quant_init(sigma_kv_strategy *k) {
    *k = (sigma_kv_strategy){.version = SIGMA_KV_STRATEGY_VERSION, .name = "quant", .unbounded = 0,
                             .create = quant_create, .destroy = quant_destroy, .append = quant_append,
                             .attend = quant_attend, .truncate = quant_truncate,
                             .bytes_used = sg_kv_bytes_used, .save = quant_save, .load = quant_load};
}
