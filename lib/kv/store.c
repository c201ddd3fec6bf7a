/* The row store every built-in KV strategy keeps its rows in (kv.h): per
 * layer and plane one buffer of fixed-size rows, growth through
 * sg_reserve_n, little-endian save, and a load that validates the whole
 * blob and builds new buffers before it replaces anything. */
#include <string.h>

#include "kv.h"

sg_kv_plane sg_kv_plane_words(size_t n, uint32_t wsize) {
    sg_kv_plane p;
    memset(&p, 0, sizeof p);
    p.n1 = n;
    p.w1 = wsize;
    p.w2 = 1;
    p.heads = 1;
    p.max_rows = SIZE_MAX;
    return p;
}

/* Copy n plane descriptions to out and set their row sizes;
 * SIGMA_E_INTERNAL for an invalid one. */
static int plane_setup(sg_kv_plane *out, const sg_kv_plane *planes, uint32_t n) {
    for (uint32_t p = 0; p < n; p++) {
        sg_kv_plane *pl = &out[p];
        *pl = planes[p];
        size_t a, c;
        if (!sg_mul_size(pl->n1, pl->w1, &a) || !sg_mul_size(pl->n2, pl->w2, &c) || a > SIZE_MAX - c ||
            !pl->heads || (pl->heads > 1 && (pl->n2 || pl->n1 % pl->heads)))
            return SIGMA_E_INTERNAL;
        pl->row = a + c;
    }
    return SIGMA_OK;
}

int sg_kv_store_init(sg_kv_base *b, const sg_kv_plane *planes, uint32_t n_planes,
                     uint32_t n_words, sg_kv_words_fn words, sg_kv_rows_fn rows,
                     sg_kv_check_fn check, sg_kv_set_fn set) {
    sg_kv_store *st = &b->st;
    memset(st, 0, sizeof *st);
    st->b = b;
    if (n_planes > SG_KV_PLANES_MAX || n_words > SG_KV_WORDS_MAX) return SIGMA_E_INTERNAL;
    st->n_planes = n_planes;
    st->n_words = n_words;
    int rc = plane_setup(st->plane, planes, n_planes);
    if (rc != SIGMA_OK) return rc;
    st->words = words;
    st->rows = rows;
    st->check = check;
    st->set = set;
    size_t n = (size_t)b->lay.n_layers * n_planes;
    st->buf = sg_calloc(&b->alloc, n, sizeof *st->buf);
    st->cap = sg_calloc(&b->alloc, n, sizeof *st->cap);
    return st->buf && st->cap ? SIGMA_OK : SIGMA_E_NOMEM;
}

static void free_bufs(const sg_kv_store *st, uint8_t **buf) {
    if (!buf) return;
    size_t n = (size_t)st->b->lay.n_layers * st->n_planes;
    for (size_t i = 0; i < n; i++) sg_free(&st->b->alloc, buf[i]);
    sg_free(&st->b->alloc, buf);
}

void sg_kv_store_free(sg_kv_store *st) {
    if (!st->b) return;
    free_bufs(st, st->buf);
    sg_free(&st->b->alloc, st->cap);
    st->buf = NULL;
    st->cap = NULL;
}

/* Grow one buffer of plane pl to `need` rows, keeping `used` rows (of
 * every head): doubling through sg_reserve_n_max, at least min_rows, never
 * past max_rows (a full buffer is exactly max_rows). A head-major buffer is grown whole and each
 * head's rows then move to their new place (last head first: every head
 * moves up, past the heads below it). */
static int grow(const sg_kv_store *st, const sg_kv_plane *pl, uint8_t **buf, size_t *cap,
                size_t used, size_t need) {
    if (need <= *cap) return SIGMA_OK;
    if (need > pl->max_rows) return SIGMA_E_INTERNAL;
    if (need < pl->min_rows) need = pl->min_rows < pl->max_rows ? pl->min_rows : pl->max_rows;
    size_t oc = *cap, nc = oc;
    void *p = *buf;
    int rc = sg_reserve_n_max(&st->b->alloc, &p, &nc, pl->heads > 1 ? oc : used, need, pl->row,
                              pl->max_rows);
    if (rc != SIGMA_OK) return rc;
    if (pl->heads > 1 && used) {
        size_t hb = pl->row / pl->heads;
        for (uint32_t h = pl->heads - 1; h > 0; h--)
            memmove((uint8_t *)p + h * nc * hb, (uint8_t *)p + h * oc * hb, used * hb);
    }
    *buf = p;
    *cap = nc;
    return SIGMA_OK;
}

int sg_kv_store_reserve(sg_kv_store *st, uint32_t l, uint32_t p, size_t used, size_t need) {
    size_t i = (size_t)l * st->n_planes + p;
    return grow(st, &st->plane[p], &st->buf[i], &st->cap[i], used, need);
}

int sg_kv_store_reserve_all(sg_kv_store *st, uint32_t l, size_t used, size_t need) {
    int rc = SIGMA_OK;
    for (uint32_t p = 0; p < st->n_planes && rc == SIGMA_OK; p++)
        rc = sg_kv_store_reserve(st, l, p, used, need);
    return rc;
}

void sg_kv_store_move(sg_kv_store *st, uint32_t l, uint32_t p, size_t dst, size_t src, size_t n) {
    if (n && dst != src) memmove(sg_kv_row(st, l, p, dst), sg_kv_row(st, l, p, src), n * st->plane[p].row);
}

void sg_kv_store_move_all(sg_kv_store *st, uint32_t l, size_t dst, size_t src, size_t n) {
    for (uint32_t p = 0; p < st->n_planes; p++) sg_kv_store_move(st, l, p, dst, src, n);
}

size_t sg_kv_store_bytes(const sg_kv_store *st) {
    size_t total = 0;
    for (uint32_t l = 0; l < st->b->lay.n_layers; l++) {
        uint32_t w[SG_KV_WORDS_MAX];
        uint64_t rows[SG_KV_PLANES_MAX];
        st->words(st->b, l, w);
        if (st->rows(st->b, w, rows) != SIGMA_OK) continue;
        for (uint32_t p = 0; p < st->n_planes; p++) total += (size_t)rows[p] * st->plane[p].row;
    }
    return total;
}

/* ---- save --------------------------------------------------------------- */

/* rows 0..n-1 of a head-major plane, gathered into position-major rows
 * through a buffer of about 64 KB */
static int save_heads(const sg_kv_store *st, uint32_t l, uint32_t p, size_t n, sg_kv_wr *w) {
    const sg_kv_plane *pl = &st->plane[p];
    size_t hb = pl->row / pl->heads, per = pl->row >= 65536 ? 1 : 65536 / pl->row;
    if (per > n) per = n;
    if (!n) return SIGMA_OK;
    uint8_t *buf = sg_malloc(&st->b->alloc, per * pl->row);
    if (!buf) return SIGMA_E_NOMEM;
    for (size_t r0 = 0; r0 < n && w->st == SIGMA_OK; r0 += per) {
        size_t m = n - r0 < per ? n - r0 : per;
        for (size_t i = 0; i < m; i++)
            for (uint32_t h = 0; h < pl->heads; h++)
                memcpy(buf + i * pl->row + h * hb, sg_kv_head_row(st, l, p, h, r0 + i), hb);
        sg_kv_w_words(w, buf, m * pl->n1, pl->w1);
    }
    sg_free(&st->b->alloc, buf);
    return SIGMA_OK;
}

int sg_kv_store_save(const sg_kv_store *st, sg_kv_wr *w) {
    for (uint32_t l = 0; l < st->b->lay.n_layers && w->st == SIGMA_OK; l++) {
        uint32_t wd[SG_KV_WORDS_MAX];
        uint64_t rows[SG_KV_PLANES_MAX];
        st->words(st->b, l, wd);
        if (st->rows(st->b, wd, rows) != SIGMA_OK) return SIGMA_E_INTERNAL;
        for (uint32_t i = 0; i < st->n_words; i++) sg_kv_w_u32(w, wd[i]);
        for (uint32_t p = 0; p < st->n_planes && w->st == SIGMA_OK; p++) {
            const sg_kv_plane *pl = &st->plane[p];
            size_t n = (size_t)rows[p];
            if (pl->heads > 1) {
                int rc = save_heads(st, l, p, n, w);
                if (rc != SIGMA_OK) return rc;
            } else if (!pl->n2) {
                if (n) sg_kv_w_words(w, sg_kv_row(st, l, p, 0), n * pl->n1, pl->w1);
            } else {
                for (size_t r = 0; r < n; r++) {
                    const uint8_t *row = sg_kv_row(st, l, p, r);
                    sg_kv_w_words(w, row, pl->n1, pl->w1);
                    sg_kv_w_words(w, row + pl->n1 * pl->w1, pl->n2, pl->w2);
                }
            }
        }
    }
    return w->st;
}

int sg_kv_store_save_tagged(const sg_kv_store *st, const char tag[4], const uint32_t *opts,
                            uint32_t n_opts, sigma_write_fn wf, void *ctx) {
    if (!wf) return SIGMA_E_INVALID_ARG;
    sg_kv_wr w = {wf, ctx, SIGMA_OK};
    sg_kv_w_header(&w, tag, &st->b->lay, opts, n_opts);
    return sg_kv_store_save(st, &w);
}

/* ---- load --------------------------------------------------------------- */

/* One layer of the blob at r, read with the plane descriptions pl: its
 * counters into w, each plane's rows into rows/data, all validated. */
static int read_layer(const sg_kv_store *st, const sg_kv_plane *pl, sg_kv_rd *r, uint32_t *w,
                      uint64_t *rows, const uint8_t **data) {
    for (uint32_t i = 0; i < st->n_words; i++) w[i] = sg_kv_r_u32(r);
    if (r->bad) return SIGMA_E_FORMAT;
    int rc = st->rows(st->b, w, rows);
    if (rc != SIGMA_OK) return rc;
    for (uint32_t p = 0; p < st->n_planes; p++) {
        if (rows[p] > pl[p].max_rows) return SIGMA_E_FORMAT;
        data[p] = sg_kv_r_bytes(r, rows[p], pl[p].row);
    }
    if (r->bad) return SIGMA_E_FORMAT;
    return st->check ? st->check(st->b, w, data) : SIGMA_OK;
}

/* n serialized rows of plane pl from src into a buffer of cap rows */
static void decode_rows(const sg_kv_plane *pl, uint8_t *dst, size_t cap, const uint8_t *src,
                        size_t n) {
    if (pl->heads > 1) {
        size_t hb = pl->row / pl->heads;
        for (size_t r = 0; r < n; r++)
            for (uint32_t h = 0; h < pl->heads; h++)
                sg_kv_copy_words(dst + ((size_t)h * cap + r) * hb, src + r * pl->row + h * hb,
                                 pl->n1 / pl->heads, pl->w1);
    } else if (!pl->n2) {
        sg_kv_copy_words(dst, src, n * pl->n1, pl->w1);
    } else {
        size_t a = pl->n1 * pl->w1;
        for (size_t r = 0; r < n; r++) {
            sg_kv_copy_words(dst + r * pl->row, src + r * pl->row, pl->n1, pl->w1);
            sg_kv_copy_words(dst + r * pl->row + a, src + r * pl->row + a, pl->n2, pl->w2);
        }
    }
}

/* The load of sg_kv_store_load and sg_kv_store_load_planes: the blob read
 * with the plane descriptions pl (row sizes set); on success they replace
 * the store's. */
static int load_with(sg_kv_store *st, const sg_kv_plane *pl, sg_kv_rd *r) {
    const uint32_t L = st->b->lay.n_layers, P = st->n_planes;
    const size_t body = r->off;
    uint32_t w[SG_KV_WORDS_MAX];
    uint64_t rows[SG_KV_PLANES_MAX];
    const uint8_t *data[SG_KV_PLANES_MAX];
    /* pass 1: parse and validate everything */
    for (uint32_t l = 0; l < L; l++) {
        int rc = read_layer(st, pl, r, w, rows, data);
        if (rc != SIGMA_OK) return rc;
    }
    if (r->off != r->size) return SIGMA_E_FORMAT;
    /* pass 2: the new buffers, aside (at least one row each) */
    uint8_t **nb = sg_calloc(&st->b->alloc, (size_t)L * P, sizeof *nb);
    size_t *nc = sg_calloc(&st->b->alloc, (size_t)L * P, sizeof *nc);
    int rc = nb && nc ? SIGMA_OK : SIGMA_E_NOMEM;
    r->off = body;
    for (uint32_t l = 0; l < L && rc == SIGMA_OK; l++) {
        read_layer(st, pl, r, w, rows, data);
        for (uint32_t p = 0; p < P && rc == SIGMA_OK; p++) {
            size_t i = (size_t)l * P + p;
            rc = grow(st, &pl[p], &nb[i], &nc[i], 0, rows[p] ? (size_t)rows[p] : 1);
            if (rc == SIGMA_OK) decode_rows(&pl[p], nb[i], nc[i], data[p], (size_t)rows[p]);
        }
    }
    if (rc != SIGMA_OK) {
        free_bufs(st, nb);
        sg_free(&st->b->alloc, nc);
        return rc;
    }
    /* pass 3: swap in the buffers and planes, adopt the counters */
    free_bufs(st, st->buf);
    sg_free(&st->b->alloc, st->cap);
    st->buf = nb;
    st->cap = nc;
    if (pl != st->plane) memcpy(st->plane, pl, P * sizeof *pl);
    r->off = body;
    for (uint32_t l = 0; l < L; l++) {
        read_layer(st, st->plane, r, w, rows, data);
        st->set(st->b, l, w);
    }
    return SIGMA_OK;
}

int sg_kv_store_load(sg_kv_store *st, sg_kv_rd *r) { return load_with(st, st->plane, r); }

int sg_kv_store_load_planes(sg_kv_store *st, const sg_kv_plane *planes, sg_kv_rd *r) {
    sg_kv_plane pl[SG_KV_PLANES_MAX];
    int rc = plane_setup(pl, planes, st->n_planes);
    return rc != SIGMA_OK ? rc : load_with(st, pl, r);
}

int sg_kv_store_load_tagged(sg_kv_store *st, const char tag[4], const uint32_t *opts,
                            uint32_t n_opts, uint32_t n_old, const uint32_t *old_vals,
                            const void *data, size_t size) {
    if (!data && size) return SIGMA_E_INVALID_ARG;
    sg_kv_rd r = {data, size, 0, 0};
    int rc = sg_kv_r_header_compat(&r, tag, &st->b->lay, opts, n_opts, n_old, old_vals);
    return rc != SIGMA_OK ? rc : sg_kv_store_load(st, &r);
}
