/* Fuzz session-file loading: a hostile file must give a status and leave
 * the session and its attached sampler unchanged; a file that loads must
 * leave a usable session.
 *
 * Speed: the model, one session (n_threads 1: no worker threads) and one
 * sampler are set up once per process and reused. Their state after setup
 * is kept as a stored (uncompressed) session image; after each input the
 * session is compared with it (a failed load) or reset to it by loading
 * it back (a successful one).
 *
 * Each input is tried twice: as it is (reaching the header checks and the
 * checksums), and, when it starts with the session magic, with the model
 * fingerprint, the stored size and both CRC-32s patched to match, so that
 * mutations reach the payload parser (tokens, logits, KV data, sampler
 * state) instead of stopping at a checksum. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "fuzz_common.h"

#define HDR 104

typedef struct fuzz_state {
    sigma_model *model;
    sigma_session *session;
    sigma_sampler *sampler;
    uint8_t *base;     /* the session as set up, saved stored */
    size_t base_len;
    uint8_t *scratch;  /* a save for comparison, base_len bytes */
    uint8_t *patched;  /* the input with fixed-up header, grown as needed */
    size_t patched_cap;
} fuzz_state;

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static fuzz_state *setup(void) {
    static fuzz_state st;
    static int tried;
    if (tried) return st.session ? &st : NULL;
    tried = 1;
    st.model = fuzz_open_model();
    if (!st.model) return NULL;
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = 64;
    sp.n_threads = 1;
    sp.save_compression = 0;
    if (sigma_session_open(st.model, &sp, &st.session) != SIGMA_OK) return NULL;
    sigma_sampler_params pp;
    sigma_sampler_params_init(&pp, sizeof pp);
    pp.penalty_last_n = 4;
    pp.repeat_penalty = 1.1f;
    if (sigma_sampler_open(st.model, &pp, &st.sampler) != SIGMA_OK) abort();
    sigma_token t[2] = {1, 2};
    if (sigma_session_eval(st.session, t, 2) != SIGMA_OK) abort();
    sigma_sampler_accept(st.sampler, 1);
    sigma_sampler_accept(st.sampler, 2);
    if (sigma_session_set_sampler(st.session, st.sampler) != SIGMA_OK) abort();
    size_t need = 0;
    sigma_session_save_memory(st.session, NULL, 0, &need);
    st.base = malloc(need);
    st.scratch = malloc(need);
    if (!st.base || !st.scratch) abort();
    if (sigma_session_save_memory(st.session, st.base, need, &st.base_len) != SIGMA_OK) abort();
    return &st;
}

/* The session (with its sampler) must be exactly as set up. */
static void check_unchanged(fuzz_state *st) {
    size_t len = 0;
    int rc = sigma_session_save_memory(st->session, st->scratch, st->base_len, &len);
    if (rc != SIGMA_OK || len != st->base_len || memcmp(st->scratch, st->base, len) != 0)
        abort(); /* a failed load changed the session or the sampler */
}

static void try_load(fuzz_state *st, const uint8_t *data, size_t size) {
    int rc = sigma_session_load_memory(st->session, data, size);
    if (rc != SIGMA_OK) {
        check_unchanged(st);
        return;
    }
    /* loaded: the session must be usable, then back to the base state */
    sigma_token t = 3, out;
    const float *lg;
    if (sigma_session_logits(st->session, -1, &lg) == SIGMA_OK)
        sigma_sampler_sample(st->sampler, lg, &out);
    sigma_session_eval(st->session, &t, 1);
    if (sigma_session_load_memory(st->session, st->base, st->base_len) != SIGMA_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_state *st = setup();
    if (!st) return 0;
    try_load(st, data, size);
    if (size < HDR || memcmp(data, "SIGSESS", 8) != 0) return 0;
    if (size > st->patched_cap) {
        free(st->patched);
        st->patched = malloc(size);
        if (!st->patched) abort();
        st->patched_cap = size;
    }
    uint8_t *p = st->patched;
    memcpy(p, data, size);
    memcpy(p + 16, st->base + 16, 16); /* this model's fingerprint */
    put_u64(p + 88, (uint64_t)(size - HDR));
    if (!(p[12] & 1)) memcpy(p + 80, p + 88, 8); /* stored: raw size = stored size */
    uLong c = crc32(0L, Z_NULL, 0);
    put_u32(p + 96, (uint32_t)crc32(c, p + HDR, (uInt)(size - HDR)));
    put_u32(p + 100, (uint32_t)crc32(c, p, 100));
    try_load(st, p, size);
    return 0;
}
