/* sigma-perplexity: perplexity of a model on a text file, by the method of
 * llama.cpp's perplexity tool, so numbers are comparable:
 *
 *   - tokenize the whole file (with the model's special-token rules);
 *   - cut it into consecutive chunks of n_ctx tokens (at most --chunks);
 *   - evaluate each chunk from an empty context, its first token replaced by
 *     BOS when the model asks for BOS (tokenizer.ggml.add_bos_token);
 *   - score only the second half of each chunk: the logits at position j
 *     (n_ctx/2 <= j < n_ctx-1) predict token j+1;
 *   - PPL = exp(mean NLL); the +/- is the standard error of the mean NLL
 *     propagated through exp (PPL * stddev(NLL) / sqrt(count-1)).
 *
 * Progress goes to stderr; the last line on stdout is
 *   Final estimate: PPL = <value> +/- <stderr>
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigma/sigma.h"

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -m MODEL -f TEXTFILE [-c N_CTX] [-t THREADS] [--chunks K] [--kv STRATEGY]\n"
            "  -c N_CTX      tokens per chunk (default 512)\n"
            "  -t THREADS    worker threads (default: online CPUs)\n"
            "  --chunks K    evaluate at most K chunks (default: all)\n"
            "  --kv NAME     KV-cache strategy (default dense); NAME:OPTIONS passes options\n",
            argv0);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_u32(const char *s, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > UINT32_MAX || s[0] == '-') return -1;
    *out = (uint32_t)v;
    return 0;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* -log softmax(logits)[tok], in double */
static double nll_of(const float *logits, uint32_t n_vocab, sigma_token tok) {
    float mx = logits[0];
    for (uint32_t i = 1; i < n_vocab; i++)
        if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return -((double)logits[tok] - mx - log(sum));
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *kv = NULL;
    uint32_t n_ctx = 512, n_threads = 0, max_chunks = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(argv[0]);
            return 0;
        } else if (!v) {
            ok = 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            text_path = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            ok = parse_u32(v, &n_ctx) == 0 && n_ctx >= 4;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            ok = parse_u32(v, &n_threads) == 0;
        } else if (!strcmp(a, "--chunks")) {
            ok = parse_u32(v, &max_chunks) == 0;
        } else if (!strcmp(a, "--kv")) {
            kv = v;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "error: bad or incomplete argument '%s'\n", a);
            usage(argv[0]);
            return 2;
        }
    }
    if (!model_path || !text_path) {
        usage(argv[0]);
        return 2;
    }

    size_t text_len = 0;
    char *text = read_file(text_path, &text_len);
    if (!text) {
        fprintf(stderr, "error: cannot read '%s': %s\n", text_path, strerror(errno));
        return 1;
    }

    char err[512] = "";
    sigma_model_params mp;
    sigma_model_params_init(&mp, sizeof mp);
    mp.error_buf = err;
    mp.error_buf_size = sizeof err;
    sigma_model *model = NULL;
    int st = sigma_model_open(model_path, &mp, &model);
    if (st != SIGMA_OK) {
        fprintf(stderr, "error: cannot open model '%s': %s\n", model_path, err[0] ? err : sigma_strerror(st));
        free(text);
        return 1;
    }
    sigma_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    sigma_model_get_info(model, &info);

    /* tokenize the whole file */
    size_t n_tok = 0;
    sigma_token *tokens = NULL;
    st = sigma_tokenize(model, text, text_len, NULL, 0, &n_tok, SIGMA_TOKENIZE_ADD_SPECIAL);
    if (st == SIGMA_E_BUFFER_TOO_SMALL || (st == SIGMA_OK && n_tok > 0)) {
        tokens = malloc((n_tok ? n_tok : 1) * sizeof *tokens);
        st = tokens ? sigma_tokenize(model, text, text_len, tokens, n_tok, &n_tok,
                                     SIGMA_TOKENIZE_ADD_SPECIAL)
                    : SIGMA_E_NOMEM;
    }
    free(text);
    if (st != SIGMA_OK) {
        sigma_model_last_error(model, err, sizeof err);
        fprintf(stderr, "error: tokenization failed: %s%s%s\n", sigma_strerror(st), err[0] ? ": " : "",
                err);
        free(tokens);
        sigma_model_close(model);
        return 1;
    }

    /* BOS replacement, as llama.cpp does when the model adds BOS */
    int add_bos = 0;
    sigma_token bos = SIGMA_TOKEN_NONE;
    char val[16];
    if (sigma_model_meta_get(model, "tokenizer.ggml.add_bos_token", val, sizeof val, NULL) == SIGMA_OK &&
        !strcmp(val, "true") && sigma_model_special_token(model, SIGMA_SPECIAL_BOS, &bos) == SIGMA_OK)
        add_bos = 1;

    size_t n_chunks = n_tok / n_ctx;
    if (max_chunks && n_chunks > max_chunks) n_chunks = max_chunks;
    if (n_chunks == 0) {
        fprintf(stderr, "error: the file has %zu tokens; need at least n_ctx = %u (try a smaller -c)\n",
                n_tok, n_ctx);
        free(tokens);
        sigma_model_close(model);
        return 1;
    }

    char kv_name[128] = "";
    const char *kv_opts = NULL;
    if (kv) {
        snprintf(kv_name, sizeof kv_name, "%s", kv);
        char *colon = strchr(kv_name, ':');
        if (colon) {
            *colon = '\0';
            kv_opts = kv + (colon - kv_name) + 1;
        }
    }
    sigma_session_params sp;
    sigma_session_params_init(&sp, sizeof sp);
    sp.n_ctx = n_ctx;
    sp.n_batch = n_ctx < 512 ? n_ctx : 512;
    sp.n_threads = n_threads;
    sp.logits_all = 1;
    sp.kv_strategy = kv ? kv_name : NULL;
    sp.kv_options = kv_opts;
    sigma_session *sess = NULL;
    st = sigma_session_open(model, &sp, &sess);
    if (st != SIGMA_OK) {
        sigma_model_last_error(model, err, sizeof err);
        fprintf(stderr, "error: cannot open a session: %s: %s\n", sigma_strerror(st), err);
        free(tokens);
        sigma_model_close(model);
        return 1;
    }
    fprintf(stderr, "%s: %zu tokens, %zu chunks of %u, %u threads, kv %s, add_bos %d\n", text_path,
            n_tok, n_chunks, n_ctx, n_threads, kv ? kv : "dense", add_bos);

    sigma_token *chunk = malloc(n_ctx * sizeof *chunk);
    if (!chunk) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    const uint32_t first = n_ctx / 2;
    double nll = 0.0, nll2 = 0.0;
    size_t count = 0;
    double t0 = now_s();
    for (size_t c = 0; c < n_chunks; c++) {
        memcpy(chunk, tokens + c * n_ctx, n_ctx * sizeof *chunk);
        if (add_bos) chunk[0] = bos;
        if ((st = sigma_session_rewind(sess, 0)) != SIGMA_OK ||
            (st = sigma_session_eval(sess, chunk, n_ctx)) != SIGMA_OK) {
            fprintf(stderr, "\nerror: evaluation failed: %s: %s\n", sigma_strerror(st),
                    sigma_session_last_error(sess));
            return 1;
        }
        for (uint32_t j = first; j + 1 < n_ctx; j++) {
            const float *lg;
            if (sigma_session_logits(sess, (int32_t)j, &lg) != SIGMA_OK) {
                fprintf(stderr, "\nerror: no logits for position %u\n", j);
                return 1;
            }
            double v = nll_of(lg, info.n_vocab, tokens[c * n_ctx + j + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        double el = now_s() - t0;
        fprintf(stderr, "[%zu/%zu] PPL %.4f  (%.1f s, %.1f tokens/s)\n", c + 1, n_chunks,
                exp(nll / (double)count), el, (double)(c + 1) * n_ctx / el);
    }

    double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    double se = var > 0 && count > 1 ? sqrt(var / (double)(count - 1)) : 0.0;
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, se * ppl);

    free(chunk);
    free(tokens);
    sigma_session_close(sess);
    sigma_model_close(model);
    return 0;
}
