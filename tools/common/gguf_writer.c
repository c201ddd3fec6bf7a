/* A small GGUF v3 writer for tools and tests. Metadata is encoded into a
 * growing byte buffer as it is added; tensors are kept as copies and laid
 * out (aligned offsets, padding) at serialisation time. */
#include "gguf_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gw_buf {
    uint8_t *p;
    size_t n, cap;
} gw_buf;

typedef struct gw_tensor_rec {
    char *name;
    uint32_t type;
    uint32_t n_dims;
    uint64_t ne[4];
    uint8_t *data;
    size_t nbytes;
} gw_tensor_rec;

struct gw_writer {
    uint32_t version;
    uint32_t alignment;
    int user_alignment_kv;   /* the caller wrote general.alignment itself */
    int failed;              /* an allocation failed earlier */
    uint64_t n_kv;
    gw_buf kv;
    gw_tensor_rec *t;
    size_t n_t, cap_t;
};

static int buf_reserve(gw_buf *b, size_t extra) {
    if (extra > SIZE_MAX - b->n) return -1;
    size_t need = b->n + extra;
    if (need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(gw_buf *b, const void *data, size_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n)) return -1;
    memcpy(b->p + b->n, data, n);
    b->n += n;
    return 0;
}

static int buf_u32(gw_buf *b, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    return buf_put(b, x, 4);
}

static int buf_u64(gw_buf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    return buf_put(b, x, 8);
}

static int buf_str(gw_buf *b, const char *s) {
    size_t n = strlen(s);
    if (buf_u64(b, (uint64_t)n)) return -1;
    return buf_put(b, s, n);
}

static int buf_zero(gw_buf *b, size_t n) {
    if (n == 0) return 0;
    if (buf_reserve(b, n)) return -1;
    memset(b->p + b->n, 0, n);
    b->n += n;
    return 0;
}

static size_t scalar_size(uint32_t type) {
    switch (type) {
    case GW_U8: case GW_I8: case GW_BOOL: return 1;
    case GW_U16: case GW_I16: return 2;
    case GW_U32: case GW_I32: case GW_F32: return 4;
    case GW_U64: case GW_I64: case GW_F64: return 8;
    default: return 0;
    }
}

gw_writer *gw_new(void) {
    gw_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->version = 3;
    w->alignment = 32;
    return w;
}

void gw_free(gw_writer *w) {
    if (!w) return;
    free(w->kv.p);
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    free(w);
}

void gw_set_alignment(gw_writer *w, uint32_t alignment) {
    if (alignment == 0) alignment = 32;
    w->alignment = alignment;
}

void gw_set_version(gw_writer *w, uint32_t version) { w->version = version; }

/* Key header (string + type); on failure the buffer is rolled back. */
static int kv_begin(gw_writer *w, const char *key, uint32_t type, size_t *mark) {
    *mark = w->kv.n;
    if (strcmp(key, "general.alignment") == 0) w->user_alignment_kv = 1;
    if (buf_str(&w->kv, key) || buf_u32(&w->kv, type)) {
        w->kv.n = *mark;
        w->failed = 1;
        return -1;
    }
    return 0;
}

static int kv_end(gw_writer *w, size_t mark, int rc) {
    if (rc) {
        w->kv.n = mark;
        w->failed = 1;
        return -1;
    }
    w->n_kv++;
    return 0;
}

int gw_kv_scalar(gw_writer *w, const char *key, uint32_t type, const void *v) {
    size_t sz = scalar_size(type), mark;
    if (sz == 0) return -1;
    if (kv_begin(w, key, type, &mark)) return -1;
    return kv_end(w, mark, buf_put(&w->kv, v, sz));
}

int gw_kv_u32(gw_writer *w, const char *key, uint32_t v) {
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(v >> (8 * i));
    return gw_kv_scalar(w, key, GW_U32, x);
}

int gw_kv_i32(gw_writer *w, const char *key, int32_t v) {
    uint8_t x[4];
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(u >> (8 * i));
    return gw_kv_scalar(w, key, GW_I32, x);
}

int gw_kv_u64(gw_writer *w, const char *key, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    return gw_kv_scalar(w, key, GW_U64, x);
}

int gw_kv_f32(gw_writer *w, const char *key, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t x[4];
    for (int i = 0; i < 4; i++) x[i] = (uint8_t)(u >> (8 * i));
    return gw_kv_scalar(w, key, GW_F32, x);
}

int gw_kv_bool(gw_writer *w, const char *key, int v) {
    uint8_t b = v ? 1 : 0;
    return gw_kv_scalar(w, key, GW_BOOL, &b);
}

int gw_kv_str(gw_writer *w, const char *key, const char *v) {
    size_t mark;
    if (kv_begin(w, key, GW_STRING, &mark)) return -1;
    return kv_end(w, mark, buf_str(&w->kv, v));
}

int gw_kv_arr(gw_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n) {
    size_t sz = scalar_size(elem_type), mark;
    if (sz == 0 || n > SIZE_MAX / sz) return -1;
    if (kv_begin(w, key, GW_ARRAY, &mark)) return -1;
    int rc = buf_u32(&w->kv, elem_type) || buf_u64(&w->kv, n) ||
             buf_put(&w->kv, data, (size_t)n * sz);
    /* the elements are raw little-endian bytes as given */
    return kv_end(w, mark, rc);
}

int gw_kv_arr_str(gw_writer *w, const char *key, const char *const *strs, uint64_t n) {
    size_t mark;
    if (kv_begin(w, key, GW_ARRAY, &mark)) return -1;
    int rc = buf_u32(&w->kv, GW_STRING) || buf_u64(&w->kv, n);
    for (uint64_t i = 0; !rc && i < n; i++) rc = buf_str(&w->kv, strs[i]);
    return kv_end(w, mark, rc);
}

int gw_kv_raw(gw_writer *w, const char *key, uint32_t type, const void *bytes, size_t n) {
    size_t mark;
    if (kv_begin(w, key, type, &mark)) return -1;
    return kv_end(w, mark, buf_put(&w->kv, bytes, n));
}

int gw_tensor(gw_writer *w, const char *name, uint32_t type, uint32_t n_dims,
              const uint64_t *ne, const void *data, size_t nbytes) {
    if (n_dims > 4) return -1;
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 16;
        gw_tensor_rec *t = realloc(w->t, cap * sizeof *t);
        if (!t) { w->failed = 1; return -1; }
        w->t = t;
        w->cap_t = cap;
    }
    gw_tensor_rec *r = &w->t[w->n_t];
    memset(r, 0, sizeof *r);
    size_t nl = strlen(name);
    r->name = malloc(nl + 1);
    r->data = malloc(nbytes ? nbytes : 1);
    if (!r->name || !r->data) {
        free(r->name);
        free(r->data);
        w->failed = 1;
        return -1;
    }
    memcpy(r->name, name, nl + 1);
    if (nbytes) {
        if (data) memcpy(r->data, data, nbytes);
        else memset(r->data, 0, nbytes);
    }
    r->nbytes = nbytes;
    r->type = type;
    r->n_dims = n_dims;
    for (uint32_t i = 0; i < 4; i++) r->ne[i] = i < n_dims ? ne[i] : 1;
    w->n_t++;
    return 0;
}

static size_t pad_to(size_t x, size_t a) {
    size_t r = x % a;
    return r ? a - r : 0;
}

/* The header, metadata and tensor infos, padded to the alignment. */
static int build_header(gw_writer *w, gw_buf *b) {
    size_t align = w->alignment;
    int add_align = align != 32 && !w->user_alignment_kv;
    int rc = buf_put(b, "GGUF", 4) || buf_u32(b, w->version) ||
             buf_u64(b, (uint64_t)w->n_t) || buf_u64(b, w->n_kv + (add_align ? 1 : 0)) ||
             buf_put(b, w->kv.p, w->kv.n);
    if (!rc && add_align)
        rc = buf_str(b, "general.alignment") || buf_u32(b, GW_U32) ||
             buf_u32(b, (uint32_t)align);
    size_t off = 0;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        const gw_tensor_rec *t = &w->t[i];
        off += pad_to(off, align);
        rc = buf_str(b, t->name) || buf_u32(b, t->n_dims);
        for (uint32_t d = 0; !rc && d < t->n_dims; d++) rc = buf_u64(b, t->ne[d]);
        if (!rc) rc = buf_u32(b, t->type) || buf_u64(b, (uint64_t)off);
        off += t->nbytes;
    }
    if (!rc) rc = buf_zero(b, pad_to(b->n, align));
    return rc;
}

int gw_write_mem(gw_writer *w, uint8_t **out, size_t *out_size) {
    *out = NULL;
    *out_size = 0;
    if (w->failed) return -1;
    gw_buf b = {0};
    int rc = build_header(w, &b);
    size_t data_start = b.n;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        rc = buf_zero(&b, pad_to(b.n - data_start, w->alignment)) ||
             buf_put(&b, w->t[i].data, w->t[i].nbytes);
    }
    if (rc || !b.p) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *out_size = b.n;
    return 0;
}

/* Streams the tensor data (no second in-memory copy of the model). */
int gw_write_file(gw_writer *w, const char *path) {
    if (w->failed) return -1;
    gw_buf b = {0};
    if (build_header(w, &b)) {
        free(b.p);
        return -1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(b.p);
        return -1;
    }
    static const uint8_t zeros[256];
    int rc = fwrite(b.p, 1, b.n, f) == b.n ? 0 : -1;
    size_t pos = 0;
    for (size_t i = 0; !rc && i < w->n_t; i++) {
        size_t pad = pad_to(pos, w->alignment);
        while (!rc && pad > 0) {
            size_t k = pad < sizeof zeros ? pad : sizeof zeros;
            rc = fwrite(zeros, 1, k, f) == k ? 0 : -1;
            pad -= k;
            pos += k;
        }
        if (!rc && w->t[i].nbytes)
            rc = fwrite(w->t[i].data, 1, w->t[i].nbytes, f) == w->t[i].nbytes ? 0 : -1;
        pos += w->t[i].nbytes;
    }
    if (fclose(f) != 0) rc = -1;
    free(b.p);
    return rc;
}
