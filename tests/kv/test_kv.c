/* The dense KV strategy through the public sigma_kv_strategy interface. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "kv/kv.h"

static const sigma_kv_layout LAY = {sizeof(sigma_kv_layout), 2, 4, 1, 2, 8, 4, 200, 16};

static void fill(float *p, size_t n, float base) {
    for (size_t i = 0; i < n; i++) p[i] = base + (float)sin((double)i * 0.37 + base);
}

/* A growing buffer for strategy save(). */
typedef struct blob {
    unsigned char *data;
    size_t len;
} blob;

static int blob_write(void *ctx, const void *data, size_t n) {
    blob *b = ctx;
    unsigned char *p = realloc(b->data, b->len + n);
    if (!p) return SIGMA_E_NOMEM;
    memcpy(p + b->len, data, n);
    b->data = p;
    b->len += n;
    return SIGMA_OK;
}

START_TEST(test_registry) {
    sigma_kv_strategy k;
    ck_assert_int_eq(sg_kv_find("dense", &k), 1);
    ck_assert_str_eq(k.name, "dense");
    ck_assert_int_eq(sg_kv_find("nope", &k), 0);
    ck_assert_int_eq(sg_kv_find(NULL, &k), 0);
    ck_assert_int_eq(k.version, SIGMA_KV_STRATEGY_VERSION);
    ck_assert_int_eq(k.unbounded, 0);
    ck_assert(k.create && k.destroy && k.append && k.attend && k.truncate && k.bytes_used && k.save && k.load);
}
END_TEST

START_TEST(test_options) {
    sigma_kv_strategy dk;
    ck_assert_int_eq(sg_kv_find("dense", &dk), 1);
    const sigma_kv_strategy *d = &dk;
    void *st = NULL;
    char err[128] = "";
    ck_assert_int_eq(d->create(NULL, &LAY, "type=q3", &st, err, sizeof err), SIGMA_E_INVALID_ARG);
    ck_assert_ptr_null(st);
    ck_assert(strstr(err, "type=q3") != NULL);
    ck_assert_int_eq(d->create(NULL, &LAY, "bogus=1", &st, err, sizeof err), SIGMA_E_INVALID_ARG);
    sigma_kv_layout bad = LAY;
    bad.n_k_heads = 3; /* 4 % 3 != 0 */
    ck_assert_int_eq(d->create(NULL, &bad, NULL, &st, err, sizeof err), SIGMA_E_INVALID_ARG);
    const char *ok[] = {NULL, "", "type=f32", "type=f16", "type=bf16", "type=f16,"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(d->create(NULL, &LAY, ok[i], &st, err, sizeof err), SIGMA_OK);
        ck_assert_ptr_nonnull(st);
        d->destroy(st);
        st = NULL;
    }
}
END_TEST

/* append / attend / truncate / bytes, growth across capacities (type=f32:
 * attention against a double computation at 1e-5) */
START_TEST(test_append_attend_truncate) {
    sigma_kv_strategy dk;
    ck_assert_int_eq(sg_kv_find("dense", &dk), 1);
    const sigma_kv_strategy *d = &dk;
    void *st = NULL;
    char err[128];
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f32", &st, err, sizeof err), SIGMA_OK);
    const size_t kr = 1 * 8, vr = 2 * 4;
    float k[200 * 8], v[200 * 8];
    fill(k, sizeof k / 4, 0.1f);
    fill(v, sizeof v / 4, 0.7f);
    ck_assert_uint_eq(d->bytes_used(st), 0);
    /* holes are refused */
    ck_assert_int_eq(d->append(st, 0, 5, 1, k, v), SIGMA_E_INVALID_ARG);
    ck_assert_int_eq(d->append(st, 2, 0, 1, k, v), SIGMA_E_INVALID_ARG);
    /* fill 150 positions in uneven chunks (forces growth) */
    uint32_t pos = 0;
    while (pos < 150) {
        uint32_t n = pos % 7 + 1;
        if (pos + n > 150) n = 150 - pos;
        for (uint32_t l = 0; l < 2; l++)
            ck_assert_int_eq(d->append(st, l, pos, n, k + pos * kr, v + pos * vr), SIGMA_OK);
        pos += n;
    }
    ck_assert_uint_eq(d->bytes_used(st), 2 * 150 * (kr + vr) * 4);
    float q[3 * 4 * 8], out[3 * 4 * 4], out2[3 * 4 * 4];
    fill(q, sizeof q / 4, -0.3f);
    sigma_kv_attend_args a = {sizeof a, 1, 147, 3, q, out, 0.35f, 0, 0.0f};
    ck_assert_int_eq(d->attend(st, &a), SIGMA_OK);
    /* check query 1 (position 148), head 3 -> k head 0, v head 1 */
    {
        const float *qq = q + (1 * 4 + 3) * 8;
        double s[149], mx = -1e300, sum = 0;
        for (int j = 0; j <= 148; j++) {
            double dd = 0;
            for (int i = 0; i < 8; i++) dd += (double)qq[i] * k[j * kr + i];
            s[j] = dd * 0.35;
            if (s[j] > mx) mx = s[j];
        }
        for (int j = 0; j <= 148; j++) sum += (s[j] = exp(s[j] - mx));
        for (int i = 0; i < 4; i++) {
            double o = 0;
            for (int j = 0; j <= 148; j++) o += s[j] / sum * v[j * vr + 4 + i];
            ck_assert(fabs(out[(1 * 4 + 3) * 4 + i] - o) < 1e-5);
        }
    }
    /* attending past what was appended is refused */
    sigma_kv_attend_args past = {sizeof past, 1, 149, 2, q, out2, 0.35f, 0, 0.0f};
    ck_assert_int_eq(d->attend(st, &past), SIGMA_E_INVALID_ARG);
    /* truncate, overwrite the tail with other values, re-append the originals:
     * results equal the first attend */
    ck_assert_int_eq(d->truncate(st, 140), SIGMA_OK);
    ck_assert_uint_eq(d->bytes_used(st), 2 * 140 * (kr + vr) * 4);
    float junk[10 * 8];
    fill(junk, 80, 5.0f);
    for (uint32_t l = 0; l < 2; l++) ck_assert_int_eq(d->append(st, l, 140, 10, junk, junk), SIGMA_OK);
    ck_assert_int_eq(d->truncate(st, 140), SIGMA_OK);
    for (uint32_t l = 0; l < 2; l++)
        ck_assert_int_eq(d->append(st, l, 140, 10, k + 140 * kr, v + 140 * vr), SIGMA_OK);
    ck_assert_int_eq(d->attend(st, &a), SIGMA_OK);
    memcpy(out2, out, sizeof out);
    a.out = out2;
    ck_assert_int_eq(d->attend(st, &a), SIGMA_OK);
    ck_assert_mem_eq(out, out2, sizeof out);
    /* the context limit */
    for (uint32_t l = 0; l < 2; l++) ck_assert_int_eq(d->append(st, l, 150, 50, k, v), SIGMA_OK);
    ck_assert_int_eq(d->append(st, 0, 200, 1, k, v), SIGMA_E_CONTEXT_FULL);
    /* save -> load into a fresh state -> identical attention; a damaged
     * blob is refused and leaves the state as it was */
    ck_assert_int_eq(d->save(st, NULL, NULL), SIGMA_E_INVALID_ARG);
    blob b = {NULL, 0};
    ck_assert_int_eq(d->save(st, blob_write, &b), SIGMA_OK);
    void *st2 = NULL;
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f32", &st2, err, sizeof err), SIGMA_OK);
    ck_assert_int_eq(d->load(st2, b.data, b.len - 1), SIGMA_E_FORMAT);
    ck_assert_uint_eq(d->bytes_used(st2), 0);
    ck_assert_int_eq(d->load(st2, b.data, b.len), SIGMA_OK);
    ck_assert_uint_eq(d->bytes_used(st2), d->bytes_used(st));
    float out3[3 * 4 * 4];
    a.out = out3;
    ck_assert_int_eq(d->attend(st2, &a), SIGMA_OK);
    ck_assert_mem_eq(out, out3, sizeof out);
    free(b.data);
    d->destroy(st2);
    d->destroy(st);
}
END_TEST

/* f16 storage agrees with f32 to half precision */
START_TEST(test_f16_storage) {
    sigma_kv_strategy dk;
    ck_assert_int_eq(sg_kv_find("dense", &dk), 1);
    const sigma_kv_strategy *d = &dk;
    void *s32 = NULL, *s16 = NULL;
    char err[128];
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f32", &s32, err, sizeof err), SIGMA_OK);
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f16", &s16, err, sizeof err), SIGMA_OK);
    float k[20 * 8], v[20 * 8], q[4 * 8], o32[4 * 4], o16[4 * 4];
    fill(k, 160, 0.2f);
    fill(v, 160, -0.4f);
    fill(q, 32, 0.5f);
    ck_assert_int_eq(d->append(s32, 0, 0, 20, k, v), SIGMA_OK);
    ck_assert_int_eq(d->append(s16, 0, 0, 20, k, v), SIGMA_OK);
    ck_assert_uint_eq(d->bytes_used(s16) * 2, d->bytes_used(s32));
    sigma_kv_attend_args a = {sizeof a, 0, 19, 1, q, o32, 0.35f, 0, 0.0f};
    ck_assert_int_eq(d->attend(s32, &a), SIGMA_OK);
    a.out = o16;
    ck_assert_int_eq(d->attend(s16, &a), SIGMA_OK);
    for (int i = 0; i < 16; i++) ck_assert(fabs(o32[i] - o16[i]) < 2e-3);
    d->destroy(s32);
    d->destroy(s16);
}
END_TEST

/* attention of `nq` queries ending at position `last` of layer 1 */
static void attend_at(const sigma_kv_strategy *d, void *st, uint32_t last, uint32_t nq, float *out) {
    float q[3 * 4 * 8];
    fill(q, sizeof q / 4, 0.45f);
    sigma_kv_attend_args a = {sizeof a, 1, last + 1 - nq, nq, q, out, 0.35f, 0, 0.0f};
    ck_assert_int_eq(d->attend(st, &a), SIGMA_OK);
}

static void append_range(const sigma_kv_strategy *d, void *st, uint32_t from, uint32_t to,
                         float base) {
    float k[16 * 8], v[16 * 8];
    for (uint32_t p = from; p < to; p += 16) {
        uint32_t n = to - p < 16 ? to - p : 16;
        for (uint32_t l = 0; l < 2; l++) {
            fill(k, n * 8, base + (float)p * 0.01f + (float)l);
            fill(v, n * 8, -base + (float)p * 0.02f - (float)l);
            ck_assert_int_eq(d->append(st, l, p, n, k, v), SIGMA_OK);
        }
    }
}

static void assert_saves(const sigma_kv_strategy *d, void *st, const blob *want) {
    blob got = {NULL, 0};
    ck_assert_int_eq(d->save(st, blob_write, &got), SIGMA_OK);
    ck_assert_uint_eq(got.len, want->len);
    ck_assert_mem_eq(got.data, want->data, want->len);
    free(got.data);
}

/* The default type is f16. A state created without a type option adopts
 * the type of the blob it loads (an f32 blob, as the older default wrote:
 * then it attends, grows and saves exactly as the f32 state), all or
 * nothing; with an explicit type, a blob of another type is
 * SIGMA_E_MISMATCH and changes nothing. */
START_TEST(test_default_type_load) {
    sigma_kv_strategy dk;
    ck_assert_int_eq(sg_kv_find("dense", &dk), 1);
    const sigma_kv_strategy *d = &dk;
    const size_t kr = 1 * 8, vr = 2 * 4;
    void *s32 = NULL, *def = NULL, *s16 = NULL;
    char err[128];
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f32", &s32, err, sizeof err), SIGMA_OK);
    ck_assert_int_eq(d->create(NULL, &LAY, NULL, &def, err, sizeof err), SIGMA_OK);
    ck_assert_int_eq(d->create(NULL, &LAY, "type=f16", &s16, err, sizeof err), SIGMA_OK);
    append_range(d, s32, 0, 90, 0.3f);
    append_range(d, def, 0, 10, -0.6f);
    append_range(d, s16, 0, 10, -0.6f);
    ck_assert_uint_eq(d->bytes_used(def), 2 * 10 * (kr + vr) * 2); /* f16 */
    blob b32 = {NULL, 0}, b16 = {NULL, 0};
    ck_assert_int_eq(d->save(s32, blob_write, &b32), SIGMA_OK);
    ck_assert_int_eq(d->save(def, blob_write, &b16), SIGMA_OK);
    ck_assert_uint_eq(sg_get_le32(b32.data + 4), SG_KV_F32);
    ck_assert_uint_eq(sg_get_le32(b16.data + 4), SG_KV_F16);
    float o16[3 * 16], o[3 * 16], o32[3 * 16];
    attend_at(d, def, 9, 3, o16);
    /* a damaged f32 blob (truncated, an extra byte, an unknown type) changes
     * nothing: still the f16 rows */
    for (size_t len = 0; len < b32.len; len += (len < 64 ? 1 : 97))
        ck_assert_int_ne(d->load(def, b32.data, len), SIGMA_OK);
    unsigned char *x = malloc(b32.len + 1);
    memcpy(x, b32.data, b32.len);
    x[b32.len] = 0;
    ck_assert_int_eq(d->load(def, x, b32.len + 1), SIGMA_E_FORMAT);
    sg_put_le32(x + 4, 3);
    ck_assert_int_eq(d->load(def, x, b32.len), SIGMA_E_MISMATCH);
    free(x);
    ck_assert_uint_eq(d->bytes_used(def), 2 * 10 * (kr + vr) * 2);
    assert_saves(d, def, &b16);
    attend_at(d, def, 9, 3, o);
    ck_assert_mem_eq(o, o16, sizeof o);
    /* an explicit f16 state refuses the f32 blob and stays usable */
    ck_assert_int_eq(d->load(s16, b32.data, b32.len), SIGMA_E_MISMATCH);
    assert_saves(d, s16, &b16);
    attend_at(d, s16, 9, 3, o);
    ck_assert_mem_eq(o, o16, sizeof o);
    append_range(d, s16, 10, 20, 0.1f);
    /* the default state adopts f32: the f32 state's bytes and attention,
     * also after both grow past the loaded capacity */
    ck_assert_int_eq(d->load(def, b32.data, b32.len), SIGMA_OK);
    ck_assert_uint_eq(d->bytes_used(def), d->bytes_used(s32));
    ck_assert_uint_eq(d->bytes_used(def), 2 * 90 * (kr + vr) * 4);
    assert_saves(d, def, &b32);
    attend_at(d, s32, 89, 3, o32);
    attend_at(d, def, 89, 3, o);
    ck_assert_mem_eq(o, o32, sizeof o);
    append_range(d, s32, 90, 200, 0.8f);
    append_range(d, def, 90, 200, 0.8f);
    attend_at(d, s32, 199, 3, o32);
    attend_at(d, def, 199, 3, o);
    ck_assert_mem_eq(o, o32, sizeof o);
    blob full = {NULL, 0};
    ck_assert_int_eq(d->save(s32, blob_write, &full), SIGMA_OK);
    assert_saves(d, def, &full);
    free(full.data);
    /* ... and adopts f16 again from an f16 blob, which the explicit f32
     * state refuses */
    ck_assert_int_eq(d->load(s32, b16.data, b16.len), SIGMA_E_MISMATCH);
    ck_assert_int_eq(d->load(def, b16.data, b16.len), SIGMA_OK);
    ck_assert_uint_eq(d->bytes_used(def), 2 * 10 * (kr + vr) * 2);
    assert_saves(d, def, &b16);
    attend_at(d, def, 9, 3, o);
    ck_assert_mem_eq(o, o16, sizeof o);
    free(b32.data);
    free(b16.data);
    d->destroy(s32);
    d->destroy(def);
    d->destroy(s16);
}
END_TEST

/* Head-major storage against the position-major rows it was given, for
 * every cache type: attention bitwise equal to sg_attn_group over the
 * position-major rows (what dense computed before its storage became
 * head-major), save writing exactly the position-major blob
 * (docs/session-format.md), growth past several capacities, rewind and
 * overwrite, load -> identical attention and save bytes, and appends after
 * a load (growth from the loaded capacity). */
#define HM_L 2u
#define HM_NQ 8u
#define HM_NK 2u
#define HM_NV 4u
#define HM_DQK 16u
#define HM_DV 8u
#define HM_CTX 300u
#define HM_KROW (HM_NK * HM_DQK)
#define HM_VROW (HM_NV * HM_DV)

typedef struct hm_ref {
    uint32_t type;
    size_t es;
    uint32_t n_pos;
    uint8_t k[HM_L][HM_CTX * HM_KROW * 4], v[HM_L][HM_CTX * HM_VROW * 4]; /* stored type */
} hm_ref;

static void hm_store(const hm_ref *r, uint8_t *dst, const float *src, size_t n) {
    if (r->type == SG_KV_F16) sigma_kernel_f32_to_f16((uint16_t *)(void *)dst, src, n);
    else if (r->type == SG_KV_BF16) sigma_kernel_f32_to_bf16((uint16_t *)(void *)dst, src, n);
    else memcpy(dst, src, n * sizeof(float));
}

static void hm_append(const sigma_kv_strategy *d, void *st, hm_ref *r, uint32_t pos0, uint32_t n,
                      float base) {
    float k[16 * HM_KROW], v[16 * HM_VROW];
    ck_assert_uint_le(n, 16);
    for (uint32_t l = 0; l < HM_L; l++) {
        fill(k, n * HM_KROW, base + (float)pos0 * 0.01f + (float)l);
        fill(v, n * HM_VROW, -base + (float)pos0 * 0.02f - (float)l);
        ck_assert_int_eq(d->append(st, l, pos0, n, k, v), SIGMA_OK);
        hm_store(r, r->k[l] + (size_t)pos0 * HM_KROW * r->es, k, n * HM_KROW);
        hm_store(r, r->v[l] + (size_t)pos0 * HM_VROW * r->es, v, n * HM_VROW);
    }
    r->n_pos = pos0 + n;
}

/* the expected save blob */
static blob hm_blob(const hm_ref *r) {
    blob b = {NULL, 0};
    uint8_t h[20];
    memcpy(h, "DKV1", 4);
    uint32_t vals[4] = {r->type, HM_L, HM_KROW, HM_VROW};
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) h[4 + 4 * i + j] = (uint8_t)(vals[i] >> (8 * j));
    blob_write(&b, h, 20);
    for (uint32_t l = 0; l < HM_L; l++) {
        uint8_t n[4] = {(uint8_t)r->n_pos, (uint8_t)(r->n_pos >> 8), 0, 0};
        blob_write(&b, n, 4);
        blob_write(&b, r->k[l], (size_t)r->n_pos * HM_KROW * r->es);
        blob_write(&b, r->v[l], (size_t)r->n_pos * HM_VROW * r->es);
    }
    return b;
}

/* attend the last nq positions of every layer and compare with the
 * reference computation over the position-major rows */
static void hm_check_attend(const sigma_kv_strategy *d, void *st, const hm_ref *r, uint32_t nq) {
    static float q[4 * HM_NQ * HM_DQK], out[4 * HM_NQ * HM_DV], ref[4 * HM_NQ * HM_DV];
    fill(q, sizeof q / sizeof *q, 0.3f + (float)r->n_pos * 0.001f);
    sg_kernels kern;
    sg_kernels_init(&kern, 0); /* dense with user = NULL: portable kernels */
    const uint32_t group = HM_NQ / HM_NK, per_v = HM_NQ / HM_NV;
    for (uint32_t l = 0; l < HM_L; l++) {
        sigma_kv_attend_args a = {sizeof a, l, r->n_pos - nq, nq, q, out, 0.25f, 0, 0.0f};
        ck_assert_int_eq(d->attend(st, &a), SIGMA_OK);
        for (uint32_t qi = 0; qi < nq; qi++)
            for (uint32_t kh = 0; kh < HM_NK; kh++) {
                const void *vb[HM_NQ];
                for (uint32_t i = 0; i < group; i++)
                    vb[i] = r->v[l] + (size_t)((kh * group + i) / per_v) * HM_DV * r->es;
                size_t hq = (size_t)qi * HM_NQ + kh * group;
                sg_attn_group(&kern, group, q + hq * HM_DQK, HM_DQK, r->k[l] + (size_t)kh * HM_DQK * r->es,
                              HM_KROW, vb, HM_VROW, (sg_kv_type)r->type, r->n_pos - nq + qi + 1, HM_DQK,
                              HM_DV, 0.25f, ref + hq * HM_DV, HM_DV);
            }
        ck_assert_msg(memcmp(out, ref, (size_t)nq * HM_NQ * HM_DV * sizeof(float)) == 0,
                      "type %u layer %u n_pos %u: attention differs from the position-major reference",
                      r->type, l, r->n_pos);
    }
}

static void hm_check_save(const sigma_kv_strategy *d, void *st, const hm_ref *r) {
    blob want = hm_blob(r), got = {NULL, 0};
    ck_assert_int_eq(d->save(st, blob_write, &got), SIGMA_OK);
    ck_assert_uint_eq(got.len, want.len);
    ck_assert_msg(memcmp(got.data, want.data, want.len) == 0, "type %u: save bytes differ", r->type);
    free(got.data);
    free(want.data);
}

START_TEST(test_head_major) {
    static const char *const types[] = {"type=f32", "type=f16", "type=bf16"};
    static hm_ref r;
    const sigma_kv_layout lay = {sizeof lay, HM_L, HM_NQ, HM_NK, HM_NV, HM_DQK, HM_DV, HM_CTX, 16};
    sigma_kv_strategy dk;
    ck_assert_int_eq(sg_kv_find("dense", &dk), 1);
    const sigma_kv_strategy *d = &dk;
    uint32_t t = (uint32_t)_i;
    memset(&r, 0, sizeof r);
    r.type = t;
    r.es = t == SG_KV_F32 ? 4 : 2;
    void *st = NULL;
    char err[128];
    ck_assert_int_eq(d->create(NULL, &lay, types[t], &st, err, sizeof err), SIGMA_OK);
    /* uneven appends through capacities 64, 128, 256 */
    uint32_t pos = 0;
    while (pos < 200) {
        uint32_t n = pos % 11 + 1;
        if (pos + n > 200) n = 200 - pos;
        hm_append(d, st, &r, pos, n, 0.5f);
        pos += n;
        if (pos == 1 || pos == 64 || pos == 65 || pos == 129 || pos == 200) hm_check_attend(d, st, &r, 1);
    }
    hm_check_attend(d, st, &r, 4);
    hm_check_save(d, st, &r);
    ck_assert_uint_eq(d->bytes_used(st), (size_t)HM_L * 200 * (HM_KROW + HM_VROW) * r.es);
    /* rewind, overwrite with other rows, rewind, re-append the first ones */
    ck_assert_int_eq(d->truncate(st, 150), SIGMA_OK);
    hm_ref *junk = malloc(sizeof *junk);
    ck_assert_ptr_nonnull(junk);
    memcpy(junk, &r, sizeof r);
    for (uint32_t p = 150; p < 170; p += 10) hm_append(d, st, junk, p, 10, 9.0f);
    hm_check_attend(d, st, junk, 2);
    free(junk);
    ck_assert_int_eq(d->truncate(st, 150), SIGMA_OK);
    r.n_pos = 150;
    hm_check_attend(d, st, &r, 3);
    hm_check_save(d, st, &r);
    for (uint32_t p = 150; p < 200; p += 10) hm_append(d, st, &r, p, 10, 0.5f);
    hm_check_attend(d, st, &r, 4);
    hm_check_save(d, st, &r);
    /* load into a fresh state: same attention, same bytes; then both go on
     * (the loaded state grows from its loaded capacity) */
    blob b = {NULL, 0};
    ck_assert_int_eq(d->save(st, blob_write, &b), SIGMA_OK);
    void *st2 = NULL;
    ck_assert_int_eq(d->create(NULL, &lay, types[t], &st2, err, sizeof err), SIGMA_OK);
    ck_assert_int_eq(d->load(st2, b.data, b.len), SIGMA_OK);
    free(b.data);
    hm_check_attend(d, st2, &r, 4);
    hm_check_save(d, st2, &r);
    static hm_ref r2;
    memcpy(&r2, &r, sizeof r);
    for (uint32_t p = 200; p < HM_CTX; p += 16) {
        uint32_t n = HM_CTX - p < 16 ? HM_CTX - p : 16;
        hm_append(d, st, &r, p, n, 2.0f);
        hm_append(d, st2, &r2, p, n, 2.0f);
    }
    hm_check_attend(d, st, &r, 4);
    hm_check_attend(d, st2, &r2, 4);
    hm_check_save(d, st2, &r2);
    hm_check_save(d, st, &r);
    d->destroy(st2);
    d->destroy(st);
}
END_TEST

/* A host strategy of table version 1 predates sliding windows and
 * soft-capping: a session on a model that has them (Gemma 3) refuses it
 * rather than let it compute wrongly; version 2 is accepted, and a model
 * without windows takes version 1. */
static sigma_model *open_fixture(const char *name) {
    const char *root = getenv("SIGMA_SOURCE_ROOT");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", root ? root : ".", name);
    sigma_model *m = NULL;
    ck_assert_int_eq(sigma_model_open(path, NULL, &m), SIGMA_OK);
    return m;
}

START_TEST(test_host_version_windows) {
    sigma_kv_strategy k;
    ck_assert(sg_kv_find("dense", &k));
    k.user = NULL; /* as a host would: no library environment */
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.kv_custom = &k;
    sp.n_ctx = 64;
    sigma_model *g = open_fixture("gemma3_f32.gguf"), *l = open_fixture("llama_gqa_f32.gguf");
    sigma_session *s = NULL;
    k.version = 1;
    ck_assert_int_eq(sigma_session_open(g, &sp, &s), SIGMA_E_UNSUPPORTED);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(sigma_session_open(l, &sp, &s), SIGMA_OK);
    sigma_session_close(s);
    k.version = 2;
    ck_assert_int_eq(sigma_session_open(g, &sp, &s), SIGMA_OK);
    const sigma_token t[3] = {1, 2, 3};
    ck_assert_int_eq(sigma_session_eval(s, t, 3), SIGMA_OK);
    sigma_session_close(s);
    sigma_model_close(g);
    sigma_model_close(l);
}
END_TEST

int main(void) {
    Suite *s = suite_create("kv");
    TCase *tc = tcase_create("kv");
    tcase_add_test(tc, test_registry);
    tcase_add_test(tc, test_host_version_windows);
    tcase_add_test(tc, test_options);
    tcase_add_test(tc, test_append_attend_truncate);
    tcase_add_test(tc, test_f16_storage);
    tcase_add_test(tc, test_default_type_load);
    tcase_add_loop_test(tc, test_head_major, 0, 3);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
