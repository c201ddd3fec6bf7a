/* The model object's own state: its error slot, its fingerprint (what
 * session files are checked against), and the public read-only queries
 * (information, last error, metadata). Opening is lib/api/model_api.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "model.h"

static int repack_eligible(const sigma_model *m, const sg_kernels *k, const sg_tensor *t) {
    if (t->type >= 32 || !(k->x8_types >> t->type & 1u) || !sg_type_x8(t->type)) return 0;
    if (t->n_dims != 2 || t->ne[1] == 0 || t->ne[1] % 8) return 0;
    if (t == m->tok_embd && m->output != m->tok_embd) return 0; /* only looked up by row */
    size_t rb = sg_type_row_bytes(t->type, t->ne[0]);
    return rb && t->nbytes == (uint64_t)rb * t->ne[1];
}

int sg_model_repack(sigma_model *m, sg_err *err) {
    sg_kernels k;
    sg_kernels_init_spec(&k, 1, getenv("SIGMA_KERNELS"));
    if (!k.gemm_x8 || !k.act_q8) return SIGMA_OK;
    sg_gguf *g = m->gguf;
    uint64_t total = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (repack_eligible(m, &k, &g->tensors[i])) total += (g->tensors[i].nbytes + 63) & ~(uint64_t)63;
    if (total == 0) return SIGMA_OK;
    double t0 = sg_now_ms();
    uint8_t *p = total <= SIZE_MAX ? sg_malloc(&m->alloc, (size_t)total) : NULL;
    if (!p)
        return sg_error(err, SIGMA_E_NOMEM,
                        "out of memory repacking %" PRIu64 " bytes of weights "
                        "(SIGMA_KERNELS=nopack opens without it)", total);
    m->packed = p;
    m->packed_bytes = total;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        sg_tensor *t = &g->tensors[i];
        if (!repack_eligible(m, &k, t)) continue;
        if (sg_pack_x8(t->type, t->data, (size_t)t->ne[1], (size_t)(t->nbytes / t->ne[1]), p) != 0)
            return sg_error(err, SIGMA_E_INTERNAL, "tensor '%s': cannot repack", t->name);
        t->packed = p;
        p += (t->nbytes + 63) & ~(uint64_t)63;
    }
    /* The kernels read the copies: the file's pages of those matrices need
     * not stay resident (read-only mappings only; they fault in again for
     * the paths that read t->data). After all the copies: a large page
     * cache folio can span two tensors, and reading the next one would map
     * it again. */
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].packed) sg_gguf_release_pages(g, g->tensors[i].data, g->tensors[i].nbytes);
    m->packed_ms = sg_now_ms() - t0;
    return SIGMA_OK;
}

/* Two independent 64-bit FNV-1a style hashes (different offsets and a
 * final avalanche) over what makes a session valid for a model: the shape,
 * the vocabulary, and samples of every tensor's bytes (start, middle, end;
 * hashing every weight would cost a full read of the file at open). */
typedef struct fp_state {
    uint64_t h[2];
} fp_state;

static void fp_bytes(fp_state *f, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        f->h[0] = (f->h[0] ^ p[i]) * 0x100000001b3ull;
        f->h[1] = (f->h[1] ^ p[i]) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
}

static void fp_u64(fp_state *f, uint64_t v) {
    uint8_t b[8];
    sg_put_le64(b, v);
    fp_bytes(f, b, 8);
}

static uint64_t fp_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

void sg_model_fingerprint(sigma_model *m) {
    fp_state f = {{0xcbf29ce484222325ull, 0x84222325cbf29ce4ull}};
    const sg_hparams *hp = &m->hp;
    uint64_t fields[] = {(uint64_t)hp->arch, hp->n_layer, hp->n_embd, hp->n_ff, hp->n_q, hp->n_k,
                         hp->n_v, hp->d_qk, hp->d_v, hp->d_aug, hp->n_rot, hp->n_vocab,
                         (uint64_t)hp->rope_layout, (uint64_t)hp->tied_output};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) fp_u64(&f, fields[i]);
    fp_bytes(&f, &hp->rope_theta, sizeof hp->rope_theta);
    fp_bytes(&f, &hp->norm_eps, sizeof hp->norm_eps);
    if (hp->rope_freq_scale != 1.0f) fp_bytes(&f, &hp->rope_freq_scale, sizeof hp->rope_freq_scale);
    /* architecture properties beyond llama's (absent = the old fingerprint) */
    if (hp->n_swa) fp_u64(&f, hp->n_swa);
    if (hp->final_softcap != 0.0f) fp_bytes(&f, &hp->final_softcap, sizeof hp->final_softcap);
    if (hp->attn_softcap != 0.0f) fp_bytes(&f, &hp->attn_softcap, sizeof hp->attn_softcap);
    const sg_gguf_kv *tok = sg_gguf_find(m->gguf, "tokenizer.ggml.tokens");
    if (tok && tok->value.type == SG_GGUF_ARRAY)
        fp_bytes(&f, tok->value.v.arr.data, (size_t)tok->value.v.arr.nbytes);
    const sg_gguf *g = m->gguf;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const sg_tensor *t = &g->tensors[i];
        fp_bytes(&f, t->name, strlen(t->name));
        fp_u64(&f, t->type);
        for (int d = 0; d < 4; d++) fp_u64(&f, t->ne[d]);
        const uint8_t *data = t->data;
        uint64_t n = t->nbytes, k = n < 64 ? n : 64;
        fp_bytes(&f, data, (size_t)k);
        fp_bytes(&f, data + n / 2 - (n / 2 < k ? n / 2 : k / 2), (size_t)k);
        fp_bytes(&f, data + n - k, (size_t)k);
    }
    m->fingerprint[0] = fp_mix(f.h[0]);
    m->fingerprint[1] = fp_mix(f.h[1] ^ g->n_tensors);
}

int sg_model_error(const sigma_model *model, int status, const char *fmt, ...) {
    sigma_model *m = (sigma_model *)model; /* the error slot is the one mutable part */
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&m->err_lock);
    sg_verror(&m->err, status, fmt, ap);
    pthread_mutex_unlock(&m->err_lock);
    va_end(ap);
    return status;
}

int sigma_model_get_info(const sigma_model *model, sigma_model_info *info) {
    if (!model || !info || info->struct_size < offsetof(sigma_model_info, arch_name))
        return SIGMA_E_INVALID_ARG;
    const sg_hparams *hp = &model->hp;
    sigma_model_info d;
    memset(&d, 0, sizeof d);
    d.arch = hp->arch;
    d.arch_name = hp->desc ? hp->desc->name : "";
    d.name = model->name ? model->name : "";
    d.n_layers = hp->n_layer;
    d.n_embd = hp->n_embd;
    d.n_ff = hp->n_ff;
    d.n_q_heads = hp->n_q;
    d.n_k_heads = hp->n_k;
    d.n_v_heads = hp->n_v;
    d.d_qk = hp->d_qk;
    d.d_v = hp->d_v;
    d.d_aug = hp->d_aug;
    d.n_rot = hp->n_rot;
    d.n_vocab = hp->n_vocab;
    d.n_ctx_train = hp->n_ctx_train;
    d.rope_theta = hp->rope_theta;
    d.norm_eps = hp->norm_eps;
    d.tied_output = hp->tied_output;
    d.n_params = model->n_params;
    d.file_size = model->gguf->size;
    d.kv_bytes_per_token = (uint64_t)hp->n_layer *
                           ((uint64_t)hp->n_k * hp->d_qk + (uint64_t)hp->n_v * hp->d_v) * 4u;
    uint32_t sz = info->struct_size;
    size_t n = sz < sizeof d ? sz : sizeof d;
    d.struct_size = sz;
    memcpy(info, &d, n);
    return SIGMA_OK;
}

int sigma_model_meta_count(const sigma_model *model, size_t *count) {
    if (!model || !count) return SIGMA_E_INVALID_ARG;
    *count = (size_t)model->gguf->n_kv;
    return SIGMA_OK;
}

int sigma_model_meta_key(const sigma_model *model, size_t index, const char **key) {
    if (!model || !key) return SIGMA_E_INVALID_ARG;
    if (index >= model->gguf->n_kv) return SIGMA_E_NOT_FOUND;
    *key = model->gguf->kv[index].key;
    return SIGMA_OK;
}

/* A growing text buffer into a fixed caller buffer that counts the full
 * length even when it does not fit. */
typedef struct textbuf {
    char *buf;
    size_t size, len;
} textbuf;

static void tb_put(textbuf *t, const char *s, size_t n) {
    if (t->len < t->size) {
        size_t room = t->size - t->len;
        memcpy(t->buf + t->len, s, n < room ? n : room);
    }
    t->len += n;
}

static void tb_printf(textbuf *t, const char *fmt, ...) SG_PRINTF(2, 3);
static void tb_printf(textbuf *t, const char *fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0) tb_put(t, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_scalar(textbuf *t, uint32_t type, const uint8_t *p) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, sg_gguf_scalar_size(type));
    switch (type) {
    case SG_GGUF_U8: tb_printf(t, "%u", v.u8); break;
    case SG_GGUF_I8: tb_printf(t, "%d", v.i8); break;
    case SG_GGUF_U16: tb_printf(t, "%u", v.u16); break;
    case SG_GGUF_I16: tb_printf(t, "%d", v.i16); break;
    case SG_GGUF_U32: tb_printf(t, "%" PRIu32, v.u32); break;
    case SG_GGUF_I32: tb_printf(t, "%" PRId32, v.i32); break;
    case SG_GGUF_F32: tb_printf(t, "%.9g", (double)v.f32); break;
    case SG_GGUF_BOOL: tb_printf(t, "%s", v.u8 ? "true" : "false"); break;
    case SG_GGUF_U64: tb_printf(t, "%" PRIu64, v.u64); break;
    case SG_GGUF_I64: tb_printf(t, "%" PRId64, v.i64); break;
    case SG_GGUF_F64: tb_printf(t, "%.17g", v.f64); break;
    default: break;
    }
}

int sigma_model_meta_get(const sigma_model *model, const char *key, char *buf, size_t size,
                         size_t *len) {
    if (!model || !key || (!buf && size)) return SIGMA_E_INVALID_ARG;
    const sg_gguf_kv *kv = sg_gguf_find(model->gguf, key);
    if (!kv) return SIGMA_E_NOT_FOUND;
    textbuf t = {buf, size, 0};
    const sg_gguf_value *v = &kv->value;
    switch (v->type) {
    case SG_GGUF_STRING: tb_put(&t, v->v.s.ptr, (size_t)v->v.s.len); break;
    case SG_GGUF_F32: case SG_GGUF_F64: tb_printf(&t, "%.9g", v->v.f); break;
    case SG_GGUF_BOOL: tb_printf(&t, "%s", v->v.u ? "true" : "false"); break;
    case SG_GGUF_I8: case SG_GGUF_I16: case SG_GGUF_I32: case SG_GGUF_I64:
        tb_printf(&t, "%" PRId64, v->v.i); break;
    case SG_GGUF_ARRAY: {
        uint64_t n = v->v.arr.count;
        uint32_t et = v->v.arr.elem_type;
        if (n > 16 || et == SG_GGUF_ARRAY) {
            tb_printf(&t, "[%" PRIu64 " items]", n);
            break;
        }
        tb_put(&t, "[", 1);
        const uint8_t *p = v->v.arr.data;
        for (uint64_t i = 0; i < n; i++) {
            if (i) tb_put(&t, ", ", 2);
            if (et == SG_GGUF_STRING) {
                sg_str s = sg_gguf_next_str(&p);
                tb_put(&t, s.ptr, (size_t)s.len);
            } else {
                put_scalar(&t, et, p);
                p += sg_gguf_scalar_size(et);
            }
        }
        tb_put(&t, "]", 1);
        break;
    }
    default: tb_printf(&t, "%" PRIu64, v->v.u); break;
    }
    if (len) *len = t.len;
    if (t.len >= size) {
        if (size) buf[size - 1] = '\0';
        return SIGMA_E_BUFFER_TOO_SMALL;
    }
    buf[t.len] = '\0';
    return SIGMA_OK;
}
