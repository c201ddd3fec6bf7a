/* The forward pass: embed -> layers (pre-norm attention, pre-norm gated MLP)
 * -> final norm -> lm_head, for a batch of n tokens.
 *
 *     x = embed(tokens) * embd_scale                     (Gemma: sqrt(n_embd))
 *     for each layer:
 *         x += post_norm?(attention(rmsnorm(x)))         sg_attention, below
 *         x += post_norm?(down(act(gate(h)) * up(h))),   h = rmsnorm(x)
 *     logits = softcap?(output(rmsnorm(x)))              only for the rows asked for
 *
 * The optional steps (post-norms, Q/K biases and norms, fused tensors, the
 * activation, soft-capping, sliding windows) are the architecture's row in
 * lib/model/arch.c; the loader turns it into the layer's tensors (NULL when
 * absent) and hparams, which is all this file looks at. */
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
    /* SIGMA_KERNELS (read here, once per session): "generic", "avx2", "avx512", "exact", "q8",
     * "nopack" */
    sg_kernels_init_spec(&f->kern, allow_simd, getenv("SIGMA_KERNELS"));
    uint64_t E = hp->n_embd, F = hp->n_ff, QD = (uint64_t)hp->n_q * hp->d_qk;
    uint64_t KD = (uint64_t)hp->n_k * hp->d_qk, VD = (uint64_t)hp->n_v * hp->d_v;
    uint64_t AD = (uint64_t)hp->n_q * hp->d_v, DA = hp->d_aug;
    uint64_t widest = E;
    if (KD > widest) widest = KD;
    if (VD > widest) widest = VD;
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
    const sg_layer *L0 = &m->layers[0];
    int fused_qkv = L0->wqkv != NULL, fused_gu = L0->w_gate == NULL, two_bases = 0;
    for (uint32_t l = 0; l < hp->n_layer; l++)
        if (m->layers[l].rope_theta != hp->rope_theta) two_bases = 1;
    if (two_bases) f->rope_cs_swa = fwd_alloc(f, n_batch, hp->n_rot ? hp->n_rot : 2, &ok);
    if (fused_qkv) f->qkv = fwd_alloc(f, n_batch, QD + KD + VD, &ok);
    if (fused_gu) f->ffn_gu = fwd_alloc(f, n_batch, 2 * F, &ok);
    /* per-thread scratch: a converted weight row, or the batched matmul
     * kernels' expanded weight rows (sg_gemm_work_bytes) */
    uint64_t spt = (sg_gemm_work_bytes((size_t)widest) + 3) / 4;
    if (spt < widest) spt = widest;
    f->scratch = fwd_alloc(f, nt, spt, &ok);
    f->vec = fwd_alloc(f, 1, widest, &ok);
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

/* The numeric policy (docs/model-format.md, "Non-finite and hostile tensor
 * data"): after the embedding, each residual add and the logits, the rows
 * are checked; the first NaN or infinity stops the pass with
 * SIGMA_E_NUMERIC naming where it appeared (the caller rolls the cache
 * back). The check reads each row once, far less than the matmuls. */
static int check_finite(const float *x, size_t n_rows, size_t width, const char *where,
                        int layer, sg_err *err) {
    size_t i = sg_first_nonfinite(x, n_rows * width);
    if (i == n_rows * width) return SIGMA_OK;
    if (layer >= 0)
        return sg_error(err, SIGMA_E_NUMERIC,
                        "layer %d: the %s output is not finite (NaN or infinity) for the token "
                        "at batch row %zu: the model's weights produce non-finite values",
                        layer, where, i / width);
    return sg_error(err, SIGMA_E_NUMERIC,
                    "the %s is not finite (NaN or infinity) for the token at batch row %zu: the "
                    "model's weights produce non-finite values",
                    where, i / width);
}

/* check_finite for each live segment's rows of x; a segment with a
 * non-finite row fails alone (its status and message), the others go on. */
static void segs_check(sg_fwd_seg *segs, size_t n_segs, const float *x, size_t width,
                       const char *where, int layer) {
    for (size_t i = 0; i < n_segs; i++) {
        sg_fwd_seg *g = &segs[i];
        if (g->status == SIGMA_OK)
            g->status = check_finite(x + g->row0 * width, g->n, width, where, layer, g->err);
    }
}

static void add_rows(float *x, const float *d, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += d[i];
}

/* x[r][0..d) += b for n rows, b a bias tensor of d values converted into tmp */
static int add_bias(const sg_exec *e, float *x, size_t n, size_t d, const sg_tensor *b,
                    float *tmp) {
    if (e->k->to_f32(b->type, b->data, tmp, d) != 0) return SIGMA_E_UNSUPPORTED;
    for (size_t t = 0; t < n; t++) add_rows(x + t * d, tmp, d);
    return SIGMA_OK;
}

/* ---- attention (docs/sigma.md, "DiffQKV attention") ------------------------
 * Q, K and V come from their own projections (or one fused projection) with
 * their own head counts, plus biases when the layer has them; an AugQ model
 * passes q0 through a SwiGLU (gate/up/down) to get Q. Q/K heads are
 * RMS-normalised when the layer has Q/K norms, then rotated; the new K/V rows
 * of each segment (session) go to that segment's cache strategy, which
 * attends (over the layer's window, if any). The projections are shared by
 * every row of every segment. */
typedef struct attn_extra {
    float *qkv;  /* fused QKV output, or NULL */
    float *vec;  /* a bias or norm weight as f32, or NULL */
} attn_extra;

/* One segment's append and attend through its own strategy (rows row0..). */
static int seg_attend(const sg_hparams *hp, const sg_layer *L, uint32_t layer, sg_fwd_seg *g,
                      const sg_attn_bufs *b) {
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
    a.scale = hp->attn_scale > 0.0f ? hp->attn_scale : (float)(1.0 / sqrt((double)hp->d_qk));
    a.window = L->window;
    a.softcap = hp->attn_softcap;
    if ((st = kv->attend(g->kv_state, &a)) != SIGMA_OK)
        return sg_error(g->err, st, "layer %u: KV strategy '%s' attend failed%s", layer, kv->name,
                        st == SIGMA_E_UNSUPPORTED && (a.window || a.softcap != 0.0f)
                            ? " (it does not support this layer's sliding window or soft-capping)"
                            : "");
    return SIGMA_OK;
}

static int attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                     sg_fwd_seg *segs, size_t n_segs, const float *xn, size_t n,
                     const sg_attn_bufs *b, const attn_extra *x, float *out, sg_err *err) {
    int st;
    if ((L->wqkv && !x->qkv) || ((L->bq || L->q_norm) && !x->vec))
        return sg_error(err, SIGMA_E_INTERNAL, "layer %u: attention buffers missing", layer);
    const size_t QD = (size_t)hp->n_q * hp->d_qk, KD = (size_t)hp->n_k * hp->d_qk;
    const size_t VD = (size_t)hp->n_v * hp->d_v;
    /* projections: q (or q0 for AugQ), k and v share the input */
    float *qdst = hp->d_aug ? b->q0 : b->q;
    if (L->wqkv) {
        if ((st = sg_matmul(e, L->wqkv, xn, n, x->qkv)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: fused qkv projection failed", layer);
        for (size_t t = 0; t < n; t++) {
            const float *r = x->qkv + t * (QD + KD + VD);
            memcpy(qdst + t * QD, r, QD * sizeof *r);
            memcpy(b->k + t * KD, r + QD, KD * sizeof *r);
            memcpy(b->v + t * VD, r + QD + KD, VD * sizeof *r);
        }
    } else {
        const sg_tensor *w3[3] = {L->wq, L->wk, L->wv};
        float *y3[3] = {qdst, b->k, b->v};
        if ((st = sg_matmul_multi(e, 3, w3, xn, n, y3)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: q/k/v projection failed", layer);
    }
    if (L->bq && ((st = add_bias(e, qdst, n, QD, L->bq, x->vec)) != SIGMA_OK ||
                  (st = add_bias(e, b->k, n, KD, L->bk, x->vec)) != SIGMA_OK ||
                  (st = add_bias(e, b->v, n, VD, L->bv, x->vec)) != SIGMA_OK))
        return sg_error(err, st, "layer %u: q/k/v bias failed", layer);
    if (hp->d_aug) {
        /* AugQ: q = q_down(silu(q_gate(q0)) * q_up(q0)) */
        const sg_tensor *w2[2] = {L->wq_gate, L->wq_up};
        float *y2[2] = {b->aug_g, b->aug_u};
        if ((st = sg_matmul_multi(e, 2, w2, b->q0, n, y2)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ gate/up failed", layer);
        e->k->swiglu(b->aug_g, b->aug_u, n * hp->d_aug);
        if ((st = sg_matmul(e, L->wq_down, b->aug_g, n, b->q)) != SIGMA_OK)
            return sg_error(err, st, "layer %u: AugQ down failed", layer);
    }
    if (L->q_norm &&
        ((st = sg_rmsnorm(e, b->q, L->q_norm, hp->norm_eps, n * hp->n_q, hp->d_qk, b->q, x->vec)) ||
         (st = sg_rmsnorm(e, b->k, L->k_norm, hp->norm_eps, n * hp->n_k, hp->d_qk, b->k, x->vec))))
        return sg_error(err, st, "layer %u: q/k norm failed", layer);
    sg_rope_pairs pairs =
        hp->rope_layout == SG_ROPE_HALVES ? SG_ROPE_PAIRS_HALVES : SG_ROPE_PAIRS_ADJACENT;
    sg_rope_apply(b->q, n, hp->n_q, hp->d_qk, hp->n_rot, pairs, b->rope_cs);
    sg_rope_apply(b->k, n, hp->n_k, hp->d_qk, hp->n_rot, pairs, b->rope_cs);

    /* each segment (session) appends to and attends through its own cache;
     * a failed segment's rows get zeros and leave its cache alone */
    for (size_t i = 0; i < n_segs; i++) {
        sg_fwd_seg *g = &segs[i];
        if (g->status == SIGMA_OK) g->status = seg_attend(hp, L, layer, g, b);
        if (g->status != SIGMA_OK)
            memset(b->att + g->row0 * hp->n_q * hp->d_v, 0, g->n * hp->n_q * hp->d_v * sizeof(float));
    }
    if ((st = sg_matmul(e, L->wo, b->att, n, out)) != SIGMA_OK)
        return sg_error(err, st, "layer %u: output projection failed", layer);
    return SIGMA_OK;
}

int sg_attention_segs(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                      sg_fwd_seg *segs, size_t n_segs, const float *xn, size_t n,
                      const sg_attn_bufs *b, float *out, sg_err *err) {
    attn_extra none = {NULL, NULL};
    return attention(e, hp, L, layer, segs, n_segs, xn, n, b, &none, out, err);
}

int sg_attention(const sg_exec *e, const sg_hparams *hp, const sg_layer *L, uint32_t layer,
                 const sigma_kv_strategy *kv, void *kv_state, const float *xn, size_t n,
                 uint32_t pos0, const sg_attn_bufs *b, float *out, sg_err *err) {
    sg_fwd_seg seg = {kv, kv_state, 0, n, pos0, n, NULL, NULL, SIGMA_OK, err};
    int st = sg_attention_segs(e, hp, L, layer, &seg, 1, xn, n, b, out, err);
    return st != SIGMA_OK ? st : seg.status;
}

/* ---- the MLP: down(act(gate(h)) * up(h)), gate/up separate or fused -------- */
static int mlp(sg_fwd *f, const sg_layer *L, uint32_t l, size_t n, sg_err *err) {
    const sg_exec *e = &f->exec;
    const sg_hparams *hp = &f->model->hp;
    const size_t F = hp->n_ff;
    int st;
    if (L->w_gate) {
        const sg_tensor *w2[2] = {L->w_gate, L->w_up};
        float *y2[2] = {f->ffn_g, f->ffn_u};
        if ((st = sg_matmul_multi(e, 2, w2, f->xn, n, y2)))
            return sg_error(err, st, "layer %u: ffn gate/up failed", l);
    } else {
        /* fused: each row is [gate (F) | up (F)] */
        if ((st = sg_matmul(e, L->w_up, f->xn, n, f->ffn_gu)))
            return sg_error(err, st, "layer %u: ffn fused gate/up failed", l);
        for (size_t t = 0; t < n; t++) {
            memcpy(f->ffn_g + t * F, f->ffn_gu + t * 2 * F, F * sizeof(float));
            memcpy(f->ffn_u + t * F, f->ffn_gu + t * 2 * F + F, F * sizeof(float));
        }
    }
    if (hp->act == SG_ACT_GEGLU_TANH)
        sg_geglu_tanh(f->ffn_g, f->ffn_u, n * F);
    else
        e->k->swiglu(f->ffn_g, f->ffn_u, n * F);
    if ((st = sg_matmul(e, L->w_down, f->ffn_g, n, f->delta)))
        return sg_error(err, st, "layer %u: ffn_down failed", l);
    return SIGMA_OK;
}

/* One layer: x += post?(attention(norm(x))); x += post?(mlp(norm(x))). */
static int layer_forward(sg_fwd *f, uint32_t l, sg_fwd_seg *segs, size_t n_segs, size_t n,
                         sg_err *err) {
    const sigma_model *m = f->model;
    const sg_hparams *hp = &m->hp;
    const sg_exec *e = &f->exec;
    const sg_layer *L = &m->layers[l];
    const size_t E = hp->n_embd;
    int st;
    /* attention block; a layer with its own RoPE base uses the second table */
    sg_attn_bufs ab = f->ab;
    if (f->rope_cs_swa && L->rope_theta != hp->rope_theta) ab.rope_cs = f->rope_cs_swa;
    if ((st = sg_rmsnorm(e, f->x, L->attn_norm, hp->norm_eps, n, E, f->xn, f->norm_w)))
        return sg_error(err, st, "layer %u: attn_norm failed", l);
    attn_extra ax = {f->qkv, f->vec};
    if ((st = attention(e, hp, L, l, segs, n_segs, f->xn, n, &ab, &ax, f->delta, err)))
        return st;
    if (L->post_attn_norm &&
        (st = sg_rmsnorm(e, f->delta, L->post_attn_norm, hp->norm_eps, n, E, f->delta, f->norm_w)))
        return sg_error(err, st, "layer %u: post_attention_norm failed", l);
    add_rows(f->x, f->delta, n * E);
    segs_check(segs, n_segs, f->x, E, "attention", (int)l);
    /* MLP block */
    if ((st = sg_rmsnorm(e, f->x, L->ffn_norm, hp->norm_eps, n, E, f->xn, f->norm_w)))
        return sg_error(err, st, "layer %u: ffn_norm failed", l);
    if ((st = mlp(f, L, l, n, err))) return st;
    if (L->post_ffn_norm &&
        (st = sg_rmsnorm(e, f->delta, L->post_ffn_norm, hp->norm_eps, n, E, f->delta, f->norm_w)))
        return sg_error(err, st, "layer %u: post_ffw_norm failed", l);
    add_rows(f->x, f->delta, n * E);
    segs_check(segs, n_segs, f->x, E, "ffn", (int)l);
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
    const size_t E = hp->n_embd;
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
    if (hp->embd_scale != 1.0f && hp->embd_scale != 0.0f)
        for (size_t i = 0; i < n * E; i++) f->x[i] *= hp->embd_scale;
    segs_check(segs, n_segs, f->x, E, "token embedding", -1);
    if (hp->n_rot) /* per-row positions: each segment from its own pos0 */
        for (size_t i = 0; i < n_segs; i++) {
            sg_fwd_seg *g = &segs[i];
            sg_rope_table_scaled(f->rope_cs + g->row0 * hp->n_rot, g->pos0, g->n, hp->n_rot,
                                 hp->rope_theta, hp->rope_freq_scale, m->rope_factors);
            /* windowed layers with their own base (Gemma 3's local layers): unscaled */
            for (uint32_t l = 0; f->rope_cs_swa && l < hp->n_layer; l++)
                if (m->layers[l].rope_theta != hp->rope_theta) {
                    sg_rope_table(f->rope_cs_swa + g->row0 * hp->n_rot, g->pos0, g->n, hp->n_rot,
                                  m->layers[l].rope_theta);
                    break;
                }
        }

    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (segs_poll(segs, n_segs) == 0) return SIGMA_OK;
        if ((st = layer_forward(f, l, segs, n_segs, n, err))) return st;
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
    if (nr && hp->final_softcap > 0.0f) sg_softcap(logits, nr * hp->n_vocab, hp->final_softcap);
    for (size_t i = 0, row = 0; i < n_segs && nr; i++) {
        sg_fwd_seg *g = &segs[i];
        if (g->logits_from >= g->n) continue;
        size_t r = g->n - g->logits_from;
        if (g->status == SIGMA_OK)
            g->status = check_finite(logits + row * hp->n_vocab, r, hp->n_vocab, "output (logits)",
                                     -1, g->err);
        row += r;
    }
    return SIGMA_OK;
}
