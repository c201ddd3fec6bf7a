/* sigma-kvbench: KV-cache strategies side by side on one model and text.
 *
 * For each strategy (NAME or NAME:OPTIONS; default: a fixed list next to
 * dense) and each context length:
 *   - perplexity by the method of sigma-perplexity (llama.cpp's): chunks of
 *     n_ctx tokens from an empty cache, first token replaced by BOS when the
 *     model adds BOS, the second half of each chunk scored. How a chunk is
 *     evaluated (--ppl-mode):
 *       chunk  (default) the whole chunk in one sigma_session_eval, as
 *              sigma-perplexity does: every query is a prompt query;
 *       decode the first half in one eval (a prompt), then the scored
 *              second half one token per eval, as generation sees the
 *              cache (strategies that approximate only at decode time,
 *              like topv with prefill=exact, are measured here);
 *   - KV bytes per token: sigma_session_kv_bytes() / tokens after the last
 *     chunk plus the decode steps below;
 *   - decode tokens/s at the largest context: after the last chunk of that
 *     context, `--decode` more tokens of the text are evaluated one at a
 *     time (positions n_ctx .. n_ctx+decode-1), timed.
 * "vs dense" columns compare with dense f32: the `dense:type=f32` row if
 * there is one, else a plain `dense` row (the default type, f16).
 * Prints a Markdown table on stdout, progress on stderr. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigma/sigma.h"

#define MAX_KV 32
#define MAX_CTX 8

static const char *const DEFAULT_KV[] = {
    "dense:type=f32",
    "dense", /* the default type: f16 */
    "quant:kbits=8,vbits=8",
    "quant:kbits=8,vbits=4",
    "quant:kbits=4,vbits=4",
    "window:sinks=4,window=512",
    "h2o:budget=512,recent=256",
    "topv:k=100",
    "topv:k=100,select=head",
    "topv:k=200",
    "topv:k=100,tail=1",
    "topv:k=200,tail=1",
    "topv:k=100,prefill=topk",
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(const char *a0) {
    fprintf(stderr,
            "usage: %s -m MODEL -f TEXT [-c N_CTX]... [--chunks K] [--decode N] [-t THREADS]\n"
            "          [--ppl-mode chunk|decode] [--kv NAME[:OPTIONS]]...\n"
            "  -c N_CTX     context length (repeatable; default 1024 and 2048)\n"
            "  --chunks K   chunks per context for perplexity (default 4)\n"
            "  --decode N   decode steps timed after the largest context (default 32)\n"
            "  --ppl-mode M chunk: each chunk in one eval (default); decode: the first\n"
            "               half in one eval, the scored second half one token per eval\n"
            "               (topv approximates only single-token evals unless\n"
            "               prefill=topk, so in chunk mode plain topv is dense)\n"
            "  --kv SPEC    strategy to measure (repeatable; default: a built-in list)\n",
            a0);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return NULL;
    }
    long n = ftell(f);
    rewind(f);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) *len = (size_t)n;
    return buf;
}

static double nll_of(const float *lg, uint32_t n_vocab, sigma_token tok) {
    float mx = lg[0];
    for (uint32_t i = 1; i < n_vocab; i++)
        if (lg[i] > mx) mx = lg[i];
    double sum = 0;
    for (uint32_t i = 0; i < n_vocab; i++) sum += exp((double)lg[i] - mx);
    return -((double)lg[tok] - mx - log(sum));
}

typedef struct result {
    double ppl[MAX_CTX];
    double bytes_per_tok;
    double tok_s;
    int failed;
} result;

static int parse_u32(const char *s, uint32_t *out) {
    char *e;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (errno || e == s || *e || v > UINT32_MAX || s[0] == '-') return -1;
    *out = (uint32_t)v;
    return 0;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL;
    const char *kvs[MAX_KV];
    size_t n_kv = 0, n_ctxs = 0;
    uint32_t ctxs[MAX_CTX], chunks = 4, decode = 32, threads = 0;
    int decode_ppl = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = v != NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(argv[0]);
            return 0;
        } else if (ok && !strcmp(a, "-m")) {
            model_path = v;
        } else if (ok && !strcmp(a, "-f")) {
            text_path = v;
        } else if (ok && !strcmp(a, "-c") && n_ctxs < MAX_CTX) {
            ok = parse_u32(v, &ctxs[n_ctxs]) == 0 && ctxs[n_ctxs] >= 8;
            n_ctxs++;
        } else if (ok && !strcmp(a, "--chunks")) {
            ok = parse_u32(v, &chunks) == 0 && chunks > 0;
        } else if (ok && !strcmp(a, "--decode")) {
            ok = parse_u32(v, &decode) == 0;
        } else if (ok && !strcmp(a, "-t")) {
            ok = parse_u32(v, &threads) == 0;
        } else if (ok && !strcmp(a, "--ppl-mode")) {
            ok = !strcmp(v, "chunk") || !strcmp(v, "decode");
            decode_ppl = !strcmp(v, "decode");
        } else if (ok && !strcmp(a, "--kv") && n_kv < MAX_KV) {
            kvs[n_kv++] = v;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "error: bad argument '%s'\n", a);
            usage(argv[0]);
            return 2;
        }
    }
    if (!model_path || !text_path) {
        usage(argv[0]);
        return 2;
    }
    if (!n_ctxs) {
        ctxs[0] = 1024;
        ctxs[1] = 2048;
        n_ctxs = 2;
    }
    if (!n_kv)
        for (size_t i = 0; i < sizeof DEFAULT_KV / sizeof DEFAULT_KV[0]; i++) kvs[n_kv++] = DEFAULT_KV[i];
    uint32_t max_ctx = 0;
    for (size_t c = 0; c < n_ctxs; c++)
        if (ctxs[c] > max_ctx) max_ctx = ctxs[c];

    size_t text_len;
    char *text = read_file(text_path, &text_len);
    if (!text) {
        fprintf(stderr, "error: cannot read '%s'\n", text_path);
        return 1;
    }
    char err[512] = "";
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *model = NULL;
    if (sigma_model_open(model_path, &mp, &model) != SIGMA_OK) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sigma_model_get_info(model, &info);
    size_t n_tok = 0;
    sigma_tokenize(model, text, text_len, NULL, 0, &n_tok, SIGMA_TOKENIZE_ADD_SPECIAL);
    sigma_token *tok = malloc((n_tok + 1) * sizeof *tok);
    if (!tok ||
        sigma_tokenize(model, text, text_len, tok, n_tok, &n_tok, SIGMA_TOKENIZE_ADD_SPECIAL) != SIGMA_OK) {
        fprintf(stderr, "error: tokenization failed\n");
        return 1;
    }
    free(text);
    int add_bos = 0;
    sigma_token bos = SIGMA_TOKEN_NONE;
    char val[16];
    if (sigma_model_meta_get(model, "tokenizer.ggml.add_bos_token", val, sizeof val, NULL) == SIGMA_OK &&
        !strcmp(val, "true") && sigma_model_special_token(model, SIGMA_SPECIAL_BOS, &bos) == SIGMA_OK)
        add_bos = 1;
    fprintf(stderr,
            "%s: %zu tokens; %u chunks per context (ppl-mode %s); %u decode steps; dense f32 KV = %llu "
            "bytes/token\n",
            text_path, n_tok, chunks, decode_ppl ? "decode" : "chunk", decode,
            (unsigned long long)info.kv_bytes_per_token);

    result *res = calloc(n_kv, sizeof *res);
    sigma_token *chunk = malloc(((size_t)max_ctx + decode) * sizeof *chunk);
    if (!res || !chunk) return 1;
    for (size_t k = 0; k < n_kv; k++) {
        char name[128];
        snprintf(name, sizeof name, "%s", kvs[k]);
        char *colon = strchr(name, ':');
        const char *opts = NULL;
        if (colon) {
            *colon = '\0';
            opts = colon + 1;
        }
        for (size_t c = 0; c < n_ctxs && !res[k].failed; c++) {
            uint32_t C = ctxs[c];
            int timed = C == max_ctx;
            size_t n_chunks = n_tok / C;
            if (n_chunks > chunks) n_chunks = chunks;
            if (n_chunks == 0 || (timed && (n_chunks * C + decode > n_tok))) {
                fprintf(stderr, "error: text too short for context %u\n", C);
                return 1;
            }
            sigma_session_params sp;
            sigma_session_params_init(&sp, sizeof sp);
            sp.n_ctx = C + (timed ? decode : 0);
            sp.n_batch = C < 512 ? C : 512;
            sp.n_threads = threads;
            sp.logits_all = !decode_ppl;
            sp.kv_strategy = name;
            sp.kv_options = opts;
            sigma_session *s = NULL;
            if (sigma_session_open(model, &sp, &s) != SIGMA_OK) {
                sigma_model_last_error(model, err, sizeof err);
                fprintf(stderr, "error: %s: %s\n", kvs[k], err);
                res[k].failed = 1;
                break;
            }
            double nll = 0;
            size_t count = 0;
            double t0 = now_s();
            for (size_t ch = 0; ch < n_chunks; ch++) {
                memcpy(chunk, tok + ch * C, C * sizeof *chunk);
                if (add_bos) chunk[0] = bos;
                int st = sigma_session_rewind(s, 0);
                if (st == SIGMA_OK) st = sigma_session_eval(s, chunk, decode_ppl ? C / 2 : C);
                /* decode: token j alone, its logits score token j+1 (the
                 * last token too, so the session ends at position C) */
                for (uint32_t j = C / 2; decode_ppl && st == SIGMA_OK && j < C; j++) {
                    const float *lg;
                    st = sigma_session_eval(s, &chunk[j], 1);
                    if (st == SIGMA_OK && j + 1 < C) st = sigma_session_logits(s, -1, &lg);
                    if (st == SIGMA_OK && j + 1 < C) {
                        nll += nll_of(lg, info.n_vocab, tok[ch * C + j + 1]);
                        count++;
                    }
                }
                if (st != SIGMA_OK) {
                    fprintf(stderr, "error: %s: %s\n", kvs[k], sigma_session_last_error(s));
                    res[k].failed = 1;
                    break;
                }
                for (uint32_t j = C / 2; !decode_ppl && j + 1 < C; j++) {
                    const float *lg;
                    sigma_session_logits(s, (int32_t)j, &lg);
                    nll += nll_of(lg, info.n_vocab, tok[ch * C + j + 1]);
                    count++;
                }
                fprintf(stderr, "  %-28s ctx %u chunk %zu/%zu: PPL %.4f (%.0f s)\n", kvs[k], C, ch + 1,
                        n_chunks, exp(nll / (double)count), now_s() - t0);
            }
            if (res[k].failed) {
                sigma_session_close(s);
                break;
            }
            res[k].ppl[c] = exp(nll / (double)count);
            if (timed) {
                /* decode: the text's next tokens, one at a time */
                size_t base = (n_chunks - 1) * C + C;
                double t1 = now_s();
                for (uint32_t d = 0; d < decode; d++) {
                    if (sigma_session_eval(s, &tok[base + d], 1) != SIGMA_OK) {
                        fprintf(stderr, "error: %s decode: %s\n", kvs[k], sigma_session_last_error(s));
                        res[k].failed = 1;
                        break;
                    }
                }
                double dt = now_s() - t1;
                res[k].tok_s = decode && dt > 0 ? decode / dt : 0;
                size_t bytes = 0;
                uint32_t pos = 0;
                sigma_session_kv_bytes(s, &bytes);
                sigma_session_position(s, &pos);
                res[k].bytes_per_tok = pos ? (double)bytes / pos : 0;
            }
            sigma_session_close(s);
        }
    }

    /* the table */
    printf("| strategy |");
    for (size_t c = 0; c < n_ctxs; c++) printf(" %sPPL @%u | vs dense |", decode_ppl ? "decode " : "", ctxs[c]);
    printf(" KV bytes/token @%u | vs dense | decode tok/s @%u |\n", max_ctx, max_ctx);
    printf("|---|");
    for (size_t c = 0; c < n_ctxs; c++) printf("---:|---:|");
    printf("---:|---:|---:|\n");
    /* the reference row: dense f32, else plain dense */
    size_t dense = n_kv;
    for (size_t k = 0; k < n_kv; k++)
        if (!strcmp(kvs[k], "dense:type=f32") && !res[k].failed) dense = k;
    for (size_t k = 0; k < n_kv && dense == n_kv; k++)
        if (!strcmp(kvs[k], "dense") && !res[k].failed) dense = k;
    for (size_t k = 0; k < n_kv; k++) {
        printf("| `%s` |", kvs[k]);
        if (res[k].failed) {
            printf(" failed |\n");
            continue;
        }
        for (size_t c = 0; c < n_ctxs; c++) {
            if (dense < n_kv)
                printf(" %.4f | %+.2f%% |", res[k].ppl[c], 100.0 * (res[k].ppl[c] / res[dense].ppl[c] - 1));
            else
                printf(" %.4f | |", res[k].ppl[c]);
        }
        if (dense < n_kv)
            printf(" %.0f | %.1f%% | %.1f |\n", res[k].bytes_per_tok,
                   100.0 * res[k].bytes_per_tok / res[dense].bytes_per_tok, res[k].tok_s);
        else
            printf(" %.0f | | %.1f |\n", res[k].bytes_per_tok, res[k].tok_s);
    }
    free(chunk);
    free(res);
    free(tok);
    sigma_model_close(model);
    return 0;
}
