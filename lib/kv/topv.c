/* The `topv` KV strategy: Sigma's selective V fetching (paper, appendix B.2).
 * Every position's K and V rows are kept, on dense's storage: head-major
 * planes of f32, f16 or bf16 rows (option type, default f32), so a K head's
 * rows are one contiguous stream and a V row is fetched by its index. A
 * query head computes its scores against all K rows and reads at most k V
 * rows (option k, default 100): softmax renormalised over the rows it read.
 *
 * Selection does not sort or copy all n scores: the pass that stores the
 * scores turns NaNs into -inf and takes the maximum of each block of 16
 * positions; the k-th largest block maximum T bounds the k-th largest score
 * from below (k different blocks hold a score >= T), so only the blocks
 * whose maximum reaches T are scanned for candidates >= T (typically one
 * to a few k of them), and the exact threshold is selected among those. The V rows chosen are
 * gathered into one block, which the heads sharing them read together
 * (attn_accum_heads). Choices:
 *   - select=vhead (default): the heads sharing a V head each pick their
 *     rows (their own top-k) and all of them read
 *     the union (at most per_v * k rows, read once for the V head: never
 *     more V rows than select=head reads for those heads), each with its
 *     softmax renormalised over the union; select=head: selection is per
 *     query head (heads sharing a V head under GQA may pick different rows);
 *   - the rows read are: the first `sinks` positions, the `recent` newest
 *     positions (the query's own included), and the largest scores among
 *     the others, sinks + recent counted within k (defaults 0 and 0: plain
 *     top-k);
 *   - ties at the last selected score are broken towards the earlier
 *     position, so exactly k rows are used;
 *   - mass=900 (default; per mille): when the k rows a query head picked
 *     hold less than 90% of its softmax mass (over all n scores, through
 *     the kernel's exp), it picks again with 2k rows, and so on up to kmax
 *     (default 2k) rows; mass=0 is the paper's plain top-k. Attention that
 *     is flat (SmolLM2-135M's, at 2048 positions: plain k=100 costs +2.8%
 *     perplexity) reads more rows, peaked attention k; the V rows are a
 *     small part of the bytes (K is read whole), see docs/kv-strategies.md;
 *   - tail=1: the rows not read are not dropped but stood in for by their
 *     mean. A running sum of all V rows per layer (double) gives, with the
 *     rows read, the sum of the unread rows; the output is
 *       sum_read p_j v_j + (1 - sum_read p_j) * mean_unread(v)
 *     with p the exact softmax over all scores (every score is computed
 *     anyway). The running sum counts as one of the k rows read, so k - 1
 *     V rows are selected. tail=0 (default) is the paper's method;
 *   - with k >= the number of positions nothing is dropped and the result
 *     is the dense computation (the same kernel, bitwise equal to `dense`
 *     with type=f32);
 *   - prefill=exact (default): docs/sigma.md §3 describes the method as a decode-time
 *     approximation, so an attend call with more than one query (a prompt,
 *     or a part of one) attends exactly over all rows, as `dense` f32 does
 *     (bitwise equal), and only single-query calls (decoding) read top-k V
 *     rows. The strategy sees nothing but the number of queries of a call:
 *     a prompt of one token, or the one-token remainder of a prompt split
 *     into n_batch parts, is approximated too. prefill=topk: every query of
 *     every call reads top-k rows (the behaviour before this option; what a
 *     perplexity run over whole chunks then measures). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

/* prefill option values (also their serialized form) */
enum { TOPV_PREFILL_TOPK = 0, TOPV_PREFILL_EXACT = 1 };
/* select option values (also their serialized form) */
enum { TOPV_SELECT_HEAD = 0, TOPV_SELECT_VHEAD = 1 };
/* planes of the row store */
enum { TOPV_K, TOPV_V };

static uint32_t gcd_u32(uint32_t a, uint32_t b) {
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

typedef struct topv_state {
    sg_kv_base b;
    uint32_t topk;
    uint32_t sinks, recent;       /* always read, counted within topk */
    uint32_t tail;                /* 1: the unread rows enter as their mean */
    uint32_t prefill;             /* TOPV_PREFILL_*: calls with more than one query */
    uint32_t select;              /* TOPV_SELECT_* */
    sg_kv_type type;              /* stored element type */
    uint32_t mass;                /* per mille of softmax mass the rows read must hold (0: off) */
    uint32_t kmax;                /* with mass: k doubles up to this many rows */
    uint32_t mass_given;          /* mass or kmax were options (else a load adopts the blob's) */
    uint32_t kk_cap;              /* the most rows a head can read with this state's scratch */
    size_t esize;                 /* its bytes */
    double **vsum;                /* tail: per layer, sum of V rows 0..n_pos-1 */
    double **base;                /* tail: per layer, the sum before the last append */
    uint32_t *base_pos;           /* tail: per layer, the position of that sum */
    double *pre;                  /* tail: per attend, [n_batch][v_row] sums */
    double *dscratch;             /* tail: per thread, d_v doubles */
    size_t k_row, v_row;          /* elements per token and layer */
    uint32_t *n_pos;              /* per layer */
    float *scratch;               /* per thread: per_thread 4-byte words */
    uint32_t unit_heads;          /* query heads scored by one task (before parts) */
    uint32_t set_heads;           /* query heads reading one set of V rows */
    size_t per_thread;
} topv_state;

static void topv_destroy(void *state) {
    topv_state *s = state;
    if (!s) return;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++) {
        if (s->vsum) sg_free(&s->b.alloc, s->vsum[l]);
        if (s->base) sg_free(&s->b.alloc, s->base[l]);
    }
    void *own[7] = {s->vsum, s->base, s->base_pos, s->pre, s->dscratch, s->n_pos, s->scratch};
    sg_kv_state_free(s, own, 7);
}

/* Row of head h at position p in layer l (K or V plane). */
static const uint8_t *k_at(const topv_state *s, uint32_t l, uint32_t h, size_t p) {
    return sg_kv_head_row(&s->b.st, l, TOPV_K, h, p);
}
static const uint8_t *v_at(const topv_state *s, uint32_t l, uint32_t h, size_t p) {
    return sg_kv_head_row(&s->b.st, l, TOPV_V, h, p);
}

/* Element i of a stored row, as a float. */
static inline float elem(const topv_state *s, const uint8_t *row, uint32_t i) {
    switch (s->type) {
    case SG_KV_F16: return sg_f16_to_f32(((const uint16_t *)(const void *)row)[i]);
    case SG_KV_BF16: return sg_bf16_to_f32(((const uint16_t *)(const void *)row)[i]);
    default: return ((const float *)(const void *)row)[i];
    }
}

static void resum(topv_state *s, uint32_t layer);

/* the row store's view of a layer: u32 n_pos, then n_pos K and V rows (the
 * tail's running sum is recomputed on load, not stored) */
static void topv_words(const void *owner, uint32_t l, uint32_t *w) {
    w[0] = ((const topv_state *)owner)->n_pos[l];
}
static int topv_rows(const void *owner, const uint32_t *w, uint64_t *rows) {
    const topv_state *s = owner;
    if (w[0] > s->b.lay.n_ctx) return SIGMA_E_FORMAT;
    rows[TOPV_K] = rows[TOPV_V] = w[0];
    return SIGMA_OK;
}
static void topv_set(void *owner, uint32_t l, const uint32_t *w) {
    topv_state *s = owner;
    s->n_pos[l] = w[0];
    if (s->tail) {
        resum(s, l);
        s->base_pos[l] = UINT32_MAX;
    }
}

/* The default of option mass (per mille; docs/kv-strategies.md has the
 * measurements it rests on). */
#define TOPV_MASS_DEFAULT 900

/* The most rows a head reads: without mass k; with mass the kmax option,
 * or 2 k when it is 0. */
static uint32_t kmax_of(uint32_t mass, uint32_t kmax, uint32_t k) {
    if (!mass) return k;
    if (kmax) return kmax;
    return k > (1u << 23) ? 1u << 24 : 2 * k;
}

/* Positions per block maximum (selection). */
#define TOPV_BLOCK SG_ATTN_CLEAN_BLOCK /* positions per block maximum (the kernel's) */
_Static_assert(SG_ATTN_BLOCK % TOPV_BLOCK == 0, "score blocks hold whole maximum blocks");
static size_t n_blocks(size_t n) { return (n + TOPV_BLOCK - 1) / TOPV_BLOCK; }

static int topv_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                       char *err, size_t err_size) {
    sg_kv_opt o[9] = {{"k", 1, 1u << 24, 100, 0, 0},
                      {"sinks", 0, 1u << 24, 0, 0, 0},
                      {"recent", 0, 1u << 24, 0, 0, 0},
                      {"tail", 0, 1, 0, 0, 0},
                      {"prefill", 0, 1, TOPV_PREFILL_EXACT, 0, 0},
                      {"select", 0, 1, TOPV_SELECT_VHEAD, 0, 0},
                      {"type", 0, 0, SG_KV_F32, 0, 0},
                      {"mass", 0, 1000, TOPV_MASS_DEFAULT, 0, 0},
                      {"kmax", 0, 1u << 24, 0, 0, 0}};
    static const char *const prefill_names[] = {"topk", "exact", NULL};
    static const char *const select_names[] = {"head", "vhead", NULL};
    /* type: the index of its name is the sg_kv_type (as in dense) */
    static const char *const type_names[] = {"f32", "f16", "bf16", NULL};
    const char *const *const names[9] = {NULL, NULL, NULL, NULL, prefill_names, select_names,
                                         type_names, NULL, NULL};
    int st = sg_kv_create_begin("topv", lay, options, o, names, 9, state, err, err_size);
    if (st != SIGMA_OK) return st;
    if ((uint64_t)o[1].val + o[2].val + o[3].val > o[0].val) {
        if (err && err_size)
            snprintf(err, err_size,
                     "topv: sinks=%u + recent=%u%s is more than the k=%u rows a query reads",
                     o[1].val, o[2].val, o[3].val ? " + 1 (tail)" : "", o[0].val);
        return SIGMA_E_INVALID_ARG;
    }
    if (o[8].set && (!o[7].val || o[8].val < o[0].val)) {
        if (err && err_size)
            snprintf(err, err_size, "topv: kmax=%u needs mass (and kmax >= k=%u)", o[8].val, o[0].val);
        return SIGMA_E_INVALID_ARG;
    }
    topv_state *s = sg_kv_state_new(user, lay, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    const sg_alloc *a = &s->b.alloc;
    s->topk = o[0].val;
    s->sinks = o[1].val;
    s->recent = o[2].val;
    s->tail = o[3].val;
    s->prefill = o[4].val;
    s->select = o[5].val;
    s->type = (sg_kv_type)o[6].val;
    s->esize = s->type == SG_KV_F32 ? 4 : 2;
    s->mass = o[7].val;
    s->kmax = kmax_of(s->mass, o[8].val, s->topk);
    s->mass_given = o[7].set || o[8].set;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    uint32_t kk = s->kmax < lay->n_ctx ? s->kmax : lay->n_ctx; /* rows a head reads, at most */
    s->kk_cap = kk;
    /* a task scores the query heads of one K head (select=head), or the
     * fewest consecutive heads that are whole K heads and whole V heads
     * (select=vhead: lcm of the two group sizes); a set of V rows is read
     * per head, or per V head */
    uint32_t group = lay->n_q_heads / lay->n_k_heads, per_v = lay->n_q_heads / lay->n_v_heads;
    s->set_heads = s->select == TOPV_SELECT_VHEAD ? per_v : 1;
    s->unit_heads = s->select == TOPV_SELECT_VHEAD ? group / gcd_u32(group, per_v) * per_v : group;
    /* per thread (4-byte words): the unit's scores (n_ctx per head) and
     * their block maxima (TOPV_BLOCK positions each); a selection copy,
     * candidate positions and exponentials (n_ctx each); each head's
     * weights, the heads' rows, their union and a merge buffer (set_rows
     * each); the heads' maxima and row counts; the set's V rows gathered
     * (set_rows * d_v elements) */
    size_t set_rows = (size_t)s->set_heads * kk;
    s->per_thread = (size_t)s->unit_heads * (lay->n_ctx + n_blocks(lay->n_ctx)) + 3 * (size_t)lay->n_ctx +
                    ((size_t)s->set_heads + 3) * set_rows + 2 * (size_t)s->set_heads +
                    set_rows * lay->d_v; /* gathered rows: at most 4 bytes an element */
    uint32_t L = lay->n_layers;
    s->n_pos = sg_calloc(a, L, sizeof *s->n_pos);
    s->scratch = sg_calloc(a, s->b.n_threads, s->per_thread * sizeof(float));
    /* two head-major planes (dense's layout), 64 positions at first, at most n_ctx */
    sg_kv_plane pl[2] = {sg_kv_plane_words(s->k_row, (uint32_t)s->esize),
                         sg_kv_plane_words(s->v_row, (uint32_t)s->esize)};
    pl[TOPV_K].heads = lay->n_k_heads;
    pl[TOPV_V].heads = lay->n_v_heads;
    for (int i = 0; i < 2; i++) {
        pl[i].min_rows = 64;
        pl[i].max_rows = lay->n_ctx;
    }
    st = sg_kv_store_init(&s->b, pl, 2, 1, topv_words, topv_rows, NULL, topv_set);
    int ok = st == SIGMA_OK && s->n_pos && s->scratch;
    if (ok && s->tail) {
        uint32_t nb = lay->n_batch ? lay->n_batch : 1;
        s->vsum = sg_calloc(a, L, sizeof *s->vsum);
        s->base = sg_calloc(a, L, sizeof *s->base);
        s->base_pos = sg_calloc(a, L, sizeof *s->base_pos);
        s->pre = sg_calloc(a, (size_t)nb * s->v_row, sizeof *s->pre);
        s->dscratch = sg_calloc(a, s->b.n_threads, (size_t)lay->d_v * sizeof *s->dscratch);
        ok = s->vsum && s->base && s->base_pos && s->pre && s->dscratch;
        for (uint32_t l = 0; ok && l < L; l++) {
            s->vsum[l] = sg_calloc(a, s->v_row, sizeof **s->vsum);
            s->base[l] = sg_calloc(a, s->v_row, sizeof **s->base);
            ok = s->vsum[l] && s->base[l];
        }
    }
    return sg_kv_create_end(s, ok, state, topv_destroy);
}

/* tail: sum[0..v_row) = the sum of the V rows p0..p1-1 of a layer added
 * to it, in position order (the one order used everywhere, so equal states
 * give bitwise equal sums). */
static void add_rows(const topv_state *s, uint32_t layer, double *sum, size_t p0, size_t p1) {
    const sigma_kv_layout *L = &s->b.lay;
    for (uint32_t h = 0; h < L->n_v_heads; h++) {
        double *sh = sum + (size_t)h * L->d_v;
        for (size_t p = p0; p < p1; p++) {
            const uint8_t *row = v_at(s, layer, h, p);
            for (uint32_t i = 0; i < L->d_v; i++) sh[i] += elem(s, row, i);
        }
    }
}

/* tail: recompute the running sum of a layer from its rows */
static void resum(topv_state *s, uint32_t layer) {
    memset(s->vsum[layer], 0, s->v_row * sizeof(double));
    add_rows(s, layer, s->vsum[layer], 0, s->n_pos[layer]);
}

static int topv_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                       const float *v) {
    topv_state *s = state;
    if (!s || layer >= s->b.lay.n_layers || (n && (!k || !v))) return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG;
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->b.lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    int st = sg_kv_store_reserve_all(&s->b.st, layer, pos0, (size_t)end);
    if (st != SIGMA_OK) return st;
    if (s->tail && pos0 < s->n_pos[layer]) { /* overwriting: the sum of rows < pos0 */
        s->n_pos[layer] = pos0;
        resum(s, layer);
    }
    const sigma_kv_layout *L = &s->b.lay;
    sg_kv_scatter(&s->b.st, layer, TOPV_K, s->type, pos0, n, k, L->n_k_heads, L->d_qk);
    sg_kv_scatter(&s->b.st, layer, TOPV_V, s->type, pos0, n, v, L->n_v_heads, L->d_v);
    if (s->tail) {
        memcpy(s->base[layer], s->vsum[layer], s->v_row * sizeof(double));
        s->base_pos[layer] = pos0;
        add_rows(s, layer, s->vsum[layer], pos0, (size_t)end);
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
    uint32_t q0;                  /* first query of this part of the block */
    uint32_t parts;               /* tasks per (query, unit of heads) */
} topv_job;

/* dst[0..n) = src[0..n) with NaNs as -inf (a NaN is never selected over
 * a number); returns the largest (-inf if none), in 8 independent lanes. */
static float clean_max(float *dst, const float *src, size_t n) {
    float p[8];
    for (int i = 0; i < 8; i++) p[i] = -INFINITY;
    size_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int i = 0; i < 8; i++) {
            float v = src[j + i];
            v = v == v ? v : -INFINITY;
            dst[j + i] = v;
            p[i] = v > p[i] ? v : p[i];
        }
    for (; j < n; j++) {
        float v = src[j];
        v = v == v ? v : -INFINITY;
        dst[j] = v;
        p[0] = v > p[0] ? v : p[0];
    }
    float m = -INFINITY;
    for (int i = 0; i < 8; i++) m = p[i] > m ? p[i] : m;
    return m;
}

/* Scores of the query heads [0, nh) (q rows d_qk apart, all sharing the K
 * head kh) against rows 0..n-1 of layer `layer`: sc[h * nc + p], soft-capped
 * if asked, NaNs as -inf; bmax[h * nbc + b] = the largest of positions
 * [TOPV_BLOCK b, TOPV_BLOCK (b + 1)). One pass over the K rows, a block of
 * SG_ATTN_BLOCK rows at a time through the kernel (the values
 * sg_attn_scores gives). */
static void score_heads(const topv_state *s, uint32_t layer, uint32_t kh, const float *q, uint32_t nh,
                        size_t n, float scale, float cap, float *sc, float *bmax, size_t nc, size_t nbc) {
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    float blk[SG_ATTN_GROUP_MAX * SG_ATTN_BLOCK];
    for (uint32_t h0 = 0; h0 < nh; h0 += SG_ATTN_GROUP_MAX) {
        uint32_t g = nh - h0 < SG_ATTN_GROUP_MAX ? nh - h0 : SG_ATTN_GROUP_MAX;
        for (size_t p0 = 0; p0 < n; p0 += SG_ATTN_BLOCK) {
            size_t nb = n - p0 < SG_ATTN_BLOCK ? n - p0 : SG_ATTN_BLOCK;
            kern->attn_scores(q + (size_t)h0 * L->d_qk, L->d_qk, g, k_at(s, layer, kh, p0), L->d_qk,
                              (uint32_t)s->type, nb, L->d_qk, scale, blk);
            for (uint32_t h = 0; h < g; h++) {
                float *bh = blk + (size_t)h * SG_ATTN_BLOCK;
                if (cap > 0.0f) sg_softcap(bh, nb, cap); /* monotonic: the same rows are picked */
                float *sh = sc + (size_t)(h0 + h) * nc + p0;
                kern->attn_clean_blocks(sh, bh, nb, bmax + (size_t)(h0 + h) * nbc + p0 / TOPV_BLOCK);
            }
        }
    }
}

/* Per-thread scratch of select_rows: sel n_ctx floats, cand n_ctx
 * positions; of pick_rows: ex n_ctx floats. */
typedef struct topv_sel {
    float *sel;
    uint32_t *cand;
    float *ex;
} topv_sel;

/* The rows query head scores sc[0..n) read (n > kk; NaNs already -inf,
 * bmax their block maxima, score_heads): the first `sinks`, the largest
 * scores among the others, the `recent` newest, into idx in ascending
 * position order; returns their number (kk - tail). The largest m_top scores of the middle are those of the ordering
 * (score descending, position ascending): ties at the threshold go to the
 * earlier positions. bmax is changed (its entries for the middle's first
 * and last blocks cover only the middle's part). */
static size_t select_rows(const topv_state *s, const float *sc, float *bmax, size_t n, size_t kk,
                          const topv_sel *w, uint32_t *idx) {
    /* n > kk >= sinks + recent + tail: the sinks, the recent rows and the
     * others do not overlap, and there are more others than m_top */
    size_t mid0 = s->sinks, mid1 = n - s->recent;
    size_t m_top = kk - s->sinks - s->recent - s->tail, m = 0;
    for (size_t p = 0; p < mid0; p++) idx[m++] = (uint32_t)p;
    if (m_top > 0) {
        /* the middle's blocks b0..b1-1; the first and last only partly */
        size_t b0 = mid0 / TOPV_BLOCK, b1 = n_blocks(mid1), c = 0;
        float tmp[TOPV_BLOCK];
        bmax[b0] = clean_max(tmp, sc + mid0, (b0 + 1) * TOPV_BLOCK < mid1 ? (b0 + 1) * TOPV_BLOCK - mid0 : mid1 - mid0);
        if (b1 - 1 > b0) bmax[b1 - 1] = clean_max(tmp, sc + (b1 - 1) * TOPV_BLOCK, mid1 - (b1 - 1) * TOPV_BLOCK);
        if (b1 - b0 >= m_top) {
            /* T = the m_top-th largest block maximum <= the m_top-th largest
             * score (m_top different blocks hold a score >= T): the
             * candidates are the scores >= T, all in blocks whose maximum
             * reaches T */
            memcpy(w->sel, bmax + b0, (b1 - b0) * sizeof(float));
            float T = kth_largest(w->sel, b1 - b0, m_top);
            for (size_t b = b0; b < b1; b++) {
                if (!(bmax[b] >= T)) continue;
                size_t p0 = b * TOPV_BLOCK < mid0 ? mid0 : b * TOPV_BLOCK;
                size_t p1 = (b + 1) * TOPV_BLOCK < mid1 ? (b + 1) * TOPV_BLOCK : mid1;
                for (size_t p = p0; p < p1; p++) { /* branch-free: about half pass when m_top is large */
                    w->cand[c] = (uint32_t)p;
                    w->sel[c] = sc[p];
                    c += sc[p] >= T;
                }
            }
        } else { /* few blocks: every position of the middle */
            for (size_t p = mid0; p < mid1; p++) {
                w->cand[c] = (uint32_t)p;
                w->sel[c++] = sc[p];
            }
        }
        float thr = kth_largest(w->sel, c, m_top); /* c >= m_top */
        size_t greater = 0;
        for (size_t i = 0; i < c; i++) greater += sc[w->cand[i]] > thr;
        /* the candidates above thr, and the first eq_left equal to it, in
         * position order (branch-free) */
        size_t eq_left = m_top - greater, m_end = m + m_top; /* idx[m] stays below m_end */
        for (size_t i = 0; i < c && m < m_end; i++) {
            uint32_t p = w->cand[i];
            size_t gt = sc[p] > thr, eq = (sc[p] == thr) & (eq_left > 0);
            idx[m] = p;
            m += gt | eq;
            eq_left -= eq;
        }
    }
    for (size_t p = mid1; p < n; p++) idx[m++] = (uint32_t)p;
    return m;
}

/* The rows one head reads (n > 0 scores, NaNs -inf, bmax their block
 * maxima, mx the largest): with n <= k every row; otherwise select_rows
 * with k; with `mass`, k doubles (at most to kmax; at kmax >= n every row)
 * while the rows picked hold less than mass/1000 of the softmax mass over
 * all n scores. Returns the number of rows, in idx in position order. */
static size_t pick_rows(const topv_state *s, const sg_kernels *kern, const float *sc, float *bmax,
                        size_t n, size_t k, size_t kmax, float mx, const topv_sel *w, uint32_t *idx) {
    if (n <= k) {
        for (size_t p = 0; p < n; p++) idx[p] = (uint32_t)p;
        return n;
    }
    if (!s->mass || !(mx > -INFINITY)) return select_rows(s, sc, bmax, n, k, w, idx);
    /* the whole mass, through the kernel's exp on a copy */
    memcpy(w->ex, sc, n * sizeof(float));
    double z = (double)kern->attn_exp(w->ex, n, mx), need = z * (double)s->mass / 1000.0;
    /* every weight is <= 1 (exp(s - max)): rows fewer than `need` cannot
     * hold it, so the doublings that must fail are skipped unselected */
    while (k < kmax && (double)(k - s->tail) < need) k = 2 * k < kmax ? 2 * k : kmax;
    for (;;) {
        if (n <= k) {
            for (size_t p = 0; p < n; p++) idx[p] = (uint32_t)p;
            return n;
        }
        size_t m = select_rows(s, sc, bmax, n, k, w, idx);
        if (k >= kmax) return m;
        double got = 0;
        for (size_t r = 0; r < m; r++) got += (double)w->ex[idx[r]];
        if (got >= need) return m;
        k = 2 * k < kmax ? 2 * k : kmax;
    }
}

/* out = the union of the ascending lists a[0..na) and b[0..nb), ascending;
 * returns its length. */
static size_t merge_rows(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out) {
    size_t i = 0, j = 0, u = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j])
            out[u++] = a[i++];
        else if (b[j] < a[i])
            out[u++] = b[j++];
        else {
            out[u++] = a[i++];
            j++;
        }
    }
    while (i < na) out[u++] = a[i++];
    while (j < nb) out[u++] = b[j++];
    return u;
}

/* One task: query qi, the query heads [h0, h0 + gh) (whole selection sets:
 * single heads, or with select=vhead the heads of whole V heads). Scores
 * per K head in one pass over its rows for the task's heads that share it
 * (each head's values are those it gets scored alone: tested), then per
 * selection set: each head's rows, their union (vhead), the V rows read
 * once per set and accumulated into each head's output. */
static void topv_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const topv_job *j = ctx;
    topv_state *s = j->s;
    const sigma_kv_layout *L = &s->b.lay;
    const sg_kernels *kern = s->b.exec->k;
    uint32_t layer = j->a->layer;
    size_t nc = L->n_ctx;
    uint32_t k0 = s->topk < L->n_ctx ? s->topk : L->n_ctx;     /* rows a head reads first */
    uint32_t kk = s->kmax < L->n_ctx ? s->kmax : L->n_ctx;     /* ... and at most */
    size_t set_rows = (size_t)s->set_heads * kk; /* at most this many rows per set */
    size_t nbc = n_blocks(nc);
    float *sc_all = s->scratch + (size_t)tid * s->per_thread;
    float *bm_all = sc_all + (size_t)s->unit_heads * nc;
    topv_sel sw = {bm_all + (size_t)s->unit_heads * nbc, NULL, NULL};
    sw.cand = (uint32_t *)(void *)(sw.sel + nc);
    sw.ex = (float *)(void *)(sw.cand + nc);
    float *wts = sw.ex + nc, *mx = wts + (size_t)s->set_heads * set_rows; /* a weight row per head */
    uint32_t *cnt = (uint32_t *)(void *)(mx + s->set_heads);  /* each head's number of rows */
    uint32_t *idx = cnt + s->set_heads;                       /* each head's rows, kk apart */
    uint32_t *uni = idx + set_rows, *tmp = uni + set_rows; /* the set's rows (vhead) */
    uint8_t *gv = (uint8_t *)(void *)(tmp + set_rows);      /* their V rows, gathered */
    const uint32_t n_units = L->n_q_heads / s->unit_heads, gh = s->unit_heads / j->parts;
    for (size_t t = begin; t < end; t++) {
        size_t qi = j->q0 + t / ((size_t)n_units * j->parts);
        uint32_t unit = (uint32_t)(t / j->parts % n_units);
        uint32_t h0 = unit * s->unit_heads + (uint32_t)(t % j->parts) * gh;
        size_t n = (size_t)j->a->pos0 + qi + 1;
        if (n <= s->topk) { /* every row is read: dense */
            for (uint32_t h = h0; h < h0 + gh; h++) {
                const void *vr = v_at(s, layer, sg_head_map(h, L->n_q_heads, L->n_v_heads), 0);
                sg_attn_group_capped(kern, 1, j->a->q + (qi * L->n_q_heads + h) * L->d_qk, 0,
                                     k_at(s, layer, sg_head_map(h, L->n_q_heads, L->n_k_heads), 0),
                                     L->d_qk, &vr, L->d_v, s->type, n, L->d_qk, L->d_v,
                                     j->a->scale, j->a->softcap,
                                     j->a->out + (qi * L->n_q_heads + h) * L->d_v, 0);
            }
            continue;
        }
        for (uint32_t r = h0; r < h0 + gh;) { /* runs of heads sharing a K head */
            uint32_t kh = sg_head_map(r, L->n_q_heads, L->n_k_heads);
            uint32_t r1 = sg_head_first_q(kh + 1, L->n_q_heads, L->n_k_heads);
            if (r1 > h0 + gh) r1 = h0 + gh;
            score_heads(s, layer, kh, j->a->q + (qi * L->n_q_heads + r) * L->d_qk, r1 - r, n,
                        j->a->scale, j->a->softcap, sc_all + (size_t)(r - h0) * nc,
                        bm_all + (size_t)(r - h0) * nbc, nc, nbc);
            r = r1;
        }
        for (uint32_t g0 = h0; g0 < h0 + gh; g0 += s->set_heads) {
            uint32_t vh = sg_head_map(g0, L->n_q_heads, L->n_v_heads);
            size_t m = 0;
            const uint32_t *rows = idx;
            for (uint32_t i = 0; i < s->set_heads; i++) {
                const float *sc = sc_all + (size_t)(g0 - h0 + i) * nc;
                float *bm = bm_all + (size_t)(g0 - h0 + i) * nbc;
                mx[i] = -INFINITY;
                for (size_t b = 0; b < n_blocks(n); b++) mx[i] = bm[b] > mx[i] ? bm[b] : mx[i];
                cnt[i] = (uint32_t)pick_rows(s, kern, sc, bm, n, k0, kk, mx[i], &sw, idx + (size_t)i * kk);
            }
            m = cnt[0];
            if (s->set_heads > 1) { /* the union, in position order */
                uint32_t *acc = uni, *nxt = tmp;
                size_t u = merge_rows(idx, cnt[0], idx + kk, cnt[1], acc);
                for (uint32_t i = 2; i < s->set_heads; i++) {
                    u = merge_rows(acc, u, idx + (size_t)i * kk, cnt[i], nxt);
                    uint32_t *x = acc;
                    acc = nxt;
                    nxt = x;
                }
                m = u;
                rows = acc;
            }
            /* the V rows read, gathered into one contiguous block */
            size_t vbytes = (size_t)L->d_v * s->esize;
            for (size_t r = 0; r < m; r++) memcpy(gv + r * vbytes, v_at(s, layer, vh, rows[r]), vbytes);
            double *ds = NULL;
            if (s->tail) { /* the sum of the rows not read: (sum of rows 0..n-1) - the rows read */
                ds = s->dscratch + (size_t)tid * L->d_v;
                memcpy(ds, s->pre + (qi - j->q0) * s->v_row + (size_t)vh * L->d_v,
                       L->d_v * sizeof(double));
                for (size_t i = 0; i < m; i++) {
                    const uint8_t *row = v_at(s, layer, vh, rows[i]);
                    for (uint32_t d = 0; d < L->d_v; d++) ds[d] -= elem(s, row, d);
                }
            }
            float *ao[SG_ATTN_ACCUM_HEADS];
            const float *aw[SG_ATTN_ACCUM_HEADS];
            const void *av[SG_ATTN_ACCUM_HEADS];
            uint32_t na = 0;
            for (uint32_t i = 0; i < s->set_heads; i++) {
                uint32_t h = g0 + i;
                const float *sc = sc_all + (size_t)(h - h0) * nc;
                float *out = j->a->out + (qi * L->n_q_heads + h) * L->d_v;
                float *w = wts + (size_t)i * set_rows;
                for (size_t r = 0; r < m; r++) w[r] = sc[rows[r]];
                memset(out, 0, (size_t)L->d_v * sizeof(float));
                if (!s->tail) {
                    sigma_kernel_softmax_f32(w, m);
                } else if (mx[i] == -INFINITY) {
                    for (size_t r = 0; r < m; r++) w[r] = 0; /* no finite score: zero output */
                } else {
                    /* exact weights over all n scores; the unread rows' weight
                     * goes to their mean */
                    double tot = 0, got = 0;
                    for (size_t p = 0; p < n; p++) tot += exp((double)sc[p] - (double)mx[i]);
                    for (size_t r = 0; r < m; r++) {
                        double e = exp((double)w[r] - (double)mx[i]) / tot;
                        got += e;
                        w[r] = (float)e;
                    }
                    double f = m < n ? (got < 1 ? 1 - got : 0) / (double)(n - m) : 0;
                    for (uint32_t d = 0; d < L->d_v; d++) out[d] = (float)(ds[d] * f);
                }
                /* the heads of the set read the gathered rows together */
                ao[na] = out;
                aw[na] = w;
                av[na] = gv;
                if (++na == SG_ATTN_ACCUM_HEADS || i + 1 == s->set_heads) {
                    kern->attn_accum_heads(na, ao, aw, m, av, L->d_v, (uint32_t)s->type, L->d_v);
                    na = 0;
                }
            }
        }
    }
}

static int topv_attend(void *state, const sigma_kv_attend_args *a) {
    topv_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->b.lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if (a->n_queries == 0) return SIGMA_OK;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[a->layer]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    /* a sliding-window layer is read exactly: its window bounds the rows */
    if (a->window || (s->prefill == TOPV_PREFILL_EXACT && a->n_queries > 1)) {
        sg_kv_attend_exact(&s->b, TOPV_K, TOPV_V, s->type, a);
        return SIGMA_OK;
    }
    uint32_t part = a->n_queries;
    if (s->tail) part = s->b.lay.n_batch ? s->b.lay.n_batch : 1; /* rows of s->pre */
    for (uint32_t q0 = 0; q0 < a->n_queries; q0 += part) {
        uint32_t nq = a->n_queries - q0 < part ? a->n_queries - q0 : part;
        if (s->tail) {
            /* pre[i] = sum of the V rows 0..pos0+q0+i: from the sum before
             * the last append when this block starts there (the usual
             * case), otherwise from scratch */
            double *pre = s->pre;
            uint32_t p0 = a->pos0 + q0;
            if (s->base_pos[a->layer] == a->pos0) {
                memcpy(pre, s->base[a->layer], s->v_row * sizeof(double));
                add_rows(s, a->layer, pre, a->pos0, p0);
            } else {
                memset(pre, 0, s->v_row * sizeof(double));
                add_rows(s, a->layer, pre, 0, p0);
            }
            add_rows(s, a->layer, pre, p0, (size_t)p0 + 1);
            for (uint32_t i = 1; i < nq; i++) {
                memcpy(pre + (size_t)i * s->v_row, pre + (size_t)(i - 1) * s->v_row,
                       s->v_row * sizeof(double));
                add_rows(s, a->layer, pre + (size_t)i * s->v_row, (size_t)p0 + i, (size_t)p0 + i + 1);
            }
            /* the task indexes pre by query - q0 */
        }
        /* one task per (query, unit of heads), its query heads scored
         * together; a unit is split into parts (whole selection sets) only
         * when there would be fewer than two tasks per thread (decode with
         * few K heads) */
        uint32_t units = s->b.lay.n_q_heads / s->unit_heads;
        uint32_t parts = 1, G = s->unit_heads / s->set_heads, nt = s->b.n_threads ? s->b.n_threads : 1;
        while (parts < G && (uint64_t)nq * units * parts < 2ull * nt) {
            parts++;
            while (G % parts) parts++;
        }
        topv_job j = {s, a, q0, parts};
        sg_pool_run(s->b.exec->pool, (size_t)nq * units * parts, 1, topv_task, &j);
    }
    return SIGMA_OK;
}

static int topv_truncate(void *state, uint32_t n_pos) {
    topv_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->b.lay.n_layers; l++)
        if (s->n_pos[l] > n_pos) {
            s->n_pos[l] = n_pos;
            if (s->tail) {
                resum(s, l);
                s->base_pos[l] = UINT32_MAX;
            }
        }
    return SIGMA_OK;
}

/* Format: header (tag "TOPV", options: k, sinks, recent, tail, prefill (0 = topk,
 * 1 = exact), select (0 = head, 1 = vhead), type (0 = f32, 1 = f16, 2 =
 * bf16), mass, kmax (0: 2 k)), then per layer (the row store) u32 n_pos, n_pos K rows and n_pos
 * V rows (position-major, as appended) of that type. Trailing options at
 * their older values are left out, so files keep the bytes of before those
 * options existed: mass=0 (and its kmax) without the last two words,
 * type=f32 then without the seventh, and then select=head without the
 * sixth. A header with the first four options only
 * (written before `prefill` existed, when every call was approximated)
 * loads as prefill=topk, select=head, type=f32; one with five as
 * select=head, type=f32; one with six as type=f32. */
/* the values options 4.. had before they existed (see the format above) */
static const uint32_t topv_older[5] = {TOPV_PREFILL_TOPK, TOPV_SELECT_HEAD, SG_KV_F32, 0, 0};

static void topv_opts(const topv_state *s, uint32_t *o) {
    uint32_t v[9] = {s->topk, s->sinks, s->recent, s->tail, s->prefill, s->select, (uint32_t)s->type,
                     s->mass, s->kmax != kmax_of(s->mass, 0, s->topk) ? s->kmax : 0};
    memcpy(o, v, sizeof v);
}

static int topv_save(void *state, sigma_write_fn wf, void *ctx) {
    topv_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    uint32_t opts[9], n = 9;
    topv_opts(s, opts);
    while (n > 5 && opts[n - 1] == topv_older[n - 5]) n--;
    return sg_kv_store_save_tagged(&s->b.st, "TOPV", opts, n, wf, ctx);
}

/* Without mass or kmax among the create options, the blob's values of
 * those two are adopted (a session saved before `mass` existed restores
 * with plain top-k, as it ran), if this state's scratch holds that many
 * rows (else SIGMA_E_MISMATCH). */
static int topv_load(void *state, const void *data, size_t size) {
    topv_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    uint32_t opts[9];
    topv_opts(s, opts);
    uint32_t mass = s->mass, kmax = s->kmax;
    if (!s->mass_given) {
        /* the blob's mass and kmax (0 in a header from before they existed),
         * checked before anything changes */
        uint32_t b[9];
        int rc = sg_kv_blob_opts(data, size, "TOPV", &s->b.lay, 9, 4, topv_older, b);
        if (rc != SIGMA_OK) return rc;
        opts[7] = b[7];
        opts[8] = b[8];
        if (opts[7] > 1000 || (opts[8] && (!opts[7] || opts[8] < s->topk))) return SIGMA_E_FORMAT;
        mass = opts[7];
        kmax = kmax_of(mass, opts[8], s->topk);
        if ((kmax < s->b.lay.n_ctx ? kmax : s->b.lay.n_ctx) > s->kk_cap) return SIGMA_E_MISMATCH;
    }
    int st = sg_kv_store_load_tagged(&s->b.st, "TOPV", opts, 9, 4, topv_older, data, size);
    if (st == SIGMA_OK) {
        s->mass = mass;
        s->kmax = kmax;
    }
    return st;
}

void sg_kv_topv_init(sigma_kv_strategy *k) {
    *k = (sigma_kv_strategy){.version = SIGMA_KV_STRATEGY_VERSION, .name = "topv", .unbounded = 0,
                             .create = topv_create, .destroy = topv_destroy, .append = topv_append,
                             .attend = topv_attend, .truncate = topv_truncate,
                             .bytes_used = sg_kv_bytes_used, .save = topv_save, .load = topv_load};
}
