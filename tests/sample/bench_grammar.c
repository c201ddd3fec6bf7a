/* Decode speed with and without a grammar, same run: the session is driven
 * by a JSON-Schema-constrained sampler; at every step the same logits are
 * also given to an unconstrained sampler with the same settings, and the
 * time of each sampler and of the forward pass are summed separately.
 * Constrained t/s = N / (eval + constrained sampling), unconstrained t/s =
 * N / (eval + unconstrained sampling): the same tokens, the same machine
 * load. Public API only. Not a test (run by hand, docs/performance.md):
 *   bench-grammar MODEL [N_TOKENS] [THREADS] [SCHEMA_JSON] [TOP_K] [TOP_P] [MIN_P]
 * (an empty SCHEMA_JSON: the default schema; TOP_K 0 TOP_P 1 MIN_P 0 is the
 * OpenAI API's default sampling, which sigma-server uses) */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigma/sigma.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *default_schema =
    "{\"type\":\"object\",\"properties\":{\"people\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
    "\"integer\"},\"city\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\",\"items\":{"
    "\"type\":\"string\"}}},\"required\":[\"name\",\"age\",\"city\",\"tags\"]}}},"
    "\"required\":[\"people\"]}";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench-grammar MODEL [N_TOKENS] [THREADS] [SCHEMA_JSON] [TOP_K] [TOP_P] [MIN_P]\n");
        return 2;
    }
    int n_tok = argc > 2 ? atoi(argv[2]) : 128;
    uint32_t threads = argc > 3 ? (uint32_t)atoi(argv[3]) : 2;
    const char *schema = argc > 4 && argv[4][0] ? argv[4] : default_schema;
    sigma_model *m = NULL;
    if (sigma_model_open(argv[1], NULL, &m) != SIGMA_OK) return 1;
    size_t glen = 0;
    sigma_json_schema_to_grammar(m, schema, strlen(schema), NULL, 0, &glen);
    char *grammar = malloc(glen + 1);
    if (!grammar || sigma_json_schema_to_grammar(m, schema, strlen(schema), grammar, glen + 1,
                                                 &glen) != SIGMA_OK)
        return 1;
    sigma_sampler_params sp;
    sigma_sampler_params_init(&sp, sizeof sp);
    sp.temperature = 1.0f;
    if (argc > 5) sp.top_k = atoi(argv[5]);
    if (argc > 6) sp.top_p = (float)atof(argv[6]);
    if (argc > 7) sp.min_p = (float)atof(argv[7]);
    sigma_sampler *plain = NULL, *con = NULL;
    if (sigma_sampler_open(m, &sp, &plain) != SIGMA_OK) return 1;
    sp.grammar = grammar;
    double t0 = now_ms();
    if (sigma_sampler_open(m, &sp, &con) != SIGMA_OK) return 1;
    double open_ms = now_ms() - t0;
    sigma_session_params ssp;
    sigma_session_params_init(&ssp, sizeof ssp);
    ssp.n_ctx = 1024;
    ssp.n_threads = threads;
    sigma_session *s = NULL;
    if (sigma_session_open(m, &ssp, &s) != SIGMA_OK) return 1;
    const char *prompt = "Here is a list of people with their names, ages, cities and tags, as JSON:";
    sigma_token toks[256];
    size_t nt = 0;
    sigma_tokenize(m, prompt, strlen(prompt), toks, 256, &nt, SIGMA_TOKENIZE_ADD_SPECIAL);
    if (sigma_session_eval(s, toks, nt) != SIGMA_OK) return 1;
    double eval_ms = 0, con_ms = 0, plain_ms = 0;
    int n = 0;
    while (n < n_tok) {
        const float *logits;
        sigma_session_logits(s, -1, &logits);
        sigma_token t, u;
        t0 = now_ms();
        if (sigma_sampler_sample(plain, logits, &u) != SIGMA_OK) return 1;
        double t1 = now_ms();
        if (sigma_sampler_sample(con, logits, &t) != SIGMA_OK) return 1;
        double t2 = now_ms();
        plain_ms += t1 - t0;
        con_ms += t2 - t1;
        int eog = 0;
        sigma_token_is_eog(m, t, &eog);
        if (eog) { /* document complete: start another one */
            sigma_sampler_reset(con, (uint64_t)n);
            continue;
        }
        t0 = now_ms();
        if (sigma_session_eval(s, &t, 1) != SIGMA_OK) break;
        eval_ms += now_ms() - t0;
        n++;
    }
    printf("tokens %d  eval %.1f ms  sampling: plain %.2f ms (%.3f ms/token), grammar %.2f ms "
           "(%.3f ms/token); grammar compile+token table %.1f ms\n",
           n, eval_ms, plain_ms, plain_ms / n, con_ms, con_ms / n, open_ms);
    double tp = n / ((eval_ms + plain_ms) / 1e3), tc = n / ((eval_ms + con_ms) / 1e3);
    printf("unconstrained %.2f t/s  constrained %.2f t/s  ratio %.3f\n", tp, tc, tc / tp);
    sigma_session_close(s);
    sigma_sampler_close(plain);
    sigma_sampler_close(con);
    sigma_model_close(m);
    free(grammar);
    return 0;
}
