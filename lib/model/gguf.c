/* A hardened GGUF (v2/v3, little-endian) reader.
 *
 * The whole file image is validated once at open: every count, length and
 * offset is checked against the bytes that remain, with overflow-safe
 * arithmetic, before anything is allocated or dereferenced. After a
 * successful open, metadata values (including arrays of strings) and tensor
 * data can be used without further bounds checks.
 *
 * Lookups use sorted pointer indexes that live in the same allocations as
 * the kv and tensor arrays (after the n entries), so lookups are O(log n)
 * even for hostile files with a million entries. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAX_DEPTH 8          /* nesting of arrays */
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MIN_KV_BYTES 12      /* key length (8) + type (4), empty key */
#define GGUF_MIN_TENSOR_BYTES 24  /* name length + n_dims + type + offset */
#define NAME_SHOWN 96             /* characters of a name shown in messages */

/* ------------------------------------------------------------------------ */
/* Cursor over the image                                                    */
/* ------------------------------------------------------------------------ */

typedef struct cursor {
    const uint8_t *base;
    uint64_t pos, size;
} cursor;

static inline uint64_t remaining(const cursor *c) { return c->size - c->pos; }

static bool rd_u32(cursor *c, uint32_t *v) {
    if (remaining(c) < 4) return false;
    *v = sg_get_le32(c->base + c->pos);
    c->pos += 4;
    return true;
}

static bool rd_u64(cursor *c, uint64_t *v) {
    if (remaining(c) < 8) return false;
    *v = sg_get_le64(c->base + c->pos);
    c->pos += 8;
    return true;
}

/* A length-prefixed string; *len_out gets the declared length even when it
 * does not fit (for messages). */
static bool rd_str(cursor *c, sg_str *s, uint64_t *len_out) {
    uint64_t len;
    *len_out = 0;
    if (!rd_u64(c, &len)) return false;
    *len_out = len;
    if (len > remaining(c)) return false;
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return true;
}

uint64_t sg_gguf_scalar_size(uint32_t t) {
    switch (t) {
    case SG_GGUF_U8: case SG_GGUF_I8: case SG_GGUF_BOOL: return 1;
    case SG_GGUF_U16: case SG_GGUF_I16: return 2;
    case SG_GGUF_U32: case SG_GGUF_I32: case SG_GGUF_F32: return 4;
    case SG_GGUF_U64: case SG_GGUF_I64: case SG_GGUF_F64: return 8;
    default: return 0;
    }
}

static const char *vtype_name(uint32_t t) {
    static const char *const names[] = {"u8",   "i8",   "u16",    "i16",   "u32",
                                        "i32",  "f32",  "bool",   "string", "array",
                                        "u64",  "i64",  "f64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

/* Walk (validate) the elements of an array whose header has been read. */
static int walk_array(cursor *c, uint32_t et, uint64_t n, int depth, const char *key,
                      sg_err *err) {
    uint64_t es = sg_gguf_scalar_size(et);
    if (es) {
        uint64_t nb;
        if (!sg_mul_u64(n, es, &nb) || nb > remaining(c))
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': array of %llu %s elements extends past the end of the file",
                            NAME_SHOWN, key, (unsigned long long)n, vtype_name(et));
        c->pos += nb;
        return SIGMA_OK;
    }
    if (et == SG_GGUF_STRING) {
        if (n > remaining(c) / 8)
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': array of %llu strings extends past the end of the file",
                            NAME_SHOWN, key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            sg_str s;
            uint64_t len;
            if (!rd_str(c, &s, &len))
                return sg_error(err, SIGMA_E_FORMAT,
                                "key '%.*s': string %llu of the array (length %llu) extends "
                                "past the end of the file",
                                NAME_SHOWN, key, (unsigned long long)i, (unsigned long long)len);
        }
        return SIGMA_OK;
    }
    if (et == SG_GGUF_ARRAY) {
        if (depth + 1 > GGUF_MAX_DEPTH)
            return sg_error(err, SIGMA_E_FORMAT, "key '%.*s': arrays nested deeper than %d",
                            NAME_SHOWN, key, GGUF_MAX_DEPTH);
        if (n > remaining(c) / 12)
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': array of %llu arrays extends past the end of the file",
                            NAME_SHOWN, key, (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++) {
            uint32_t et2;
            uint64_t n2;
            if (!rd_u32(c, &et2) || !rd_u64(c, &n2))
                return sg_error(err, SIGMA_E_FORMAT,
                                "key '%.*s': nested array header past the end of the file",
                                NAME_SHOWN, key);
            int st = walk_array(c, et2, n2, depth + 1, key, err);
            if (st) return st;
        }
        return SIGMA_OK;
    }
    return sg_error(err, SIGMA_E_FORMAT, "key '%.*s': unknown array element type %u",
                    NAME_SHOWN, key, et);
}

static int read_value(cursor *c, uint32_t type, const char *key, sg_gguf_value *v,
                      sg_err *err) {
    memset(v, 0, sizeof *v);
    v->type = type;
    uint64_t es = sg_gguf_scalar_size(type);
    if (es) {
        if (remaining(c) < es)
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': %s value extends past the end of the file",
                            NAME_SHOWN, key, vtype_name(type));
        const uint8_t *p = c->base + c->pos;
        c->pos += es;
        switch (type) {
        case SG_GGUF_U8: case SG_GGUF_BOOL: v->v.u = p[0]; break;
        case SG_GGUF_I8: v->v.i = (int8_t)p[0]; break;
        case SG_GGUF_U16: v->v.u = sg_get_le16(p); break;
        case SG_GGUF_I16: v->v.i = (int16_t)sg_get_le16(p); break;
        case SG_GGUF_U32: v->v.u = sg_get_le32(p); break;
        case SG_GGUF_I32: v->v.i = (int32_t)sg_get_le32(p); break;
        case SG_GGUF_U64: v->v.u = sg_get_le64(p); break;
        case SG_GGUF_I64: v->v.i = (int64_t)sg_get_le64(p); break;
        case SG_GGUF_F32: {
            uint32_t u = sg_get_le32(p);
            float f;
            memcpy(&f, &u, 4);
            v->v.f = f;
            break;
        }
        case SG_GGUF_F64: {
            uint64_t u = sg_get_le64(p);
            memcpy(&v->v.f, &u, 8);
            break;
        }
        default: break;
        }
        return SIGMA_OK;
    }
    if (type == SG_GGUF_STRING) {
        uint64_t len;
        if (!rd_str(c, &v->v.s, &len))
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': string of length %llu extends past the end of the file",
                            NAME_SHOWN, key, (unsigned long long)len);
        return SIGMA_OK;
    }
    if (type == SG_GGUF_ARRAY) {
        uint32_t et;
        uint64_t n;
        if (!rd_u32(c, &et) || !rd_u64(c, &n))
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': array header extends past the end of the file",
                            NAME_SHOWN, key);
        uint64_t start = c->pos;
        int st = walk_array(c, et, n, 1, key, err);
        if (st) return st;
        v->v.arr.elem_type = et;
        v->v.arr.count = n;
        v->v.arr.data = c->base + start;
        v->v.arr.nbytes = c->pos - start;
        return SIGMA_OK;
    }
    return sg_error(err, SIGMA_E_FORMAT, "key '%.*s': unknown value type %u", NAME_SHOWN, key,
                    type);
}

/* ------------------------------------------------------------------------ */
/* Indexes                                                                  */
/* ------------------------------------------------------------------------ */

/* the pointer indexes follow the arrays: keep them pointer-aligned */
_Static_assert(sizeof(sg_gguf_kv) % sizeof(void *) == 0, "kv entry size");
_Static_assert(sizeof(sg_tensor) % sizeof(void *) == 0, "tensor entry size");

static inline const sg_gguf_kv **kv_index(const sg_gguf *g) {
    return (const sg_gguf_kv **)(void *)(g->kv + g->n_kv);
}

static inline const sg_tensor **tensor_index(const sg_gguf *g) {
    return (const sg_tensor **)(void *)(g->tensors + g->n_tensors);
}

static int cmp_kv(const void *a, const void *b) {
    const sg_gguf_kv *x = *(const sg_gguf_kv *const *)a, *y = *(const sg_gguf_kv *const *)b;
    return strcmp(x->key, y->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    const sg_tensor *x = *(const sg_tensor *const *)a, *y = *(const sg_tensor *const *)b;
    return strcmp(x->name, y->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const sg_tensor *x = *(const sg_tensor *const *)a, *y = *(const sg_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

const sg_gguf_kv *sg_gguf_find(const sg_gguf *g, const char *key) {
    if (!g || !key || g->n_kv == 0) return NULL;
    const sg_gguf_kv **idx = kv_index(g);
    uint64_t lo = 0, hi = g->n_kv;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(idx[mid]->key, key);
        if (c == 0) return idx[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const sg_tensor *sg_gguf_tensor(const sg_gguf *g, const char *name) {
    if (!g || !name || g->n_tensors == 0) return NULL;
    const sg_tensor **idx = tensor_index(g);
    uint64_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(idx[mid]->name, name);
        if (c == 0) return idx[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* An array of n entries of `elem` bytes followed by n pointers. */
static void *alloc_with_index(const sg_alloc *a, uint64_t n, size_t elem) {
    uint64_t total;
    if (!sg_mul_u64(n, (uint64_t)elem + sizeof(void *), &total) || total > SIZE_MAX) return NULL;
    void *p = sg_malloc(a, (size_t)total);
    if (p) memset(p, 0, (size_t)total);
    return p;
}

static int parse_kvs(sg_gguf *g, cursor *c, sg_err *err) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        sg_str k;
        uint64_t len;
        if (!rd_str(c, &k, &len))
            return sg_error(err, SIGMA_E_FORMAT,
                            "metadata entry %llu: key of length %llu extends past the end of "
                            "the file",
                            (unsigned long long)i, (unsigned long long)len);
        if (k.len == 0)
            return sg_error(err, SIGMA_E_FORMAT, "metadata entry %llu: empty key",
                            (unsigned long long)i);
        if (memchr(k.ptr, 0, (size_t)k.len))
            return sg_error(err, SIGMA_E_FORMAT, "metadata entry %llu: key contains a NUL byte",
                            (unsigned long long)i);
        sg_gguf_kv *kv = &g->kv[i];
        kv->key = sg_strndup(&g->alloc, k.ptr, (size_t)k.len);
        if (!kv->key) return sg_error(err, SIGMA_E_NOMEM, "out of memory reading metadata");
        uint32_t type;
        if (!rd_u32(c, &type))
            return sg_error(err, SIGMA_E_FORMAT,
                            "key '%.*s': value type extends past the end of the file",
                            NAME_SHOWN, kv->key);
        int st = read_value(c, type, kv->key, &kv->value, err);
        if (st) return st;
        kv_index(g)[i] = kv;
    }
    if (g->n_kv > 1) {
        const sg_gguf_kv **idx = kv_index(g);
        qsort(idx, (size_t)g->n_kv, sizeof *idx, cmp_kv);
        for (uint64_t i = 1; i < g->n_kv; i++)
            if (strcmp(idx[i - 1]->key, idx[i]->key) == 0)
                return sg_error(err, SIGMA_E_FORMAT, "duplicate metadata key '%.*s'",
                                NAME_SHOWN, idx[i]->key);
    }
    return SIGMA_OK;
}

static int read_alignment(sg_gguf *g, sg_err *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const sg_gguf_kv *kv = sg_gguf_find(g, "general.alignment");
    if (!kv) return SIGMA_OK;
    if (kv->value.type != SG_GGUF_U32)
        return sg_error(err, SIGMA_E_FORMAT, "key 'general.alignment': type %s, expected u32",
                        vtype_name(kv->value.type));
    uint64_t a = kv->value.v.u;
    if (a == 0 || (a & (a - 1)) != 0)
        return sg_error(err, SIGMA_E_FORMAT,
                        "key 'general.alignment': %llu is not a nonzero power of two",
                        (unsigned long long)a);
    g->alignment = a;
    return SIGMA_OK;
}

static int parse_tensor_infos(sg_gguf *g, cursor *c, sg_err *err) {
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        sg_str nm;
        uint64_t len;
        if (!rd_str(c, &nm, &len))
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor %llu: name of length %llu extends past the end of the file",
                            (unsigned long long)i, (unsigned long long)len);
        if (nm.len == 0)
            return sg_error(err, SIGMA_E_FORMAT, "tensor %llu: empty name",
                            (unsigned long long)i);
        if (memchr(nm.ptr, 0, (size_t)nm.len))
            return sg_error(err, SIGMA_E_FORMAT, "tensor %llu: name contains a NUL byte",
                            (unsigned long long)i);
        sg_tensor *t = &g->tensors[i];
        char *name = sg_strndup(&g->alloc, nm.ptr, (size_t)nm.len);
        if (!name) return sg_error(err, SIGMA_E_NOMEM, "out of memory reading tensor infos");
        t->name = name;
        uint32_t n_dims;
        if (!rd_u32(c, &n_dims))
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor '%.*s': info extends past the end of the file", NAME_SHOWN,
                            name);
        if (n_dims < 1 || n_dims > 4)
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor '%.*s': %u dimensions, expected 1 to 4", NAME_SHOWN, name,
                            n_dims);
        t->n_dims = n_dims;
        uint64_t nelem = 1;
        for (uint32_t d = 0; d < 4; d++) {
            t->ne[d] = 1;
            if (d >= n_dims) continue;
            if (!rd_u64(c, &t->ne[d]))
                return sg_error(err, SIGMA_E_FORMAT,
                                "tensor '%.*s': info extends past the end of the file",
                                NAME_SHOWN, name);
            if (t->ne[d] == 0)
                return sg_error(err, SIGMA_E_FORMAT, "tensor '%.*s': dimension %u is 0",
                                NAME_SHOWN, name, d);
            if (!sg_mul_u64(nelem, t->ne[d], &nelem) || nelem > (uint64_t)INT64_MAX)
                return sg_error(err, SIGMA_E_FORMAT,
                                "tensor '%.*s': the number of elements overflows", NAME_SHOWN,
                                name);
        }
        uint32_t type;
        if (!rd_u32(c, &type) || !rd_u64(c, &t->offset))
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor '%.*s': info extends past the end of the file", NAME_SHOWN,
                            name);
        t->type = type;
        uint32_t be, bb;
        if (!sg_type_info(type, &be, &bb)) {
            if (strcmp(sg_type_name(type), "?") == 0)
                return sg_error(err, SIGMA_E_FORMAT, "tensor '%.*s': unknown type %u",
                                NAME_SHOWN, name, type);
            return sg_error(err, SIGMA_E_UNSUPPORTED,
                            "tensor '%.*s': type %s (%u) is not supported", NAME_SHOWN, name,
                            sg_type_name(type), type);
        }
        if (t->ne[0] % be != 0)
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor '%.*s': row length %llu is not a multiple of the %s block "
                            "size %u",
                            NAME_SHOWN, name, (unsigned long long)t->ne[0], sg_type_name(type),
                            be);
        uint64_t row;
        if (!sg_mul_u64(t->ne[0] / be, bb, &row) || !sg_mul_u64(row, nelem / t->ne[0], &t->nbytes))
            return sg_error(err, SIGMA_E_FORMAT, "tensor '%.*s': size overflows", NAME_SHOWN,
                            name);
        tensor_index(g)[i] = t;
    }
    return SIGMA_OK;
}

static int layout_tensors(sg_gguf *g, uint64_t header_end, sg_err *err) {
    /* data section: header end rounded up to the alignment */
    uint64_t pad = (g->alignment - header_end % g->alignment) % g->alignment;
    uint64_t ds;
    if (!sg_add_u64(header_end, pad, &ds)) ds = UINT64_MAX;
    if (g->n_tensors == 0) {
        g->data_offset = ds < g->size ? ds : g->size;
        return SIGMA_OK;
    }
    if (ds > g->size)
        return sg_error(err, SIGMA_E_FORMAT,
                        "data section start %llu (aligned to %llu) is past the end of the file "
                        "(%llu bytes)",
                        (unsigned long long)ds, (unsigned long long)g->alignment,
                        (unsigned long long)g->size);
    g->data_offset = ds;
    uint64_t avail = g->size - ds;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        sg_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return sg_error(err, SIGMA_E_FORMAT, "tensor '%.*s': offset %llu not aligned to %llu",
                            NAME_SHOWN, t->name, (unsigned long long)t->offset,
                            (unsigned long long)g->alignment);
        uint64_t end;
        if (!sg_add_u64(t->offset, t->nbytes, &end) || end > avail)
            return sg_error(err, SIGMA_E_FORMAT,
                            "tensor '%.*s': data at offset %llu of %llu bytes extends past the "
                            "end of the file (data section has %llu bytes)",
                            NAME_SHOWN, t->name, (unsigned long long)t->offset,
                            (unsigned long long)t->nbytes, (unsigned long long)avail);
        t->data = g->base + ds + t->offset;
    }
    /* overlap and duplicate-name checks on sorted pointer arrays */
    const sg_tensor **idx = tensor_index(g);
    if (g->n_tensors > 1) {
        qsort(idx, (size_t)g->n_tensors, sizeof *idx, cmp_tensor_offset);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (idx[i - 1]->offset + idx[i - 1]->nbytes > idx[i]->offset)
                return sg_error(err, SIGMA_E_FORMAT,
                                "tensor '%.*s' (offset %llu, %llu bytes) overlaps tensor '%.*s' "
                                "(offset %llu)",
                                NAME_SHOWN, idx[i - 1]->name,
                                (unsigned long long)idx[i - 1]->offset,
                                (unsigned long long)idx[i - 1]->nbytes, NAME_SHOWN,
                                idx[i]->name, (unsigned long long)idx[i]->offset);
        qsort(idx, (size_t)g->n_tensors, sizeof *idx, cmp_tensor_name);
        for (uint64_t i = 1; i < g->n_tensors; i++)
            if (strcmp(idx[i - 1]->name, idx[i]->name) == 0)
                return sg_error(err, SIGMA_E_FORMAT, "duplicate tensor name '%.*s'", NAME_SHOWN,
                                idx[i]->name);
    }
    return SIGMA_OK;
}

static int parse(sg_gguf *g, sg_err *err) {
    cursor c = {g->base, 0, g->size};
    uint32_t version;
    uint64_t n_tensors, n_kv;
    if (g->size < 4 || memcmp(g->base, "GGUF", 4) != 0)
        return sg_error(err, SIGMA_E_FORMAT, "not a GGUF file (bad magic)");
    c.pos = 4;
    if (!rd_u32(&c, &version))
        return sg_error(err, SIGMA_E_FORMAT, "GGUF header truncated (%llu bytes)",
                        (unsigned long long)g->size);
    if (version != 2 && version != 3) {
        /* a byte-swapped version means a big-endian file */
        if (version == 0x02000000u || version == 0x03000000u)
            return sg_error(err, SIGMA_E_UNSUPPORTED, "big-endian GGUF files are not supported");
        if (version == 1)
            return sg_error(err, SIGMA_E_UNSUPPORTED, "GGUF version 1 is not supported");
        return sg_error(err, SIGMA_E_FORMAT, "unknown GGUF version %u (expected 2 or 3)",
                        version);
    }
    g->version = version;
    if (!rd_u64(&c, &n_tensors) || !rd_u64(&c, &n_kv))
        return sg_error(err, SIGMA_E_FORMAT, "GGUF header truncated (%llu bytes)",
                        (unsigned long long)g->size);
    /* Reject absurd counts before allocating anything for them. */
    if (n_kv > remaining(&c) / GGUF_MIN_KV_BYTES)
        return sg_error(err, SIGMA_E_FORMAT,
                        "metadata count %llu is impossible for a file of %llu bytes",
                        (unsigned long long)n_kv, (unsigned long long)g->size);
    if (n_tensors > remaining(&c) / GGUF_MIN_TENSOR_BYTES)
        return sg_error(err, SIGMA_E_FORMAT,
                        "tensor count %llu is impossible for a file of %llu bytes",
                        (unsigned long long)n_tensors, (unsigned long long)g->size);
    if (n_kv) {
        g->kv = alloc_with_index(&g->alloc, n_kv, sizeof *g->kv);
        if (!g->kv) return sg_error(err, SIGMA_E_NOMEM, "out of memory for %llu metadata entries",
                                    (unsigned long long)n_kv);
    }
    g->n_kv = n_kv;
    int st = parse_kvs(g, &c, err);
    if (st) return st;
    st = read_alignment(g, err);
    if (st) return st;
    if (n_tensors > remaining(&c) / GGUF_MIN_TENSOR_BYTES)
        return sg_error(err, SIGMA_E_FORMAT,
                        "tensor count %llu is impossible: only %llu bytes follow the metadata",
                        (unsigned long long)n_tensors, (unsigned long long)remaining(&c));
    if (n_tensors) {
        g->tensors = alloc_with_index(&g->alloc, n_tensors, sizeof *g->tensors);
        if (!g->tensors)
            return sg_error(err, SIGMA_E_NOMEM, "out of memory for %llu tensors",
                            (unsigned long long)n_tensors);
    }
    g->n_tensors = n_tensors;
    st = parse_tensor_infos(g, &c, err);
    if (st) return st;
    return layout_tensors(g, c.pos, err);
}

/* ------------------------------------------------------------------------ */
/* Open / close                                                             */
/* ------------------------------------------------------------------------ */

void sg_gguf_close(sg_gguf *g) {
    if (!g) return;
    sg_alloc a = g->alloc;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) sg_free(&a, g->kv[i].key);
    sg_free(&a, g->kv);
    if (g->tensors)
        for (uint64_t i = 0; i < g->n_tensors; i++) sg_free(&a, (void *)g->tensors[i].name);
    sg_free(&a, g->tensors);
    if (g->mapped == 1 && g->base) munmap((void *)g->base, (size_t)g->size);
    else if (g->mapped == 2) sg_free(&a, (void *)g->base);
    sg_free(&a, g);
}

static int open_image(const sg_alloc *a, const uint8_t *base, uint64_t size, int mapped,
                      sg_gguf **out, sg_err *err) {
    sg_gguf *g = sg_calloc(a, 1, sizeof *g);
    if (!g) {
        if (mapped == 1) munmap((void *)base, (size_t)size);
        else if (mapped == 2) sg_free(a, (void *)base);
        return sg_error(err, SIGMA_E_NOMEM, "out of memory opening the model file");
    }
    g->alloc = *a;
    g->base = base;
    g->size = size;
    g->mapped = mapped;
    int st = parse(g, err);
    if (st) {
        sg_gguf_close(g);
        return st;
    }
    *out = g;
    return SIGMA_OK;
}

int sg_gguf_open_memory(const sg_alloc *a, const void *data, size_t size, sg_gguf **out,
                        sg_err *err) {
    if (out) *out = NULL;
    if (!a || !data || !out) return sg_error(err, SIGMA_E_INVALID_ARG, "GGUF open: NULL argument");
    return open_image(a, data, (uint64_t)size, 0, out, err);
}

int sg_gguf_open_file(const sg_alloc *a, const char *path, int use_mmap, sg_gguf **out,
                      sg_err *err) {
    if (out) *out = NULL;
    if (!a || !path || !out) return sg_error(err, SIGMA_E_INVALID_ARG, "GGUF open: NULL argument");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sg_error(err, SIGMA_E_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        int e = errno;
        close(fd);
        return sg_error(err, SIGMA_E_IO, "cannot stat '%s': %s", path, strerror(e));
    }
    if (!S_ISREG(stt.st_mode)) {
        close(fd);
        return sg_error(err, SIGMA_E_IO, "'%s' is not a regular file", path);
    }
    if (stt.st_size < 24) {
        close(fd);
        return sg_error(err, SIGMA_E_FORMAT, "'%s' is too small to be a GGUF file (%lld bytes)",
                        path, (long long)stt.st_size);
    }
    if ((uint64_t)stt.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return sg_error(err, SIGMA_E_IO, "'%s' is too large to map", path);
    }
    size_t size = (size_t)stt.st_size;
    const uint8_t *base;
    int mapped;
    if (use_mmap) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return sg_error(err, SIGMA_E_IO, "cannot map '%s': %s", path, strerror(e));
        }
        base = p;
        mapped = 1;
    } else {
        uint8_t *p = sg_malloc(a, size);
        if (!p) {
            close(fd);
            return sg_error(err, SIGMA_E_NOMEM, "out of memory reading '%s' (%zu bytes)", path,
                            size);
        }
        size_t got = 0;
        while (got < size) {
            ssize_t r = read(fd, p + got, size - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                int e = r < 0 ? errno : 0;
                close(fd);
                sg_free(a, p);
                return sg_error(err, SIGMA_E_IO, "cannot read '%s': %s", path,
                                e ? strerror(e) : "unexpected end of file");
            }
            got += (size_t)r;
        }
        base = p;
        mapped = 2;
    }
    close(fd);
    return open_image(a, base, (uint64_t)size, mapped, out, err);
}

void sg_gguf_release_pages(const sg_gguf *g, const void *p, uint64_t n) {
#ifdef MADV_DONTNEED
    if (!g || g->mapped != 1 || !p || n == 0) return;
    const uintptr_t base = (uintptr_t)g->base, lo = (uintptr_t)p;
    if (lo < base || n > g->size || lo - base > g->size - n) return;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    const uintptr_t page = (uintptr_t)ps;
    uintptr_t start = (lo + page - 1) / page * page, end = (lo + (uintptr_t)n) / page * page;
    /* a private read-only file mapping that was never written: the pages
     * are dropped and fault in from the file again if read */
    if (end > start) (void)madvise((void *)start, end - start, MADV_DONTNEED);
#else
    (void)g, (void)p, (void)n;
#endif
}

/* ------------------------------------------------------------------------ */
/* Typed getters                                                            */
/* ------------------------------------------------------------------------ */

static bool is_unsigned(uint32_t t) {
    return t == SG_GGUF_U8 || t == SG_GGUF_U16 || t == SG_GGUF_U32 || t == SG_GGUF_U64;
}

static bool is_signed(uint32_t t) {
    return t == SG_GGUF_I8 || t == SG_GGUF_I16 || t == SG_GGUF_I32 || t == SG_GGUF_I64;
}

int sg_gguf_get_u32(const sg_gguf *g, const char *key, uint32_t *out, sg_err *err) {
    const sg_gguf_kv *kv = sg_gguf_find(g, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    const sg_gguf_value *v = &kv->value;
    if (is_unsigned(v->type)) {
        if (v->v.u > UINT32_MAX)
            return sg_error(err, SIGMA_E_FORMAT, "key '%s': value %llu does not fit u32", key,
                            (unsigned long long)v->v.u);
        *out = (uint32_t)v->v.u;
        return SIGMA_OK;
    }
    if (is_signed(v->type)) {
        if (v->v.i < 0 || v->v.i > (int64_t)UINT32_MAX)
            return sg_error(err, SIGMA_E_FORMAT, "key '%s': value %lld does not fit u32", key,
                            (long long)v->v.i);
        *out = (uint32_t)v->v.i;
        return SIGMA_OK;
    }
    return sg_error(err, SIGMA_E_FORMAT, "key '%s': type %s, expected an integer", key,
                    vtype_name(v->type));
}

int sg_gguf_get_f32(const sg_gguf *g, const char *key, float *out, sg_err *err) {
    const sg_gguf_kv *kv = sg_gguf_find(g, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    const sg_gguf_value *v = &kv->value;
    if (v->type != SG_GGUF_F32 && v->type != SG_GGUF_F64)
        return sg_error(err, SIGMA_E_FORMAT, "key '%s': type %s, expected f32", key,
                        vtype_name(v->type));
    *out = (float)v->v.f;
    return SIGMA_OK;
}

int sg_gguf_get_bool(const sg_gguf *g, const char *key, bool *out, sg_err *err) {
    const sg_gguf_kv *kv = sg_gguf_find(g, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    if (kv->value.type != SG_GGUF_BOOL)
        return sg_error(err, SIGMA_E_FORMAT, "key '%s': type %s, expected bool", key,
                        vtype_name(kv->value.type));
    *out = kv->value.v.u != 0;
    return SIGMA_OK;
}

int sg_gguf_get_str(const sg_gguf *g, const char *key, sg_str *out, sg_err *err) {
    const sg_gguf_kv *kv = sg_gguf_find(g, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    if (kv->value.type != SG_GGUF_STRING)
        return sg_error(err, SIGMA_E_FORMAT, "key '%s': type %s, expected string", key,
                        vtype_name(kv->value.type));
    *out = kv->value.v.s;
    return SIGMA_OK;
}

int sg_gguf_get_arr(const sg_gguf *g, const char *key, uint32_t elem_type, uint64_t *count,
                    const uint8_t **data, sg_err *err) {
    const sg_gguf_kv *kv = sg_gguf_find(g, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    const sg_gguf_value *v = &kv->value;
    if (v->type != SG_GGUF_ARRAY)
        return sg_error(err, SIGMA_E_FORMAT, "key '%s': type %s, expected an array of %s", key,
                        vtype_name(v->type), vtype_name(elem_type));
    if (v->v.arr.elem_type != elem_type)
        return sg_error(err, SIGMA_E_FORMAT, "key '%s': array of %s, expected an array of %s",
                        key, vtype_name(v->v.arr.elem_type), vtype_name(elem_type));
    if (count) *count = v->v.arr.count;
    if (data) *data = v->v.arr.data;
    return SIGMA_OK;
}
