/* core: tensor types and compute: kernels (kernels.c, gemm.c, attnk.c), the
 * thread pool (pool.c), model-level operations (ops.c) and per-head
 * attention over cached rows (attn.c). Depends on base only.
 *
 * Kernels are reached through a table (sg_kernels) filled once when a
 * session opens, so SIMD variants can be chosen at run time without global
 * state. Higher-level operations (matmul, norms, RoPE, ...) take an sg_exec:
 * the kernel table, an optional thread pool and per-thread scratch memory.
 *
 * Determinism: every output element is computed by exactly one thread with a
 * reduction order that does not depend on the number of threads, so results
 * are bitwise identical for any thread count (for a given kernel table). */
#ifndef SG_CORE_CORE_H
#define SG_CORE_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../base/base.h"
#include "tensor.h"

/* ---- kernel table ------------------------------------------------------ */

/* Convert n elements of a row of a weight type into f32 (n a multiple of the
 * block size). Returns 0, or -1 for an unsupported type. */
typedef int (*sg_to_f32_fn)(uint32_t type, const void *src, float *dst, uint64_t n);

/* One call of a matrix-product kernel: y[j*ldy + i] = w_row(i) . a_row(j)
 * for i < nr weight rows (w_stride bytes apart) and j < na activation rows
 * (a_stride bytes apart) of n values. For Q4_0/Q4_1/Q8_0/IQ4_NL weights the
 * activation rows are sg_q8 rows (sg_q8_quantize), for Q2_K/Q3_K/Q4_K/
 * Q5_K/Q6_K/IQ4_XS sg_q8k rows (sg_q8k_quantize), otherwise f32. */
typedef struct sg_gemm {
    uint32_t type;
    const uint8_t *w;
    size_t w_stride, nr;
    const void *a;
    size_t a_stride, na;
    size_t n;
    float *y;
    size_t ldy;
    /* Optional work memory of the calling thread (NULL/0 = none): batched
     * quantized products expand weight rows into it (sg_gemm_work_bytes);
     * results are the same with or without it. */
    void *work;
    size_t work_bytes;
} sg_gemm;

/* Work bytes that let k->gemm take its fastest path for rows of n values. */
size_t sg_gemm_work_bytes(size_t n);

typedef struct sg_kernels {
    const char *name;                 /* "generic", "avx2", "avx512", "amx" */
    float (*dot_f32)(const float *a, const float *b, size_t n);
    void (*axpy_f32)(float *y, float a, const float *x, size_t n); /* y += a*x */
    void (*scale_f32)(float *y, float a, size_t n);                 /* y *= a */
    sg_to_f32_fn to_f32;
    /* Optional fused row . x for one activation row (decode): returns 0 and
     * writes *out, bitwise equal to dot_f32(to_f32(row), x), or -1 if the
     * type has no fused kernel. NULL = none. */
    int (*dot_row)(uint32_t type, const void *row, const float *x, size_t n, float *out);
    /* Matrix products (gemm.c): quantize one activation row of n values
     * (n % 32 == 0) into sg_q8_row_bytes(n) bytes, and the blocked product
     * (returns 0, or -1 for a type it does not handle). */
    void (*quantize_q8)(const float *x, size_t n, uint8_t *dst);
    /* the same for K-quant weights: n % 256 == 0, sg_q8k_row_bytes(n) */
    void (*quantize_q8k)(const float *x, size_t n, uint8_t *dst);
    int (*gemm)(const sg_gemm *g);
    /* 1: weights of the sg_type_q8_act / sg_type_q8k_act types are multiplied with 8-bit activations
     * (fast, llama.cpp-like accuracy); 0: f32 activations ("exact"). */
    int act_q8;
    /* Attention over a block of nb <= SG_ATTN_BLOCK cached rows (attnk.c).
     * Rows have type rt (SG_ROW_*), row j at element j*stride of its base.
     * attn_scores: s[h*SG_ATTN_BLOCK + j] = scale * (q_h . K_j) for h < nh
     *   (q_h at q + h*q_stride); each score is computed by the same
     *   operations whatever nh, nb and j's place in the block.
     * attn_exp: x[j] = exp(x[j] - m) for j < n (x[j] <= m); returns the sum.
     * attn_accum: out[i] += w[0]*V_0[i] + w[1]*V_1[i] + ... (in order). */
    void (*attn_scores)(const float *q, size_t q_stride, uint32_t nh, const void *k,
                        size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale, float *s);
    float (*attn_exp)(float *x, size_t n, float m);
    void (*attn_accum)(float *out, const float *w, size_t nb, const void *v, size_t v_stride,
                       uint32_t rt, uint32_t d);
    /* attn_accum for nh <= SG_ATTN_ACCUM_HEADS heads at once (head h:
     * out[h], w[h], V rows from v[h]; the v[h] may be equal): each head's
     * result bitwise equal to attn_accum for it alone (the heads only
     * interleave, so the chains of additions overlap in the pipeline). */
    void (*attn_accum_heads)(uint32_t nh, float *const *out, const float *const *w, size_t nb,
                             const void *const *v, size_t v_stride, uint32_t rt, uint32_t d);
    /* attn_clean_blocks: dst[j] = src[j] with NaNs as -inf (j < n), and
     * bmax[b] = the largest of dst[SG_ATTN_CLEAN_BLOCK*b ..] up to n (-inf
     * if none) for every started block b: what top-k selection keeps of a
     * row of scores (topv). dst may equal src. */
    void (*attn_clean_blocks)(float *dst, const float *src, size_t n, float *bmax);
    /* a[i] = silu(a[i]) * b[i] for i < n (attnk.c; portable: sg_swiglu with
     * libm's expf, the SIMD levels a vector exp within ~1e-7 of it); each
     * element's result independent of n and of its place */
    void (*swiglu)(float *a, const float *b, size_t n);
    /* Weights repacked by sg_pack_x8 (sg_tensor.packed): the same product
     * as gemm with g->w inside the packed copy (nr % 8 == 0, whole groups),
     * each element bitwise equal to sg_gemm_generic on the unpacked rows;
     * returns -1 for a type it does not read. NULL = this level reads no
     * packed weights. x8_types: bit (1u << type) for each type it reads
     * (the types the model repacks). */
    int (*gemm_x8)(const sg_gemm *g);
    uint32_t x8_types;
} sg_kernels;
#define SG_ATTN_ACCUM_HEADS 4
#define SG_ATTN_CLEAN_BLOCK 16

/* Cached row types for the attention kernels (values of sg_kv_type). */
enum { SG_ROW_F32 = 0, SG_ROW_F16 = 1, SG_ROW_BF16 = 2 };
#define SG_ATTN_BLOCK 64

/* Attention kernels: level 0 portable, 1 AVX2, 2 AVX-512 (caller checked the
 * CPU). The portable ones are used by the tests as well. */
void sg_attn_kernels_fill(sg_kernels *k, int level);
void sg_attn_scores_generic(const float *q, size_t q_stride, uint32_t nh, const void *k,
                            size_t k_stride, uint32_t rt, size_t nb, uint32_t d, float scale,
                            float *s);
float sg_attn_exp_generic(float *x, size_t n, float m);
void sg_attn_clean_blocks_generic(float *dst, const float *src, size_t n, float *bmax);
void sg_attn_accum_generic(float *out, const float *w, size_t nb, const void *v, size_t v_stride,
                           uint32_t rt, uint32_t d);
void sg_attn_accum_heads_generic(uint32_t nh, float *const *out, const float *const *w, size_t nb,
                                 const void *const *v, size_t v_stride, uint32_t rt, uint32_t d);

/* Fill the table for this CPU. allow_simd = 0 forces the portable kernels
 * (also forced by building with -Dgeneric_kernels=true). */
void sg_kernels_init(sg_kernels *k, int allow_simd);
/* The same, then apply a SIGMA_KERNELS-style spec (NULL = none): a comma
 * list of "generic" (portable C only), "avx2" (no AVX-512), "avx512" (no
 * AMX tiles), "exact" (f32
 * activations), "q8" (8-bit activations, the default), "nopack" (no
 * repacked weights: gemm_x8 = NULL, x8_types = 0). Unknown words are ignored. */
void sg_kernels_init_spec(sg_kernels *k, int allow_simd, const char *spec);

/* ---- matrix products (gemm.c) ---- */
/* Bytes of one quantized activation row of n values (0 if n % 32). */
size_t sg_q8_row_bytes(size_t n);
/* Does `type` take sg_q8 activation rows in k->gemm? */
int sg_type_q8_act(uint32_t type);
void sg_q8_quantize_generic(const float *x, size_t n, uint8_t *dst);
/* K-quant activation rows (256-value super-blocks): bytes of a row of n
 * values (0 if n % 256), which types take them, the quantizer. */
size_t sg_q8k_row_bytes(size_t n);
int sg_type_q8k_act(uint32_t type);
void sg_q8k_quantize_generic(const float *x, size_t n, uint8_t *dst);
int sg_gemm_generic(const sg_gemm *g);
/* Repack rows (a multiple of 8) of a Q4_0, Q4_1 or Q8_0 matrix (row_bytes a
 * multiple of the block's bytes) into the x8 layout (gemm.c; same size).
 * Returns 0, or -1 for a type or shape it does not take. sg_type_x8: the
 * types sg_pack_x8 takes. */
int sg_type_x8(uint32_t type);
int sg_pack_x8(uint32_t type, const uint8_t *src, size_t rows, size_t row_bytes, uint8_t *dst);
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SG_FORCE_GENERIC)
void sg_q8_quantize_avx2(const float *x, size_t n, uint8_t *dst);
int sg_gemm_avx2(const sg_gemm *g);
void sg_q8_quantize_avx512(const float *x, size_t n, uint8_t *dst);
int sg_gemm_avx512(const sg_gemm *g);
int sg_gemm_x8_avx2(const sg_gemm *g);
int sg_gemm_x8_avx512(const sg_gemm *g);
/* AMX tiles (x86-64 Linux, where the kernel grants the tile state on
 * request): Q4_0/Q4_1/Q8_0 packed batches of 16 rows and more in tile registers,
 * the rest through sg_gemm_x8_avx512; the same bits. Only for tables whose
 * CPU check passed (kernels.c). */
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(SG_FORCE_GENERIC)
#  define SG_HAVE_AMX 1
int sg_gemm_x8_amx(const sg_gemm *g);
/* the AMX level's gemm: Q4_K/Q5_K/Q6_K/IQ4_XS batches in tile registers,
 * the portable kernel's bits for those types; anything else as
 * sg_gemm_avx512 */
int sg_gemm_amx(const sg_gemm *g);
#else
#  define SG_HAVE_AMX 0
#endif
#endif

/* Portable kernels (used by the tests as well). */
float sg_dot_f32_generic(const float *a, const float *b, size_t n);
int sg_to_f32_generic(uint32_t type, const void *src, float *dst, uint64_t n);

/* Is `type` something the kernels can read (any weight type)? */
int sg_kernel_type_supported(uint32_t type);

/* ---- thread pool ------------------------------------------------------- */

typedef struct sg_pool sg_pool;

/* Work callback: process tasks [begin, end) on thread `tid` (0 = caller). */
typedef void (*sg_task_fn)(void *ctx, uint32_t tid, size_t begin, size_t end);

/* n_threads >= 1 counts the calling thread; n_threads - 1 workers start. */
int sg_pool_create(const sg_alloc *alloc, uint32_t n_threads, sg_pool **out);
void sg_pool_destroy(sg_pool *pool);
uint32_t sg_pool_threads(const sg_pool *pool);

/* Run fn over tasks [0, n_tasks) in chunks of `grain` tasks (0 = pick),
 * the caller participating; returns when every task is done. Calls from
 * different threads take turns (serialised by a mutex). pool may be NULL:
 * then the caller runs everything. */
void sg_pool_run(sg_pool *pool, size_t n_tasks, size_t grain, sg_task_fn fn, void *ctx);

/* The pool inside a public sigma_threadpool (NULL for NULL). */
sg_pool *sg_threadpool_pool(sigma_threadpool *tp);

/* Bytes of a row of n elements of a kernel-supported type; 0 if the type is
 * not supported or n is not a multiple of its block size. */
size_t sg_kernel_row_bytes(uint32_t type, uint64_t n);

/* ---- execution context -------------------------------------------------- */

typedef struct sg_exec {
    const sg_kernels *k;
    sg_pool *pool;                /* NULL: single-threaded */
    uint32_t n_threads;           /* sg_pool_threads(pool) or 1 */
    float *scratch;               /* n_threads * scratch_per_thread floats */
    size_t scratch_per_thread;    /* >= the largest matmul input dimension */
    /* Room for quantized activation rows (n * sg_q8_row_bytes(in)); without
     * it (NULL/too small) matmuls use f32 activations. */
    uint8_t *qbuf;
    size_t qbuf_bytes;
} sg_exec;

/* y[n][out] = x[n][in] . W^T for a weight of ne = (in, out) of any type.
 * Each weight row is converted once into the thread's scratch and dotted
 * with all n activation rows. Returns 0, or a negative status (unsupported
 * type, scratch too small). */
int sg_matmul(const sg_exec *e, const sg_tensor *w, const float *x, size_t n, float *y);

/* Several matmuls sharing the input x (e.g. q, k, v) in one parallel run. */
int sg_matmul_multi(const sg_exec *e, size_t n_mats, const sg_tensor *const *w,
                    const float *x, size_t n, float *const *y);

/* out[t] = x[t] / rms(x[t]) * weight for n rows of dim d (weight: f32/f16/bf16
 * or any type, converted through the kernel table into `tmp` (d floats)). */
int sg_rmsnorm(const sg_exec *e, const float *x, const sg_tensor *weight, float eps,
               size_t n, size_t d, float *out, float *tmp);
/* The same with an f32 weight vector (NULL = 1). */
void sg_rmsnorm_f32(const float *x, const float *w, float eps, size_t d, float *out);

typedef enum sg_rope_pairs {
    SG_ROPE_PAIRS_ADJACENT = 0,   /* (2i, 2i+1) */
    SG_ROPE_PAIRS_HALVES = 1      /* (i, i + n_rot/2) */
} sg_rope_pairs;

/* cos/sin table for positions pos0..pos0+n-1: cs[t][i] = (cos, sin) of
 * pos * theta^(-2i/n_rot), i < n_rot/2; computed in double. */
void sg_rope_table(float *cs, uint32_t pos0, size_t n, uint32_t n_rot, float theta);
/* The same with RoPE scaling: frequency i is theta^(-2i/n_rot) * freq_scale
 * (linear scaling: freq_scale = 1/factor), divided by factors[i] when
 * factors (n_rot/2 positive values, Llama-3.1's rope_freqs) is not NULL. */
void sg_rope_table_scaled(float *cs, uint32_t pos0, size_t n, uint32_t n_rot, float theta,
                          float freq_scale, const float *factors);
/* Rotate the first n_rot dims of each of n_heads heads (head dim hd) of n
 * rows of x ([n][n_heads*hd]) in place with the table above. */
void sg_rope_apply(float *x, size_t n, uint32_t n_heads, uint32_t hd, uint32_t n_rot,
                   sg_rope_pairs pairs, const float *cs);

/* a[i] = silu(a[i]) * b[i] */
void sg_swiglu(float *a, const float *b, size_t n);
/* Index of the first element of x[0..n-1] that is NaN or infinite, or n. */
size_t sg_first_nonfinite(const float *x, size_t n);
/* a[i] = gelu_tanh(a[i]) * b[i], gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void sg_geglu_tanh(float *a, const float *b, size_t n);
/* Soft-capping: x[i] = cap * tanh(x[i] / cap) (cap > 0). */
void sg_softcap(float *x, size_t n, float cap);
/* In-place softmax over n values (max-subtracted, double sum). */
void sg_softmax(float *x, size_t n);
/* Row `id` of an embedding table (ne = (d, n_rows), any type) as f32. */
int sg_embed_row(const sg_kernels *k, const sg_tensor *emb, uint32_t id, float *out);

/* ---- query-head mapping (docs/sigma.md, "Head mapping") -------------------
 * Query head h reads K head h / (n_q / n_k) and V head h / (n_q / n_v):
 * consecutive query heads share a K (V) head. n_kv divides n_q (checked at
 * model open and by sg_kv_check_layout). These two are the only place the
 * mapping is written down. */
static inline uint32_t sg_head_map(uint32_t q_head, uint32_t n_q, uint32_t n_kv) {
    return q_head / (n_q / n_kv);
}
/* The first query head that reads K/V head kv_head (the inverse map). */
static inline uint32_t sg_head_first_q(uint32_t kv_head, uint32_t n_q, uint32_t n_kv) {
    return kv_head * (n_q / n_kv);
}

/* ---- per-head attention over cached rows (lib/core/attn.c) -------------- */

/* Storage types of cached rows. */
typedef enum sg_kv_type {
    SG_KV_F32 = 0,
    SG_KV_F16 = 1,
    SG_KV_BF16 = 2
} sg_kv_type;

/* One query head attending over n_pos cached rows (positions 0..n_pos-1):
 * K row p of this head at k + p*k_stride elements, V row p at v + p*v_stride,
 * both of storage type `type`. out[d_v] = softmax(q.K^T * scale) . V,
 * computed with a streaming (blocked online) softmax through the kernel
 * table's attention kernels (rows converted in registers). n_pos >= 1. */
void sg_attn_head(const sg_kernels *k, const float *q, const void *kbase, size_t k_stride,
                  const void *vbase, size_t v_stride, sg_kv_type type, size_t n_pos,
                  uint32_t d_qk, uint32_t d_v, float scale, float *out);

/* n_heads query heads that share one K head: query h at q + h*q_stride, its
 * V rows at vbase[h], output at out + h*out_stride. Reads each block of K
 * rows once for up to SG_ATTN_GROUP_MAX heads; results are bitwise equal to
 * calling sg_attn_head per head. */
#define SG_ATTN_GROUP_MAX 64
void sg_attn_group(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                   const void *kbase, size_t k_stride, const void *const *vbase, size_t v_stride,
                   sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                   float *out, size_t out_stride);
/* The same with the scores soft-capped (cap > 0: s = cap * tanh(s / cap)
 * before the softmax; cap = 0: sg_attn_group exactly). */
void sg_attn_group_capped(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                          const void *kbase, size_t k_stride, const void *const *vbase,
                          size_t v_stride, sg_kv_type type, size_t n_pos, uint32_t d_qk,
                          uint32_t d_v, float scale, float cap, float *out, size_t out_stride);

/* n_q consecutive queries of a prompt, causal: query i (heads at q +
 * i*q_qstride + h*q_stride, output at out + i*out_qstride + h*out_stride)
 * attends the first n_pos + i rows. Each block of K and V rows is read once
 * for up to SG_ATTN_QTILE queries; every query's result is bitwise what
 * sg_attn_group_capped gives it alone (n_q = 1 is that function). */
#define SG_ATTN_QTILE 16
/* (query, head) states of one pass: fewer queries per pass for large groups */
#define SG_ATTN_QSTATE 256
void sg_attn_group_causal(const sg_kernels *k, uint32_t n_q, size_t q_qstride, size_t out_qstride,
                          uint32_t n_heads, const float *q, size_t q_stride, const void *kbase,
                          size_t k_stride, const void *const *vbase, size_t v_stride,
                          sg_kv_type type, size_t n_pos, uint32_t d_qk, uint32_t d_v, float scale,
                          float cap, float *out, size_t out_stride);

/* Scores of n_heads query heads (q + h*q_stride) against n_pos K rows:
 * s[h*s_stride + p] = scale * (q_h . K_p), the same values sg_attn_group
 * computes (strategies that select or weight rows by score use these). */
void sg_attn_scores(const sg_kernels *k, uint32_t n_heads, const float *q, size_t q_stride,
                    const void *kbase, size_t k_stride, sg_kv_type type, size_t n_pos, uint32_t d_qk,
                    float scale, float *s, size_t s_stride);

#endif
