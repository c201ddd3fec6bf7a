/* Tensor operations on top of the kernel table: matmul (any weight type),
 * RMSNorm, RoPE, SwiGLU, softmax, embedding lookup. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core.h"

size_t sg_kernel_row_bytes(uint32_t type, uint64_t n) {
    uint32_t be, bb;
    switch (type) {
    case SG_TYPE_F32: be = 1; bb = 4; break;
    case SG_TYPE_F16: case SG_TYPE_BF16: be = 1; bb = 2; break;
    case SG_TYPE_Q4_0: be = 32; bb = 18; break;
    case SG_TYPE_Q4_1: be = 32; bb = 20; break;
    case SG_TYPE_Q5_0: be = 32; bb = 22; break;
    case SG_TYPE_Q5_1: be = 32; bb = 24; break;
    case SG_TYPE_Q8_0: be = 32; bb = 34; break;
    case SG_TYPE_Q4_K: be = 256; bb = 144; break;
    case SG_TYPE_Q5_K: be = 256; bb = 176; break;
    case SG_TYPE_Q6_K: be = 256; bb = 210; break;
    case SG_TYPE_Q2_K: be = 256; bb = 84; break;
    case SG_TYPE_Q3_K: be = 256; bb = 110; break;
    case SG_TYPE_IQ4_NL: be = 32; bb = 18; break;
    case SG_TYPE_IQ4_XS: be = 256; bb = 136; break;
    default: return 0;
    }
    if (n == 0 || n % be) return 0;
    uint64_t r;
    if (!sg_mul_u64(n / be, bb, &r) || r > SIZE_MAX) return 0;
    return (size_t)r;
}

/* ---- matmul ---------------------------------------------------------------- */

/* Tasks are groups of MM_GROUP consecutive output rows of one matrix, so a
 * kernel call sees whole register tiles; every output element is computed
 * by one kernel call in an order that does not depend on the split. */
#define MM_GROUP 8

enum { MM_LEGACY = 0, MM_FLOAT = 1, MM_Q8 = 2, MM_Q8K = 3 };

typedef struct mm_job {
    const sg_exec *e;
    size_t n_mats;
    const sg_tensor *const *w;
    float *const *y;
    size_t grp_start[9];        /* prefix sums of the row groups, n_mats+1 */
    size_t rows[8];
    size_t row_bytes[8];
    int mode[8];
    const float *x;
    const uint8_t *qa;          /* quantized activations (MM_Q8) */
    size_t qa_stride;
    const uint8_t *qk;          /* K-quant activations (MM_Q8K) */
    size_t qk_stride;
    size_t n, in;
    atomic_int failed;          /* set when a conversion fails */
} mm_job;

/* Rows [r0, r1) of matrix m: convert each weight row once into the thread's
 * scratch and dot it with every activation row (fused for one row). */
static int mm_rows_legacy(mm_job *j, uint32_t tid, size_t m, size_t r0, size_t r1) {
    const sg_exec *e = j->e;
    float *buf = e->scratch + (size_t)tid * e->scratch_per_thread;
    const sg_tensor *w = j->w[m];
    size_t out = j->rows[m];
    for (size_t row = r0; row < r1; row++) {
        const uint8_t *src = (const uint8_t *)w->data + row * j->row_bytes[m];
        if (j->n == 1 && e->k->dot_row && e->k->dot_row(w->type, src, j->x, j->in, &j->y[m][row]) == 0)
            continue;
        if (e->k->to_f32(w->type, src, buf, j->in) != 0) return -1;
        float *y = j->y[m];
        const float *x = j->x;
        for (size_t t = 0; t < j->n; t++) y[t * out + row] = e->k->dot_f32(x + t * j->in, buf, j->in);
    }
    return 0;
}

static void mm_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    mm_job *j = ctx;
    const sg_exec *e = j->e;
    size_t m = 0;
    size_t g = begin;
    while (g < end) {
        while (g >= j->grp_start[m + 1]) m++;
        size_t g_end = end < j->grp_start[m + 1] ? end : j->grp_start[m + 1];
        size_t r0 = (g - j->grp_start[m]) * MM_GROUP;
        size_t r1 = (g_end - j->grp_start[m]) * MM_GROUP;
        if (r1 > j->rows[m]) r1 = j->rows[m];
        g = g_end;
        const sg_tensor *w = j->w[m];
        if (j->mode[m] != MM_LEGACY) {
            sg_gemm gg;
            gg.type = w->type;
            /* packed rows: whole groups of 8 (MM_GROUP), same results */
            int x8 = j->mode[m] == MM_Q8 && w->packed && e->k->gemm_x8 && w->type < 32 &&
                     (e->k->x8_types >> w->type & 1u);
            gg.w = (const uint8_t *)(x8 ? w->packed : w->data) + r0 * j->row_bytes[m];
            gg.w_stride = j->row_bytes[m];
            gg.nr = r1 - r0;
            if (j->mode[m] == MM_Q8) {
                gg.a = j->qa;
                gg.a_stride = j->qa_stride;
            } else if (j->mode[m] == MM_Q8K) {
                gg.a = j->qk;
                gg.a_stride = j->qk_stride;
            } else {
                gg.a = j->x;
                gg.a_stride = j->in * sizeof(float);
            }
            gg.na = j->n;
            gg.n = j->in;
            gg.y = j->y[m] + r0;
            gg.ldy = j->rows[m];
            gg.work = e->scratch + (size_t)tid * e->scratch_per_thread;
            gg.work_bytes = e->scratch_per_thread * sizeof(float);
            if (x8 && e->k->gemm_x8(&gg) == 0) continue;
            gg.w = (const uint8_t *)w->data + r0 * j->row_bytes[m];
            if (e->k->gemm(&gg) == 0) continue;
        }
        if (mm_rows_legacy(j, tid, m, r0, r1) != 0) {
            atomic_store_explicit(&j->failed, 1, memory_order_relaxed);
            return;
        }
    }
}

int sg_matmul_multi(const sg_exec *e, size_t n_mats, const sg_tensor *const *w, const float *x,
                    size_t n, float *const *y) {
    if (n_mats == 0 || n_mats > 8) return SIGMA_E_INTERNAL;
    mm_job j;
    memset(&j, 0, sizeof j);
    atomic_init(&j.failed, 0);
    j.e = e;
    j.n_mats = n_mats;
    j.w = w;
    j.y = y;
    j.x = x;
    j.n = n;
    j.in = (size_t)w[0]->ne[0];
    if (j.in == 0 || j.in > e->scratch_per_thread) return SIGMA_E_INTERNAL;
    size_t qrow = sg_q8_row_bytes(j.in), krow = sg_q8k_row_bytes(j.in);
    /* the 8-bit activation rows of both kinds share e->qbuf: q8 rows first */
    int need_q8 = 0, want_k = 0;
    for (size_t m = 0; m < n_mats; m++)
        if (sg_type_q8_act(w[m]->type)) need_q8 = 1;
    size_t q8_bytes = need_q8 && qrow && e->qbuf && n <= e->qbuf_bytes / qrow ? n * qrow : 0;
    int k_fits = krow && e->qbuf && e->k->quantize_q8k && n <= (e->qbuf_bytes - q8_bytes) / krow;
    need_q8 = 0;
    for (size_t m = 0; m < n_mats; m++) {
        if (w[m]->ne[0] != j.in) return SIGMA_E_INTERNAL;
        j.row_bytes[m] = sg_kernel_row_bytes(w[m]->type, j.in);
        if (!j.row_bytes[m]) return SIGMA_E_UNSUPPORTED;
        j.rows[m] = (size_t)w[m]->ne[1];
        j.grp_start[m + 1] = j.grp_start[m] + (j.rows[m] + MM_GROUP - 1) / MM_GROUP;
        uint32_t t = w[m]->type;
        if (!e->k->gemm) {
            j.mode[m] = MM_LEGACY;
        } else if (t == SG_TYPE_F32 || t == SG_TYPE_F16 || t == SG_TYPE_BF16) {
            j.mode[m] = MM_FLOAT;
        } else if (sg_type_q8_act(t) && e->k->act_q8 && e->k->quantize_q8 && q8_bytes) {
            j.mode[m] = MM_Q8;
            need_q8 = 1;
        } else if (sg_type_q8k_act(t) && e->k->act_q8 && k_fits) {
            j.mode[m] = MM_Q8K;
            want_k = 1;
        } else {
            j.mode[m] = MM_LEGACY;
        }
    }
    if (n == 0) return SIGMA_OK;
    /* Numeric policy (docs/model-format.md): the 8-bit quantizers never see
     * a NaN or an infinity (converting one to an integer is undefined). A
     * row holding one is quantized as zeros and its outputs are set to NaN
     * after the kernels ran, so non-finite values propagate as NaN. The scan
     * reads the activations once, next to the whole weight matrix. */
    size_t n_bad = 0;
    const float *zero = NULL;
    if (need_q8 || want_k) {
        for (size_t t = 0; t < n; t++)
            if (sg_first_nonfinite(x + t * j.in, j.in) < j.in) n_bad++;
        if (n_bad) { /* thread 0's scratch, free until the kernels run */
            memset(e->scratch, 0, j.in * sizeof(float));
            zero = e->scratch;
        }
    }
#define ACT_ROW(t) (n_bad && sg_first_nonfinite(x + (t) * j.in, j.in) < j.in ? zero : x + (t) * j.in)
    if (need_q8) {
        for (size_t t = 0; t < n; t++) e->k->quantize_q8(ACT_ROW(t), j.in, e->qbuf + t * qrow);
        j.qa = e->qbuf;
        j.qa_stride = qrow;
    }
    if (want_k) {
        uint8_t *qk = e->qbuf + q8_bytes;
        for (size_t t = 0; t < n; t++) e->k->quantize_q8k(ACT_ROW(t), j.in, qk + t * krow);
        j.qk = qk;
        j.qk_stride = krow;
    }
#undef ACT_ROW
    size_t total = j.grp_start[n_mats];
    /* chunks of groups: enough work per chunk to hide scheduling costs */
    size_t grain = total / ((size_t)e->n_threads * 8);
    if (grain < 1) grain = 1;
    sg_pool_run(e->pool, total, grain, mm_task, &j);
    if (atomic_load(&j.failed)) return SIGMA_E_UNSUPPORTED;
    for (size_t t = 0; n_bad && t < n; t++)
        if (sg_first_nonfinite(x + t * j.in, j.in) < j.in)
            for (size_t m = 0; m < n_mats; m++)
                for (size_t r = 0; r < j.rows[m]; r++) y[m][t * j.rows[m] + r] = NAN;
    return SIGMA_OK;
}

int sg_matmul(const sg_exec *e, const sg_tensor *w, const float *x, size_t n, float *y) {
    const sg_tensor *ws[1] = {w};
    float *ys[1] = {y};
    return sg_matmul_multi(e, 1, ws, x, n, ys);
}

/* ---- norms and activations ------------------------------------------------------ */

void sg_rmsnorm_f32(const float *x, const float *w, float eps, size_t d, float *out) {
    double ss = 0.0;
    for (size_t i = 0; i < d; i++) ss += (double)x[i] * (double)x[i];
    float scale = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
    if (w)
        for (size_t i = 0; i < d; i++) out[i] = (x[i] * scale) * w[i];
    else
        for (size_t i = 0; i < d; i++) out[i] = x[i] * scale;
}

int sg_rmsnorm(const sg_exec *e, const float *x, const sg_tensor *weight, float eps, size_t n,
               size_t d, float *out, float *tmp) {
    if (weight->ne[0] != d) return SIGMA_E_INTERNAL;
    if (e->k->to_f32(weight->type, weight->data, tmp, d) != 0) return SIGMA_E_UNSUPPORTED;
    for (size_t t = 0; t < n; t++) sg_rmsnorm_f32(x + t * d, tmp, eps, d, out + t * d);
    return SIGMA_OK;
}

void sg_swiglu(float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = a[i];
        a[i] = g / (1.0f + expf(-g)) * b[i];
    }
}

void sg_geglu_tanh(float *a, const float *b, size_t n) {
    const double c = 0.7978845608028654; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        double g = a[i];
        a[i] = (float)(0.5 * g * (1.0 + tanh(c * (g + 0.044715 * g * g * g)))) * b[i];
    }
}

void sg_softcap(float *x, size_t n, float cap) {
    double inv = 1.0 / (double)cap;
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)cap * tanh((double)x[i] * inv));
}

void sg_softmax(float *x, size_t n) {
    if (n == 0) return;
    float mx = x[0];
    for (size_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

/* ---- RoPE ----------------------------------------------------------------------- */

void sg_rope_table(float *cs, uint32_t pos0, size_t n, uint32_t n_rot, float theta) {
    sg_rope_table_scaled(cs, pos0, n, n_rot, theta, 1.0f, NULL);
}

void sg_rope_table_scaled(float *cs, uint32_t pos0, size_t n, uint32_t n_rot, float theta,
                          float freq_scale, const float *factors) {
    uint32_t half = n_rot / 2;
    for (uint32_t i = 0; i < half; i++) {
        double freq = pow((double)theta, -2.0 * (double)i / (double)n_rot) * (double)freq_scale;
        if (factors) freq /= (double)factors[i];
        for (size_t t = 0; t < n; t++) {
            double a = (double)(pos0 + (uint64_t)t) * freq;
            cs[(t * half + i) * 2] = (float)cos(a);
            cs[(t * half + i) * 2 + 1] = (float)sin(a);
        }
    }
}

void sg_rope_apply(float *x, size_t n, uint32_t n_heads, uint32_t hd, uint32_t n_rot,
                   sg_rope_pairs pairs, const float *cs) {
    uint32_t half = n_rot / 2;
    for (size_t t = 0; t < n; t++) {
        const float *c = cs + t * half * 2;
        for (uint32_t h = 0; h < n_heads; h++) {
            float *v = x + (t * n_heads + h) * hd;
            for (uint32_t i = 0; i < half; i++) {
                uint32_t i0 = pairs == SG_ROPE_PAIRS_ADJACENT ? 2 * i : i;
                uint32_t i1 = pairs == SG_ROPE_PAIRS_ADJACENT ? 2 * i + 1 : i + half;
                float x0 = v[i0], x1 = v[i1];
                float co = c[2 * i], si = c[2 * i + 1];
                v[i0] = x0 * co - x1 * si;
                v[i1] = x0 * si + x1 * co;
            }
        }
    }
}

/* ---- embedding -------------------------------------------------------------------- */

int sg_embed_row(const sg_kernels *k, const sg_tensor *emb, uint32_t id, float *out) {
    uint64_t d = emb->ne[0];
    if (id >= emb->ne[1]) return SIGMA_E_INVALID_ARG;
    size_t rb = sg_kernel_row_bytes(emb->type, d);
    if (!rb) return SIGMA_E_UNSUPPORTED;
    const uint8_t *src = (const uint8_t *)emb->data + (size_t)id * rb;
    return k->to_f32(emb->type, src, out, d) == 0 ? SIGMA_OK : SIGMA_E_UNSUPPORTED;
}

/* ---- finiteness --------------------------------------------------------------------- */

size_t sg_first_nonfinite(const float *x, size_t n) {
    /* exponent all ones = NaN or infinity; blocks of 64 are tested with an
     * OR of integer compares (vectorizes), then the bad block is searched */
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        uint32_t bad = 0;
        for (size_t j = 0; j < 64; j++) {
            uint32_t b;
            memcpy(&b, x + i + j, 4);
            bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
        }
        if (bad) break;
    }
    for (; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}
