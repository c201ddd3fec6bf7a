/* Fuzz the tensor data (not the header): a small llama or sigma model of any
 * weight type (tests/common/hostile_model.c) gets its data section patched
 * with the fuzzer's bytes, then is opened, evaluated on a few tokens and
 * sampled from. Every outcome must be a status (SIGMA_OK with finite
 * logits, or SIGMA_E_NUMERIC), never a sanitizer report, crash or hang.
 *
 * Input layout:
 *   byte 0      bit 0: kind (llama / sigma), bits 1..: weight type index
 *   byte 1      number of layers - 1 (mod 2) and which tokens to evaluate
 *   then        records of 4 bytes: u16 (little-endian) block index into
 *               the data section in units of 16 bytes, u16 two bytes to
 *               write there (so scales, quants and f16/f32 values are all
 *               reachable with small inputs); a trailing 1..3 bytes are
 *               written at the start of the data section. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostile_model.h"
#include "sigma/sigma.h"

/* The clean images, built once per process (the harness's own cache; the
 * library itself keeps no state). */
static struct {
    uint8_t *mem;
    size_t size, data_off;
    int built, ok;
} cache[2][2][32];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    int kind = data[0] & 1;
    size_t ti = (size_t)(data[0] >> 1) % hm_n_types;
    int layers = 1 + (data[1] & 1);
    if (ti >= 32) return 0;
    if (!cache[kind][layers - 1][ti].built) {
        cache[kind][layers - 1][ti].built = 1;
        cache[kind][layers - 1][ti].ok =
            hm_build_data(kind, hm_types[ti], layers, &cache[kind][layers - 1][ti].mem,
                          &cache[kind][layers - 1][ti].size,
                          &cache[kind][layers - 1][ti].data_off) == 0;
    }
    if (!cache[kind][layers - 1][ti].ok) return 0;
    size_t isz = cache[kind][layers - 1][ti].size, doff = cache[kind][layers - 1][ti].data_off;
    uint8_t *img = malloc(isz);
    if (!img) return 0;
    memcpy(img, cache[kind][layers - 1][ti].mem, isz);
    size_t dlen = isz - doff;
    size_t p = 2;
    for (; p + 4 <= size; p += 4) {
        size_t at = ((size_t)data[p] | (size_t)data[p + 1] << 8) * 16 % dlen;
        img[doff + at] = data[p + 2];
        if (at + 1 < dlen) img[doff + at + 1] = data[p + 3];
    }
    for (size_t j = 0; p + j < size && j < dlen; j++) img[doff + j] = data[p + j];

    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    sigma_model *m = NULL;
    if (sigma_model_open_memory(img, isz, &mp, &m) == SIGMA_OK) {
        sigma_session_params sp;
        sigma_session_params_init(&sp, sizeof sp);
        sp.n_ctx = 32;
        sp.n_threads = 1;
        sigma_session *s = NULL;
        if (sigma_session_open(m, &sp, &s) == SIGMA_OK) {
            sigma_token toks[4] = {1, (sigma_token)(data[1] >> 2) % HM_VOCAB, 0, 7};
            int st = sigma_session_eval(s, toks, 4);
            const float *lg = NULL;
            if (st == SIGMA_OK && sigma_session_logits(s, -1, &lg) == SIGMA_OK) {
                for (int i = 0; i < HM_VOCAB; i++)
                    if (!isfinite(lg[i])) abort(); /* the policy promises finite logits */
                sigma_sampler_params pp;
                sigma_sampler_params_init(&pp, sizeof pp);
                sigma_sampler *smp = NULL;
                if (sigma_sampler_open(m, &pp, &smp) == SIGMA_OK) {
                    sigma_token t = -1;
                    if (sigma_sampler_sample(smp, lg, &t) == SIGMA_OK && (t < 0 || t >= HM_VOCAB))
                        abort();
                    sigma_sampler_close(smp);
                }
                sigma_token one = 3;
                sigma_session_eval(s, &one, 1);
            } else if (st != SIGMA_OK && st != SIGMA_E_NUMERIC) {
                abort(); /* a tiny valid model only fails numerically */
            }
            sigma_session_close(s);
        }
        sigma_model_close(m);
    }
    free(img);
    return 0;
}
