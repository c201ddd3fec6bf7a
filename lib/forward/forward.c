/* The forward pass: embed -> layers (pre-norm attention, pre-norm SwiGLU MLP)
 * -> final norm -> lm_head, for a batch of n tokens.
 *
 *     x = embed(tokens)
 *     for each layer:
 *         x += attention(rmsnorm(x))          sg_attention, below
 *         x += down(silu(gate(h)) * up(h)),   h = rmsnorm(x)
 *     logits = output(rmsnorm(x))             only for the rows asked for
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"

static float *fwd_alloc(sg_fwd *f, uint64_t rows, uint64_t cols, int *ok) {
    uint64_t n;
    if (!*ok) return NULL;
    if (!sg_mul_u64(rows, cols, &n) || !sg_mul_u64(n, sizeof(float), &n) || n > SIZE_MAX ||
        f->n_bufs >= sizeof f->bufs / sizeof f->bufs[0]) {
        *ok = 0;
        return NULL;
    }
    /* not zeroed: every buffer is written before it is read, and zeroing
     * ~50 MB of batch buffers at session open costs tens of milliseconds */
    float *p = sg_malloc(&f->alloc, (size_t)n);
    if (!p) {
        *ok = 0;
        return NULL;
    }
    f->bufs[f->n_bufs++] = p;
    return p;
}

int sg_fwd_init(sg_fwd *f, const sigma_model *m, sg_pool *pool, uint32_t n_batch, int allow_simd,
                sg_err *err) {
    memset(f, 0, sizeof *f);
    f->model = m;
    f->alloc = m->alloc;
    f->n_batch = n_batch;
    /* The model was validated when it was opened (gguf.c: types and block
     * sizes; arch.c: hyperparameters and every tensor's shape). */
    const sg_hparams *hp = &m->hp;
    /* SIGMA_KERNELS (read here, once per session): "generic", "avx2", "exact", "q8" */
    sg_kernels_init_spec(&f->kern, allow_simd, getenv("SIGMA_KERNELS"));
    uint64_t E = hp->n_embd, F = hp->n_ff, QD = (uint64_t)hp->n_q * hp->d_qk;
    uint64_t KD = (uint64_t)hp->n_k * hp->d_qk, VD = (uint64_t)hp->n_v * hp->d_v;
    uint64_t AD = (uint64_t)hp->n_q * hp->d_v, DA = hp->d_aug;
    uint64_t widest = E;
    if (F > widest) widest = F;
    if (QD > widest) widest = QD;
    if (AD > widest) widest = AD;
    if (DA > widest) widest = DA;
    uint32_t nt = sg_pool_threads(pool);
    int ok = 1;
    f->x = fwd_alloc(f, n_batch, E, &ok);
    f->xn = fwd_alloc(f, n_batch, E, &ok);
    f->delta = fwd_alloc(f, n_batch, E, &ok);
    f->ffn_g = fwd_alloc(f, n_batch, F, &ok);
    f->ffn_u = fwd_alloc(f, n_batch, F, &ok);
    f->norm_w = fwd_alloc(f, 1, E, &ok);
    f->rope_cs = fwd_alloc(f, n_batch, hp->n_rot ? hp->n_rot : 2, &ok);
    /* per-thread scratch: a converted weight row, or the batched matmul
     * kernels' expanded weight rows (sg_gemm_work_bytes) */
    uint64_t spt = (sg_gemm_work_bytes((size_t)widest) + 3) / 4;
    if (spt < widest) spt = widest;
    f->scratch = fwd_alloc(f, nt, spt, &ok);
    f->ab.q = fwd_alloc(f, n_batch, QD, &ok);
    f->ab.k = fwd_alloc(f, n_batch, KD, &ok);
    f->ab.v = fwd_alloc(f, n_batch, VD, &ok);
    f->ab.att = fwd_alloc(f, n_batch, AD, &ok);
    if (DA) {
        /* AugQ: q0 needs its own buffer; the gate/up products may share the
         * MLP's buffers (they are used at different times) */
        f->ab.q0 = fwd_alloc(f, n_batch, QD, &ok);
        if (F >= DA) {
            f->ab.aug_g = f->ffn_g;
            f->ab.aug_u = f->ffn_u;
        } else {
            f->ab.aug_g = fwd_alloc(f, n_batch, DA, &ok);
            f->ab.aug_u = fwd_alloc(f, n_batch, DA, &ok);
        }
    }
    /* quantized activation rows for the 8-bit matmul kernels */
    uint64_t qrow = sg_q8_row_bytes((size_t)((widest + 31) / 32 * 32));
    float *qbuf = fwd_alloc(f, n_batch, (qrow + 3) / 4, &ok);
    if (!ok) {
        sg_fwd_free(f);
        return sg_error(err, SIGMA_E_NOMEM, "out of memory allocating forward-pass buffers");
    }
    f->ab.rope_cs = f->rope_cs;
    f->exec.k = &f->kern;
    f->exec.pool = pool;
    f->exec.n_threads = nt;
    f->exec.scratch = f->scratch;
    f->exec.scratch_per_thread = (size_t)spt;
    f->exec.qbuf = (uint8_t *)qbuf;
    f->exec.qbuf_bytes = (size_t)n_batch * (size_t)((qrow + 3) / 4 * 4);
    return SIGMA_OK;
}

void sg_fwd_free(sg_fwd *f) {
    for (size_t i = 0; i < f->n_bufs; i++) sg_free(&f->alloc, f->bufs[i]);
    f->n_bufs = 0;
}

static void add_rows(float *x, const float *d, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += d[i];
}

/* ---- attention (docs/sigma.md, "DiffQKV attention") ------------------------
 * Q, K and V come from their own projections with their own head counts; an
 * AugQ model passes q0 through a SwiGLU (gate/up/down) to get Q. K and Q are
 * rotated, the new K/V rows go to the cache strategy, which attends. */
int sg_attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                 const sigma_kv_strategy *kv, void *kv_state, const float *xn, size_t n,
                 uint32_t pos0, const sg_attn_bufs *b, float *out, sg_err *err) {
    sg_fwd_seg seg = {kv, kv_state, 0, n, pos0, n, NULL, NULL, SIGMA_OK, err};
    int st = sg_attention_segs(e, hp, L, layer, &seg, 1, xn, n, b, out, err);
    return st != SIGMA_OK ? st : seg.status;
}

/* One segment's append and attend through its own strategy (rows row0..). */
static int seg_attend(const sg_hparams *hp, uint32_t layer, sg_fwd_seg *g, const sg_attn_bufs *b) {
    const sigma_kv_strategy *kv = g->kv;
    size_t r = g->row0;
    int st;
    if ((st = kv->append(g->kv_state, layer, g->pos0, (uint32_t)g->n,
                         b->k + r * hp->n_k * hp->d_qk, b->v + r * hp->n_v * hp->d_v)) != SIGMA_OK)
        return sg_error(g->err, st, "layer %u: KV strategy '%s' append failed", layer, kv->name);
    sigma_kv_attend_args a;
    memset(&a, 0, sizeof a);
    a.struct_size = (uint32_t)sizeof a;
    a.layer = layer;
    a.pos0 = g->pos0;
    a.n_queries = (uint32_t)g->n;
    a.q = b->q + r * hp->n_q * hp->d_qk;
    a.out = b->att + r * hp->n_q * hp->d_v;
    a.scale = (float)(1.0 / sqrt((double)hp->d_qk));
    if ((st = kv->attend(g->kv_state, &a)) != SIGMA_OK)
        return sg_error(g->err, st, "layer %u: KV strategy '%s' attend failed", layer, kv->name);
    return SIGMA_OK;
}

int sg_attention_segs(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                      sg_fwd_seg *segs, size_t n_segs, const float *xn, size_t n,
                      const sg_attn_bufs *b, float *out, sg_err *err) {
    int st;
    /* projections: q (or q0 for AugQ), k and v share the input */
    float *qdst = hp->d_aug ? b->q0 : b->q;
    const sg_tensor *w3[3] = {L->wq, L->wk, L->wv};
    float *y3[3] = {qdst, b->k, b->v};
    if ((st = sg_matmul_multi(e, 3, w3, xn, n, y3)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: q/k/v projection failed", layer);
    if (hp->d_aug) {
        /* AugQ: q = q_down(silu(q_gate(q0)) * q_up(q0)) */
        const sg_tensor *w2[2] = {L->wq_gate, L->wq_up};
        float *y2[2] = {b->aug_g, b->aug_u};
        if ((st = sg_matmul_multi(e, 2, w2, b->q0, n, y2)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ gate/up failed", layer);
        sg_swiglu(b->aug_g, b->aug_u, n * hp->d_aug);
        if ((st = sg_matmul(e, L->wq_down, b->aug_g, n, b->q)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ down failed", layer);
    }
    sg_rope_pairs pairs =
        hp->rope_layout == SG_ROPE_HALVES ? SG_ROPE_PAIRS_HALVES : SG_ROPE_PAIRS_ADJACENT;
    sg_rope_apply(b->q, n, hp->n_q, hp->d_qk, hp->n_rot, pairs, b->rope_cs);
    sg_rope_apply(b->k, n, hp->n_k, hp->d_qk, hp->n_rot, pairs, b->rope_cs);

    /* each segment (session) appends to and attends through its own cache;
     * a failed segment's rows get zeros and leave its cache alone */
    for (size_t i = 0; i < n_segs; i++) {
        sg_fwd_seg *g = &segs[i];
        if (g->status == SIGMA_OK) g->status = seg_attend(hp, layer, g, b);
        if (g->status != SIGMA_OK)
            memset(b->att + g->row0 * hp->n_q * hp->d_v, 0, g->n * hp->n_q * hp->d_v * sizeof(float));
    }
    if ((st = sg_matmul(e, L->wo, b->att, n, out)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: output projection failed", layer);
    return SIGMA_OK;
}

int sg_forward(sg_fwd *f, const sigma_token *tokens, size_t n, uint32_t pos0, size_t logits_from,
               float *logits, sigma_cancel_fn cancel, void *cancel_user, sg_err *err) {
    if (!f->kv) return sg_error(err, SIGMA_E_INTERNAL, "bad forward call");
    sg_fwd_seg seg = {f->kv, f->kv_state, 0, n, pos0, logits_from, cancel, cancel_user, SIGMA_OK, err};
    int st = sg_forward_segs(f, tokens, n, &seg, 1, logits, err);
    return st != SIGMA_OK ? st : seg.status;
}

/* Poll the cancel callbacks of the live segments; the number still live. */
static size_t segs_poll(sg_fwd_seg *segs, size_t n_segs) {
    size_t live = 0;
    for (size_t i = 0; i < n_segs; i++) {
        sg_fwd_seg *g = &segs[i];
        if (g->status == SIGMA_OK && g->cancel && g->cancel(g->cancel_user))
            g->status = sg_error(g->err, SIGMA_E_CANCELLED, "cancelled");
        live += g->status == SIGMA_OK;
    }
    return live;
}

int sg_forward_segs(sg_fwd *f, const sigma_token *tokens, size_t n, sg_fwd_seg *segs,
                    size_t n_segs, float *logits, sg_err *err) {
    const sigma_model *m = f->model;
    const sg_hparams *hp = &m->hp;
    const sg_exec *e = &f->exec;
    const size_t E = hp->n_embd, F = hp->n_ff;
    int st;
    size_t covered = 0;
    for (size_t i = 0; i < n_segs; i++) {
        if (segs[i].row0 != covered || segs[i].n == 0 || !segs[i].kv)
            return sg_error(err, SIGMA_E_INTERNAL, "bad forward call");
        covered += segs[i].n;
    }
    if (n == 0 || n > f->n_batch || covered != n) return sg_error(err, SIGMA_E_INTERNAL, "bad forward call");

    for (size_t t = 0; t < n; t++)
        if ((st = sg_embed_row(e->k, m->tok_embd, (uint32_t)tokens[t], f->x + t * E)) != SIGMA_OK)
            return sg_error(err, st, "cannot read the embedding of token %d", tokens[t]);
    if (hp->n_rot) /* per-row positions: each segment from its own pos0 */
        for (size_t i = 0; i < n_segs; i++)
            sg_rope_table_scaled(f->rope_cs + segs[i].row0 * hp->n_rot, segs[i].pos0, segs[i].n,
                                 hp->n_rot, hp->rope_theta, hp->rope_freq_scale, m->rope_factors);

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        const sg_layer *L = &m->layers[l];
        if (segs_poll(segs, n_segs) == 0) return SIGMA_OK;
        /* attention block */
        if ((st = sg_rmsnorm(e, f->x, L->attn_norm, hp->norm_eps, n, E, f->xn, f->norm_w)))
            return sg_error(err, st, "layer %u: attn_norm failed", l);
        if ((st = sg_attention_segs(e, hp, L, l, segs, n_segs, f->xn, n, &f->ab, f->delta, err)))
            return st;
        add_rows(f->x, f->delta, n * E);
        /* MLP block */
        if ((st = sg_rmsnorm(e, f->x, L->ffn_norm, hp->norm_eps, n, E, f->xn, f->norm_w)))
            return sg_error(err, st, "layer %u: ffn_norm failed", l);
        const sg_tensor *w2[2] = {L->w_gate, L->w_up};
        float *y2[2] = {f->ffn_g, f->ffn_u};
        if ((st = sg_matmul_multi(e, 2, w2, f->xn, n, y2)))
            return sg_error(err, st, "layer %u: ffn gate/up failed", l);
        sg_swiglu(f->ffn_g, f->ffn_u, n * F);
        if ((st = sg_matmul(e, L->w_down, f->ffn_g, n, f->delta)))
            return sg_error(err, st, "layer %u: ffn_down failed", l);
        add_rows(f->x, f->delta, n * E);
    }
    if (segs_poll(segs, n_segs) == 0) return SIGMA_OK;

    /* the rows that want logits, of every segment, in one lm_head matmul */
    size_t nr = 0;
    for (size_t i = 0; i < n_segs && logits; i++) {
        const sg_fwd_seg *g = &segs[i];
        if (g->logits_from >= g->n) continue;
        size_t r = g->n - g->logits_from;
        if ((st = sg_rmsnorm(e, f->x + (g->row0 + g->logits_from) * E, m->out_norm, hp->norm_eps, r,
                             E, f->xn + nr * E, f->norm_w)))
            return sg_error(err, st, "output_norm failed");
        nr += r;
    }
    if (nr && (st = sg_matmul(e, m->output, f->xn, nr, logits)))
        return sg_error(err, st, "lm_head failed");
    return SIGMA_OK;
}
