/* The `dense` KV strategy: every position's K (per K head, after RoPE) and V
 * (per V head) rows, in f32, f16 or bf16 ("type=..." option).
 *
 * Storage is head-major: per layer, K is [n_k][cap][d_qk] and V is
 * [n_v][cap][d_v], so the rows of one head are contiguous and attention
 * streams through them (with position-major rows a task read one head's
 * piece out of every n_k*d_qk-element row; on Sigma-1.5B a V row is 4 KB,
 * so every position touched a new page, where the hardware prefetchers
 * stop: attention at 16k took twice as long; docs/performance.md). The
 * capacity cap grows by doubling up to n_ctx (each head's rows move to their
 * new place). The serialized form stays position-major (see dense_save).
 *
 * Attention streams over the rows with an online softmax, one task per
 * (query, K head): the query heads sharing a K head read each block of its
 * rows once (sg_attn_group). */
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "kv.h"

typedef struct dense_state {
    sg_alloc alloc;
    const sg_exec *exec;         /* from the env, or exec_local */
    sg_kernels kern_local;
    sg_exec exec_local;
    sigma_kv_layout lay;
    sg_kv_type type;
    size_t esize;                /* bytes per stored element */
    size_t k_row, v_row;         /* elements per token and layer */
    uint32_t *n_pos;             /* per layer */
    uint32_t *cap;               /* per layer, positions allocated (per head) */
    uint8_t **k, **v;            /* per layer: [n_k][cap][d_qk], [n_v][cap][d_v] */
    uint32_t n_threads;
} dense_state;

static int parse_options(const char *opt, sg_kv_type *type, char *err, size_t err_size) {
    *type = SG_KV_F32;
    if (!opt) return SIGMA_OK;
    const char *p = opt;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            /* empty item: skip */
        } else if (len == 8 && strncmp(p, "type=f32", 8) == 0) {
            *type = SG_KV_F32;
        } else if (len == 8 && strncmp(p, "type=f16", 8) == 0) {
            *type = SG_KV_F16;
        } else if (len == 9 && strncmp(p, "type=bf16", 9) == 0) {
            *type = SG_KV_BF16;
        } else {
            if (err && err_size)
                snprintf(err, err_size, "dense: unknown option '%.*s' (expected type=f32|f16|bf16)",
                         (int)(len > 64 ? 64 : len), p);
            return SIGMA_E_INVALID_ARG;
        }
        p += len;
        if (*p == ',') p++;
    }
    return SIGMA_OK;
}

static void dense_destroy(void *state) {
    dense_state *s = state;
    if (!s) return;
    sg_alloc a = s->alloc;
    if (s->k)
        for (uint32_t l = 0; l < s->lay.n_layers; l++) sg_free(&a, s->k[l]);
    if (s->v)
        for (uint32_t l = 0; l < s->lay.n_layers; l++) sg_free(&a, s->v[l]);
    sg_free(&a, s->k);
    sg_free(&a, s->v);
    sg_free(&a, s->n_pos);
    sg_free(&a, s->cap);
    sg_free(&a, s);
}

static int dense_create(void *user, const sigma_kv_layout *lay, const char *options, void **state,
                        char *err, size_t err_size) {
    const sg_kv_env *env = user;
    if (!lay || !state || lay->struct_size < sizeof *lay) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    if (!lay->n_layers || !lay->n_q_heads || !lay->n_k_heads || !lay->n_v_heads || !lay->d_qk ||
        !lay->d_v || !lay->n_ctx || lay->n_q_heads % lay->n_k_heads ||
        lay->n_q_heads % lay->n_v_heads || lay->d_qk > 65536 || lay->d_v > 65536 ||
        lay->n_k_heads > 65536 || lay->n_v_heads > 65536 || lay->n_layers > 65536) {
        if (err && err_size) snprintf(err, err_size, "dense: invalid cache layout");
        return SIGMA_E_INVALID_ARG;
    }
    sg_kv_type type;
    int st = parse_options(options, &type, err, err_size);
    if (st != SIGMA_OK) return st;
    sg_alloc a;
    if (env && env->alloc)
        a = *env->alloc;
    else
        sg_alloc_init(&a, NULL);
    dense_state *s = sg_calloc(&a, 1, sizeof *s);
    if (!s) return SIGMA_E_NOMEM;
    s->alloc = a;
    s->lay = *lay;
    s->lay.struct_size = (uint32_t)sizeof s->lay;
    s->type = type;
    s->esize = type == SG_KV_F32 ? 4 : 2;
    s->k_row = (size_t)lay->n_k_heads * lay->d_qk;
    s->v_row = (size_t)lay->n_v_heads * lay->d_v;
    if (env && env->exec) {
        s->exec = env->exec;
    } else {
        sg_kernels_init(&s->kern_local, 0);
        s->exec_local.k = &s->kern_local;
        s->exec_local.n_threads = 1;
        s->exec = &s->exec_local;
    }
    s->n_threads = s->exec->n_threads ? s->exec->n_threads : 1;
    s->n_pos = sg_calloc(&a, lay->n_layers, sizeof *s->n_pos);
    s->cap = sg_calloc(&a, lay->n_layers, sizeof *s->cap);
    s->k = sg_calloc(&a, lay->n_layers, sizeof *s->k);
    s->v = sg_calloc(&a, lay->n_layers, sizeof *s->v);
    if (!s->n_pos || !s->cap || !s->k || !s->v) {
        dense_destroy(s);
        return SIGMA_E_NOMEM;
    }
    *state = s;
    return SIGMA_OK;
}

/* Make room for `need` positions in layer l. */
static int grow(dense_state *s, uint32_t l, uint32_t need) {
    if (need <= s->cap[l]) return SIGMA_OK;
    uint64_t ncap = (uint64_t)s->cap[l] * 2;
    if (ncap < 64) ncap = 64;
    if (ncap < need) ncap = need;
    if (ncap > s->lay.n_ctx) ncap = s->lay.n_ctx;
    uint64_t kb, vb;
    if (!sg_mul_u64(ncap, (uint64_t)s->k_row * s->esize, &kb) ||
        !sg_mul_u64(ncap, (uint64_t)s->v_row * s->esize, &vb) || kb > SIZE_MAX || vb > SIZE_MAX)
        return SIGMA_E_NOMEM;
    uint8_t *nk = sg_malloc(&s->alloc, (size_t)kb);
    uint8_t *nv = sg_malloc(&s->alloc, (size_t)vb);
    if (!nk || !nv) {
        sg_free(&s->alloc, nk);
        sg_free(&s->alloc, nv);
        return SIGMA_E_NOMEM;
    }
    size_t used = s->n_pos[l], oc = s->cap[l];
    size_t kh = (size_t)s->lay.d_qk * s->esize, vh = (size_t)s->lay.d_v * s->esize;
    if (used) {
        for (uint32_t h = 0; h < s->lay.n_k_heads; h++)
            memcpy(nk + h * (size_t)ncap * kh, s->k[l] + h * oc * kh, used * kh);
        for (uint32_t h = 0; h < s->lay.n_v_heads; h++)
            memcpy(nv + h * (size_t)ncap * vh, s->v[l] + h * oc * vh, used * vh);
    }
    sg_free(&s->alloc, s->k[l]);
    sg_free(&s->alloc, s->v[l]);
    s->k[l] = nk;
    s->v[l] = nv;
    s->cap[l] = (uint32_t)ncap;
    return SIGMA_OK;
}

static void store(const dense_state *s, uint8_t *dst, const float *src, size_t n) {
    switch (s->type) {
    case SG_KV_F16: sigma_kernel_f32_to_f16((uint16_t *)dst, src, n); break;
    case SG_KV_BF16: sigma_kernel_f32_to_bf16((uint16_t *)dst, src, n); break;
    default: memcpy(dst, src, n * sizeof(float)); break;
    }
}

/* Row of head h at position p in layer l (K or V). */
static uint8_t *k_at(const dense_state *s, uint32_t l, uint32_t h, size_t p) {
    return s->k[l] + ((size_t)h * s->cap[l] + p) * s->lay.d_qk * s->esize;
}
static uint8_t *v_at(const dense_state *s, uint32_t l, uint32_t h, size_t p) {
    return s->v[l] + ((size_t)h * s->cap[l] + p) * s->lay.d_v * s->esize;
}

static int dense_append(void *state, uint32_t layer, uint32_t pos0, uint32_t n, const float *k,
                        const float *v) {
    dense_state *s = state;
    if (!s || layer >= s->lay.n_layers || (n && (!k || !v))) return SIGMA_E_INVALID_ARG;
    if (pos0 > s->n_pos[layer]) return SIGMA_E_INVALID_ARG; /* no holes */
    uint64_t end = (uint64_t)pos0 + n;
    if (end > s->lay.n_ctx) return SIGMA_E_CONTEXT_FULL;
    int st = grow(s, layer, (uint32_t)end);
    if (st != SIGMA_OK) return st;
    /* scatter each position's row into its heads */
    const sigma_kv_layout *L = &s->lay;
    for (uint32_t h = 0; h < L->n_k_heads; h++)
        for (uint32_t i = 0; i < n; i++)
            store(s, k_at(s, layer, h, (size_t)pos0 + i), k + (size_t)i * s->k_row + (size_t)h * L->d_qk,
                  L->d_qk);
    for (uint32_t h = 0; h < L->n_v_heads; h++)
        for (uint32_t i = 0; i < n; i++)
            store(s, v_at(s, layer, h, (size_t)pos0 + i), v + (size_t)i * s->v_row + (size_t)h * L->d_v,
                  L->d_v);
    s->n_pos[layer] = (uint32_t)end;
    return SIGMA_OK;
}

typedef struct attend_job {
    const dense_state *s;
    const sigma_kv_attend_args *a;
    uint32_t layer;
    uint32_t splits; /* tasks per (query, K head): the group of query heads split in equal parts */
} attend_job;

/* One task: a part of the query heads sharing one K head, for one query;
 * each block of K rows is read once for all of them. */
static void attend_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const attend_job *j = ctx;
    const dense_state *s = j->s;
    const sigma_kv_layout *L = &s->lay;
    uint32_t group = L->n_q_heads / L->n_k_heads, per_v = L->n_q_heads / L->n_v_heads;
    uint32_t sub = group / j->splits;
    const void *vb[SG_ATTN_GROUP_MAX];
    for (size_t t = begin; t < end; t++) {
        size_t qi = t / ((size_t)L->n_k_heads * j->splits);
        uint32_t r = (uint32_t)(t % ((size_t)L->n_k_heads * j->splits));
        uint32_t kh = r / j->splits;
        uint32_t h0 = kh * group + (r % j->splits) * sub;
        size_t n_pos = (size_t)j->a->pos0 + qi + 1;
        /* a sliding-window layer reads only the last `window` positions */
        size_t first = j->a->window && n_pos > j->a->window ? n_pos - j->a->window : 0;
        const uint8_t *kb = k_at(s, j->layer, kh, first);
        n_pos -= first;
        for (uint32_t c = 0; c < sub; c += SG_ATTN_GROUP_MAX) {
            uint32_t nh = sub - c < SG_ATTN_GROUP_MAX ? sub - c : SG_ATTN_GROUP_MAX;
            for (uint32_t i = 0; i < nh; i++)
                vb[i] = v_at(s, j->layer, (h0 + c + i) / per_v, first);
            size_t hq = qi * L->n_q_heads + h0 + c;
            sg_attn_group_capped(s->exec->k, nh, j->a->q + hq * L->d_qk, L->d_qk, kb, L->d_qk, vb,
                                 L->d_v, s->type, n_pos, L->d_qk, L->d_v, j->a->scale,
                                 j->a->softcap, j->a->out + hq * L->d_v, L->d_v);
        }
    }
}

static int dense_attend(void *state, const sigma_kv_attend_args *a) {
    dense_state *s = state;
    if (!s || !a || a->struct_size < sizeof *a || a->layer >= s->lay.n_layers || !a->q || !a->out)
        return SIGMA_E_INVALID_ARG;
    if ((uint64_t)a->pos0 + a->n_queries > s->n_pos[a->layer]) return SIGMA_E_INVALID_ARG;
    if (a->softcap < 0.0f) return SIGMA_E_INVALID_ARG;
    /* Enough tasks to keep every thread busy: split each group of query
     * heads into more parts only when there are few (query, K head) pairs
     * (decode). Per-head results do not depend on the split. */
    uint32_t group = s->lay.n_q_heads / s->lay.n_k_heads, splits = 1;
    size_t pairs = (size_t)a->n_queries * s->lay.n_k_heads;
    while (pairs * splits < 2 * (size_t)s->n_threads && splits < group) {
        uint32_t next = splits + 1;
        while (group % next) next++;
        splits = next;
    }
    attend_job j = {s, a, a->layer, splits};
    sg_pool_run(s->exec->pool, pairs * splits, 1, attend_task, &j);
    return SIGMA_OK;
}

static int dense_truncate(void *state, uint32_t n_pos) {
    dense_state *s = state;
    if (!s) return SIGMA_E_INVALID_ARG;
    for (uint32_t l = 0; l < s->lay.n_layers; l++)
        if (s->n_pos[l] > n_pos) s->n_pos[l] = n_pos;
    return SIGMA_OK;
}

static size_t dense_bytes_used(void *state) {
    dense_state *s = state;
    if (!s) return 0;
    size_t total = 0;
    for (uint32_t l = 0; l < s->lay.n_layers; l++)
        total += (size_t)s->n_pos[l] * (s->k_row + s->v_row) * s->esize;
    return total;
}

/* Serialized form (little-endian): "DKV1", u32 type, u32 n_layers,
 * u32 k_row, u32 v_row; then per layer: u32 n_pos, n_pos K rows, n_pos V
 * rows, in the stored element type. A row is one position's heads in order
 * (position-major, as the rows were appended): save gathers the head-major
 * storage into rows, load scatters them back. */
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Write positions 0..n-1 of layer l's K (or V) storage as position-major
 * rows, through buf (buf_rows rows). */
static int write_rows(const dense_state *s, uint32_t l, int is_v, size_t n, uint8_t *buf,
                      size_t buf_rows, sigma_write_fn w, void *ctx) {
    uint32_t nh = is_v ? s->lay.n_v_heads : s->lay.n_k_heads;
    size_t hb = (size_t)(is_v ? s->lay.d_v : s->lay.d_qk) * s->esize, rb = nh * hb;
    int st = SIGMA_OK;
    for (size_t p0 = 0; p0 < n && st == SIGMA_OK; p0 += buf_rows) {
        size_t m = n - p0 < buf_rows ? n - p0 : buf_rows;
        for (size_t i = 0; i < m; i++)
            for (uint32_t h = 0; h < nh; h++)
                memcpy(buf + i * rb + h * hb, is_v ? v_at(s, l, h, p0 + i) : k_at(s, l, h, p0 + i), hb);
        st = w(ctx, buf, m * rb);
    }
    return st;
}

static int dense_save(void *state, sigma_write_fn w, void *ctx) {
    dense_state *s = state;
    if (!s || !w) return SIGMA_E_INVALID_ARG;
    /* a gather buffer of about 64 KB (at least one row) */
    size_t rb = (s->k_row > s->v_row ? s->k_row : s->v_row) * s->esize;
    size_t buf_rows = rb >= 65536 ? 1 : 65536 / rb;
    uint8_t *buf = sg_malloc(&s->alloc, buf_rows * rb);
    if (!buf) return SIGMA_E_NOMEM;
    uint8_t h[20];
    memcpy(h, "DKV1", 4);
    put32(h + 4, (uint32_t)s->type);
    put32(h + 8, s->lay.n_layers);
    put32(h + 12, (uint32_t)s->k_row);
    put32(h + 16, (uint32_t)s->v_row);
    int st = w(ctx, h, sizeof h);
    for (uint32_t l = 0; l < s->lay.n_layers && st == SIGMA_OK; l++) {
        uint8_t n[4];
        put32(n, s->n_pos[l]);
        st = w(ctx, n, 4);
        if (st == SIGMA_OK) st = write_rows(s, l, 0, s->n_pos[l], buf, buf_rows, w, ctx);
        if (st == SIGMA_OK) st = write_rows(s, l, 1, s->n_pos[l], buf, buf_rows, w, ctx);
    }
    sg_free(&s->alloc, buf);
    return st;
}

/* All-or-nothing: validate everything and allocate the new storage aside,
 * then swap it in. */
static int dense_load(void *state, const void *data, size_t size) {
    dense_state *s = state;
    if (!s || (!data && size)) return SIGMA_E_INVALID_ARG;
    const uint8_t *p = data;
    if (size < 20 || memcmp(p, "DKV1", 4) != 0) return SIGMA_E_FORMAT;
    if (get32(p + 4) != (uint32_t)s->type || get32(p + 8) != s->lay.n_layers ||
        get32(p + 12) != s->k_row || get32(p + 16) != s->v_row)
        return SIGMA_E_MISMATCH;
    uint32_t L = s->lay.n_layers;
    size_t kb_row = s->k_row * s->esize, vb_row = s->v_row * s->esize;
    /* pass 1: validate sizes */
    size_t off = 20;
    for (uint32_t l = 0; l < L; l++) {
        if (size - off < 4) return SIGMA_E_FORMAT;
        uint32_t n = get32(p + off);
        off += 4;
        if (n > s->lay.n_ctx) return SIGMA_E_FORMAT;
        uint64_t need = (uint64_t)n * (kb_row + vb_row);
        if (need > size - off) return SIGMA_E_FORMAT;
        off += (size_t)need;
    }
    if (off != size) return SIGMA_E_FORMAT;
    /* pass 2: allocate */
    uint8_t **nk = sg_calloc(&s->alloc, L, sizeof *nk);
    uint8_t **nv = sg_calloc(&s->alloc, L, sizeof *nv);
    uint32_t *ncap = sg_calloc(&s->alloc, L, sizeof *ncap);
    int st = (nk && nv && ncap) ? SIGMA_OK : SIGMA_E_NOMEM;
    off = 20;
    for (uint32_t l = 0; l < L && st == SIGMA_OK; l++) {
        uint32_t n = get32(p + off);
        off += 4;
        uint32_t cap = n < 64 ? 64 : n;
        if (cap > s->lay.n_ctx) cap = s->lay.n_ctx;
        nk[l] = sg_malloc(&s->alloc, (size_t)cap * kb_row);
        nv[l] = sg_malloc(&s->alloc, (size_t)cap * vb_row);
        if (!nk[l] || !nv[l]) {
            st = SIGMA_E_NOMEM;
            break;
        }
        ncap[l] = cap;
        /* scatter the position-major rows into the heads */
        size_t khb = (size_t)s->lay.d_qk * s->esize, vhb = (size_t)s->lay.d_v * s->esize;
        for (size_t i = 0; i < n; i++)
            for (uint32_t h = 0; h < s->lay.n_k_heads; h++)
                memcpy(nk[l] + ((size_t)h * cap + i) * khb, p + off + i * kb_row + h * khb, khb);
        off += (size_t)n * kb_row;
        for (size_t i = 0; i < n; i++)
            for (uint32_t h = 0; h < s->lay.n_v_heads; h++)
                memcpy(nv[l] + ((size_t)h * cap + i) * vhb, p + off + i * vb_row + h * vhb, vhb);
        off += (size_t)n * vb_row;
    }
    if (st != SIGMA_OK) {
        for (uint32_t l = 0; nk && nv && l < L; l++) {
            sg_free(&s->alloc, nk[l]);
            sg_free(&s->alloc, nv[l]);
        }
        sg_free(&s->alloc, nk);
        sg_free(&s->alloc, nv);
        sg_free(&s->alloc, ncap);
        return st;
    }
    /* pass 3: swap in */
    off = 20;
    for (uint32_t l = 0; l < L; l++) {
        uint32_t n = get32(p + off);
        off += 4 + (size_t)n * (kb_row + vb_row);
        sg_free(&s->alloc, s->k[l]);
        sg_free(&s->alloc, s->v[l]);
        s->k[l] = nk[l];
        s->v[l] = nv[l];
        s->cap[l] = ncap[l];
        s->n_pos[l] = n;
    }
    sg_free(&s->alloc, nk);
    sg_free(&s->alloc, nv);
    sg_free(&s->alloc, ncap);
    return SIGMA_OK;
}

void sg_kv_dense_init(sigma_kv_strategy *k) {
    memset(k, 0, sizeof *k);
    k->version = SIGMA_KV_STRATEGY_VERSION;
    k->name = "dense";
    k->unbounded = 0;
    k->user = NULL;
    k->create = dense_create;
    k->destroy = dense_destroy;
    k->append = dense_append;
    k->attend = dense_attend;
    k->truncate = dense_truncate;
    k->bytes_used = dense_bytes_used;
    k->save = dense_save;
    k->load = dense_load;
}
