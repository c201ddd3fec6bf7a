/* Helpers shared by the built-in KV strategies: layout checks, the
 * environment, option parsing and the serialization primitives (header,
 * bounded reader, little-endian word arrays through the base codec). */
#include <stdio.h>
#include <string.h>

#include "kv.h"

int sg_kv_check_layout(const char *strategy, const sigma_kv_layout *lay, char *err,
                       size_t err_size) {
    if (!lay || lay->struct_size < sizeof *lay || !lay->n_layers || !lay->n_q_heads ||
        !lay->n_k_heads || !lay->n_v_heads || !lay->d_qk || !lay->d_v || !lay->n_ctx ||
        lay->n_q_heads % lay->n_k_heads || lay->n_q_heads % lay->n_v_heads ||
        lay->d_qk > 65536 || lay->d_v > 65536 || lay->n_q_heads > 65536 ||
        lay->n_k_heads > 65536 || lay->n_v_heads > 65536 || lay->n_layers > 65536 ||
        lay->n_ctx > (1u << 24)) {
        if (err && err_size) snprintf(err, err_size, "%s: invalid cache layout", strategy);
        return SIGMA_E_INVALID_ARG;
    }
    return SIGMA_OK;
}

int sg_kv_create_begin(const char *strategy, const sigma_kv_layout *lay, const char *options,
                       sg_kv_opt *opts, const char *const *const *names, size_t n, void **state,
                       char *err, size_t err_size) {
    if (!state) return SIGMA_E_INVALID_ARG;
    *state = NULL;
    int st = sg_kv_check_layout(strategy, lay, err, err_size);
    return st != SIGMA_OK ? st
                          : sg_kv_parse_options(strategy, options, opts, names, n, err, err_size);
}

void *sg_kv_state_new(void *user, const sigma_kv_layout *lay, size_t size) {
    const sg_kv_env *env = user;
    sg_alloc a;
    if (env && env->alloc)
        a = *env->alloc;
    else
        sg_alloc_init(&a, NULL);
    sg_kv_base *b = sg_calloc(&a, 1, size);
    if (!b) return NULL;
    b->alloc = a;
    b->lay = *lay;
    b->lay.struct_size = (uint32_t)sizeof b->lay;
    if (b->lay.n_batch == 0 || b->lay.n_batch > b->lay.n_ctx) b->lay.n_batch = b->lay.n_ctx;
    if (env && env->exec) {
        b->exec = env->exec;
    } else {
        sg_kernels_init(&b->kern_local, 0);
        b->exec_local.k = &b->kern_local;
        b->exec_local.n_threads = 1;
        b->exec = &b->exec_local;
    }
    b->n_threads = b->exec->n_threads ? b->exec->n_threads : 1;
    return b;
}

int sg_kv_create_end(void *s, int ok, void **state, void (*destroy)(void *)) {
    if (s && ok) {
        *state = s;
        return SIGMA_OK;
    }
    destroy(s);
    return SIGMA_E_NOMEM;
}

void sg_kv_state_free(void *state, void *const *own, size_t n) {
    sg_kv_base *b = state;
    if (!b) return;
    sg_alloc a = b->alloc;
    sg_kv_store_free(&b->st);
    for (size_t i = 0; i < n; i++) sg_free(&a, own[i]);
    sg_free(&a, b);
}

size_t sg_kv_bytes_used(void *state) {
    sg_kv_base *b = state;
    return b ? sg_kv_store_bytes(&b->st) : 0;
}

/* ---- options ------------------------------------------------------------ */

int sg_kv_parse_options(const char *strategy, const char *options, sg_kv_opt *opts,
                        const char *const *const *names, size_t n, char *err,
                        size_t err_size) {
    if (!options) return SIGMA_OK;
    const char *p = options;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0) {
            const char *eq = memchr(p, '=', len);
            size_t klen = eq ? (size_t)(eq - p) : len;
            sg_kv_opt *o = NULL;
            const char *const *vn = NULL;
            for (size_t i = 0; i < n; i++)
                if (strlen(opts[i].key) == klen && strncmp(opts[i].key, p, klen) == 0) {
                    o = &opts[i];
                    vn = names ? names[i] : NULL;
                }
            if (!o) {
                if (err && err_size) {
                    int w = snprintf(err, err_size, "%s: unknown option '%.*s' (known:", strategy,
                                     (int)(klen > 48 ? 48 : klen), p);
                    for (size_t i = 0; i < n && w >= 0 && (size_t)w < err_size; i++)
                        w += snprintf(err + w, err_size - (size_t)w, " %s", opts[i].key);
                    if (w >= 0 && (size_t)w < err_size) snprintf(err + w, err_size - (size_t)w, ")");
                }
                return SIGMA_E_INVALID_ARG;
            }
            const char *v = eq ? eq + 1 : p + len;
            size_t vlen = (size_t)(p + len - v);
            uint64_t val = 0;
            int ok = eq && vlen > 0;
            if (vn) {
                /* one of the names: its index is the value */
                int found = 0;
                for (uint32_t i = 0; ok && vn[i]; i++)
                    if (strlen(vn[i]) == vlen && strncmp(vn[i], v, vlen) == 0) {
                        val = i;
                        found = 1;
                    }
                ok = ok && found;
            } else {
                /* decimal value, no sign, no overflow */
                ok = ok && vlen <= 10;
                for (size_t i = 0; ok && i < vlen; i++) {
                    if (v[i] < '0' || v[i] > '9')
                        ok = 0;
                    else
                        val = val * 10 + (uint64_t)(v[i] - '0');
                }
                if (ok && (val < o->min || val > o->max)) ok = 0;
                if (ok && o->pow2 && (val & (val - 1))) ok = 0;
            }
            if (!ok) {
                /* the whole item is quoted: "dense: bad value 'type=q3' (expected type=f32|f16|bf16)" */
                if (err && err_size) {
                    int w = snprintf(err, err_size, "%s: bad value '%.*s' (expected %s=", strategy,
                                     (int)(len > 48 ? 48 : len), p, o->key);
                    if (vn) {
                        for (size_t i = 0; vn[i] && w >= 0 && (size_t)w < err_size; i++)
                            w += snprintf(err + w, err_size - (size_t)w, "%s%s", i ? "|" : "", vn[i]);
                        if (w >= 0 && (size_t)w < err_size) snprintf(err + w, err_size - (size_t)w, ")");
                    } else if (w >= 0 && (size_t)w < err_size) {
                        snprintf(err + w, err_size - (size_t)w, "%u..%u%s)", o->min, o->max,
                                 o->pow2 ? ", a power of two" : "");
                    }
                }
                return SIGMA_E_INVALID_ARG;
            }
            o->val = (uint32_t)val;
            o->set = 1;
        }
        p += len;
        if (*p == ',') p++;
    }
    return SIGMA_OK;
}

/* ---- serialization ------------------------------------------------------ */

void sg_kv_w_bytes(sg_kv_wr *w, const void *p, size_t n) {
    if (w->st == SIGMA_OK && n) w->st = w->w(w->ctx, p, n);
}

void sg_kv_w_u32(sg_kv_wr *w, uint32_t v) {
    uint8_t b[4];
    sg_put_le32(b, v);
    sg_kv_w_bytes(w, b, 4);
}

static void layout_words(const sigma_kv_layout *lay, uint32_t out[6]) {
    out[0] = lay->n_layers;
    out[1] = lay->n_q_heads;
    out[2] = lay->n_k_heads;
    out[3] = lay->n_v_heads;
    out[4] = lay->d_qk;
    out[5] = lay->d_v;
}

void sg_kv_w_header(sg_kv_wr *w, const char tag[4], const sigma_kv_layout *lay,
                    const uint32_t *opts, uint32_t n_opts) {
    uint32_t lw[6];
    layout_words(lay, lw);
    sg_kv_w_bytes(w, "SGKV", 4);
    sg_kv_w_bytes(w, tag, 4);
    sg_kv_w_u32(w, 1);
    for (int i = 0; i < 6; i++) sg_kv_w_u32(w, lw[i]);
    sg_kv_w_u32(w, n_opts);
    for (uint32_t i = 0; i < n_opts; i++) sg_kv_w_u32(w, opts[i]);
}

uint32_t sg_kv_r_u32(sg_kv_rd *r) {
    if (r->bad || r->size - r->off < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = sg_get_le32(r->p + r->off);
    r->off += 4;
    return v;
}

const uint8_t *sg_kv_r_bytes(sg_kv_rd *r, uint64_t n, uint64_t elem) {
    uint64_t bytes;
    if (r->bad || !sg_mul_u64(n, elem, &bytes) || bytes > r->size - r->off) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += (size_t)bytes;
    return p;
}

/* The header's options, older headers' missing ones at old_vals; *lay_ok
 * = the layout words match. SIGMA_E_FORMAT for a wrong magic, tag or
 * count or a truncated header, SIGMA_E_UNSUPPORTED for another version. */
static int read_header(sg_kv_rd *r, const char tag[4], const sigma_kv_layout *lay, uint32_t n_opts,
                       uint32_t n_old, const uint32_t *old_vals, uint32_t *out, int *lay_ok) {
    const uint8_t *m = sg_kv_r_bytes(r, 8, 1);
    if (!m || memcmp(m, "SGKV", 4) != 0 || memcmp(m + 4, tag, 4) != 0) return SIGMA_E_FORMAT;
    if (sg_kv_r_u32(r) != 1) return r->bad ? SIGMA_E_FORMAT : SIGMA_E_UNSUPPORTED;
    uint32_t lw[6];
    layout_words(lay, lw);
    *lay_ok = 1;
    for (int i = 0; i < 6; i++)
        if (sg_kv_r_u32(r) != lw[i]) *lay_ok = 0;
    uint32_t no = sg_kv_r_u32(r);
    if (r->bad) return SIGMA_E_FORMAT;
    if (no > n_opts || no < n_old || n_old > n_opts) return SIGMA_E_FORMAT;
    for (uint32_t i = 0; i < no; i++) out[i] = sg_kv_r_u32(r);
    if (r->bad) return SIGMA_E_FORMAT;
    /* an older header: the options it lacks had fixed values then */
    for (uint32_t i = no; i < n_opts; i++) out[i] = old_vals[i - n_old];
    return SIGMA_OK;
}

int sg_kv_r_header_compat(sg_kv_rd *r, const char tag[4], const sigma_kv_layout *lay,
                          const uint32_t *opts, uint32_t n_opts, uint32_t n_old,
                          const uint32_t *old_vals) {
    uint32_t got[SG_KV_OPTS_MAX];
    int lay_ok = 1;
    if (n_opts > SG_KV_OPTS_MAX) return SIGMA_E_INVALID_ARG;
    int rc = read_header(r, tag, lay, n_opts, n_old, old_vals, got, &lay_ok);
    if (rc == SIGMA_E_FORMAT && !lay_ok && !r->bad) return SIGMA_E_MISMATCH; /* as before */
    if (rc != SIGMA_OK) return rc;
    int mismatch = !lay_ok;
    for (uint32_t i = 0; i < n_opts; i++)
        if (got[i] != opts[i]) mismatch = 1;
    return mismatch ? SIGMA_E_MISMATCH : SIGMA_OK;
}

int sg_kv_blob_opts(const void *data, size_t size, const char tag[4], const sigma_kv_layout *lay,
                    uint32_t n_opts, uint32_t n_old, const uint32_t *old_vals, uint32_t *out) {
    if (!data && size) return SIGMA_E_INVALID_ARG;
    if (n_opts > SG_KV_OPTS_MAX) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    int lay_ok = 1;
    int rc = read_header(&r, tag, lay, n_opts, n_old, old_vals, out, &lay_ok);
    if (rc == SIGMA_E_FORMAT && !lay_ok && !r.bad) return SIGMA_E_MISMATCH;
    if (rc != SIGMA_OK) return rc;
    return lay_ok ? SIGMA_OK : SIGMA_E_MISMATCH;
}

/* ---- little-endian word arrays ------------------------------------------- */

static int host_is_le(void) {
    const uint16_t one = 1;
    uint8_t b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* One word of wsize bytes (1, 2 or 4) from host order to little-endian and back. */
static void word_to_le(uint8_t *dst, const uint8_t *src, size_t wsize) {
    uint16_t h;
    uint32_t u;
    if (wsize == 2) {
        memcpy(&h, src, 2);
        sg_put_le16(dst, h);
    } else if (wsize == 4) {
        memcpy(&u, src, 4);
        sg_put_le32(dst, u);
    } else {
        *dst = *src;
    }
}

static void word_from_le(uint8_t *dst, const uint8_t *src, size_t wsize) {
    uint16_t h;
    uint32_t u;
    if (wsize == 2) {
        h = sg_get_le16(src);
        memcpy(dst, &h, 2);
    } else if (wsize == 4) {
        u = sg_get_le32(src);
        memcpy(dst, &u, 4);
    } else {
        *dst = *src;
    }
}

void sg_kv_w_words(sg_kv_wr *w, const void *p, size_t n, size_t wsize) {
    if (host_is_le() || wsize == 1) {
        size_t bytes;
        if (!sg_mul_size(n, wsize, &bytes)) {
            if (w->st == SIGMA_OK) w->st = SIGMA_E_INVALID_ARG;
            return;
        }
        sg_kv_w_bytes(w, p, bytes);
        return;
    }
    const uint8_t *s = p;
    uint8_t buf[256];
    size_t per = sizeof buf / wsize;
    for (size_t i = 0; i < n && w->st == SIGMA_OK; i += per) {
        size_t m = n - i < per ? n - i : per;
        for (size_t j = 0; j < m; j++) word_to_le(buf + j * wsize, s + (i + j) * wsize, wsize);
        sg_kv_w_bytes(w, buf, m * wsize);
    }
}

void sg_kv_copy_words(void *dst, const uint8_t *src, size_t n, size_t wsize) {
    if (host_is_le() || wsize == 1) {
        if (n) memcpy(dst, src, n * wsize);
        return;
    }
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++) word_from_le(d + i * wsize, src + i * wsize, wsize);
}

/* ---- head-major K and V planes -------------------------------------------- */

void sg_kv_scatter(sg_kv_store *st, uint32_t l, uint32_t p, sg_kv_type type, size_t pos0,
                   uint32_t n, const float *src, uint32_t heads, uint32_t d) {
    size_t row = (size_t)heads * d;
    for (uint32_t h = 0; h < heads; h++)
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *dst = sg_kv_head_row(st, l, p, h, pos0 + i);
            const float *x = src + (size_t)i * row + (size_t)h * d;
            switch (type) {
            case SG_KV_F16: sigma_kernel_f32_to_f16((uint16_t *)(void *)dst, x, d); break;
            case SG_KV_BF16: sigma_kernel_f32_to_bf16((uint16_t *)(void *)dst, x, d); break;
            default: memcpy(dst, x, (size_t)d * sizeof(float)); break;
            }
        }
}

typedef struct exact_job {
    const sg_kv_base *b;
    const sigma_kv_attend_args *a;
    uint32_t kp, vp;
    sg_kv_type type;
    uint32_t splits; /* tasks per (query tile, K head): the group of query heads split in equal parts */
    uint32_t qtile;  /* queries per task */
} exact_job;

/* One task: a part of the query heads sharing one K head, for a tile of
 * consecutive queries; each block of K and V rows is read once for all of
 * them (sg_attn_group_causal). Queries of a sliding-window layer whose
 * window cuts their rows start at different rows: those go one by one. */
static void exact_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    const exact_job *j = ctx;
    const sg_kv_base *b = j->b;
    const sigma_kv_layout *L = &b->lay;
    uint32_t layer = j->a->layer;
    uint32_t sub = L->n_q_heads / L->n_k_heads / j->splits;
    const void *vb[SG_ATTN_GROUP_MAX];
    (void)tid;
    for (size_t t = begin; t < end; t++) {
        size_t q0 = t / ((size_t)L->n_k_heads * j->splits) * j->qtile;
        uint32_t nq = j->a->n_queries - q0 < j->qtile ? (uint32_t)(j->a->n_queries - q0) : j->qtile;
        uint32_t r = (uint32_t)(t % ((size_t)L->n_k_heads * j->splits));
        uint32_t kh = r / j->splits;
        uint32_t h0 = sg_head_first_q(kh, L->n_q_heads, L->n_k_heads) + (r % j->splits) * sub;
        size_t n_last = (size_t)j->a->pos0 + q0 + nq; /* rows the tile's last query attends */
        uint32_t step = j->a->window && n_last > j->a->window ? 1 : nq;
        for (uint32_t i = 0; i < nq; i += step) {
            size_t qi = q0 + i;
            size_t n_pos = (size_t)j->a->pos0 + qi + 1;
            /* a sliding-window layer reads only the last `window` positions */
            size_t first = j->a->window && n_pos > j->a->window ? n_pos - j->a->window : 0;
            const uint8_t *kb = sg_kv_head_row(&b->st, layer, j->kp, kh, first);
            n_pos -= first;
            for (uint32_t c = 0; c < sub; c += SG_ATTN_GROUP_MAX) {
                uint32_t nh = sub - c < SG_ATTN_GROUP_MAX ? sub - c : SG_ATTN_GROUP_MAX;
                for (uint32_t v = 0; v < nh; v++)
                    vb[v] = sg_kv_head_row(&b->st, layer, j->vp,
                                           sg_head_map(h0 + c + v, L->n_q_heads, L->n_v_heads), first);
                size_t hq = qi * L->n_q_heads + h0 + c;
                sg_attn_group_causal(b->exec->k, step, (size_t)L->n_q_heads * L->d_qk,
                                     (size_t)L->n_q_heads * L->d_v, nh, j->a->q + hq * L->d_qk, L->d_qk,
                                     kb, L->d_qk, vb, L->d_v, j->type, n_pos, L->d_qk, L->d_v,
                                     j->a->scale, j->a->softcap, j->a->out + hq * L->d_v, L->d_v);
            }
        }
    }
}

void sg_kv_attend_exact(const sg_kv_base *b, uint32_t kp, uint32_t vp, sg_kv_type type,
                        const sigma_kv_attend_args *a) {
    /* Tiles of up to SG_ATTN_QTILE queries, but enough tasks to keep every
     * thread busy (a few per thread, as the causal tiles differ in length):
     * smaller tiles when there are few queries, and each group of query
     * heads split into more parts only when there are few (tile, K head)
     * pairs (decode). */
    uint32_t group = b->lay.n_q_heads / b->lay.n_k_heads, splits = 1, qtile = SG_ATTN_QTILE;
    while (qtile > 1 && ((size_t)a->n_queries + qtile - 1) / qtile * b->lay.n_k_heads <
                            4 * (size_t)b->n_threads)
        qtile /= 2;
    size_t pairs = ((size_t)a->n_queries + qtile - 1) / qtile * b->lay.n_k_heads;
    while (pairs * splits < 2 * (size_t)b->n_threads && splits < group) {
        uint32_t next = splits + 1;
        while (group % next) next++;
        splits = next;
    }
    exact_job j = {b, a, kp, vp, type, splits, qtile};
    sg_pool_run(b->exec->pool, pairs * splits, 1, exact_task, &j);
}
