/* sigma-bench: prompt-processing and decode speed, modelled on llama.cpp's
 * llama-bench so the numbers line up.
 *
 *   sigma-bench -m MODEL[,MODEL..] [-t THREADS,..] [-p N_PROMPT,..] [-n N_GEN,..]
 *               [-d DEPTH,..] [-r REPS] [-b N_BATCH] [--kv SPEC[;SPEC..]]
 *               [--kernels SPEC] [-o md|csv] [--ttft 1] [-B SESSIONS,..]
 *
 * Each test evaluates random token ids (no tokenizer, no sampling): ppN
 * evaluates N tokens in one call (split into batches of n_batch by the
 * library), tgN evaluates N tokens one at a time. With -d D the session is
 * first filled with D tokens (not timed) and each repetition rewinds to D;
 * the depths of one KV spec share a session whose fill is extended from one
 * depth to the next (so -d 0,4096,16384 costs one 16384-token fill).
 * One untimed warm-up run precedes each test. The table reports tokens per
 * second as mean ± sample standard deviation over the repetitions, and the
 * median. KV SPEC is "name" or "name:options" (e.g. "topv:k=100"); several
 * specs are separated by ';'. --kernels sets SIGMA_KERNELS (e.g. "exact",
 * "generic", "avx2") for the sessions it opens. --ttft 1 instead times
 * open-to-first-token (model open, session, 1-token eval, logits) REPS times
 * with a warm page cache, in milliseconds.
 *
 * -B 1,2,4,8,16 measures B concurrent sessions (sharing one thread pool)
 * evaluated together by sigma_sessions_eval: ppN gives every session N
 * tokens in one call, tgN makes N calls of one token per session; t/s is
 * the aggregate (B*N tokens / time) and the test reads "tgN xB". With -d D
 * the first session is filled with D tokens and the others are forks of it
 * (sigma_session_fork). Compare with llama.cpp's llama-batched-bench
 * (-npp D -ntg N -npl B: its S_TG is tgN @ dD xB here). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sigma/sigma.h"

#define MAX_LIST 32

typedef struct list {
    char *item[MAX_LIST];
    int n;
} list;

static void split(list *l, const char *s, char sep) {
    char *dup = strdup(s);
    char *p = dup;
    for (;;) {
        char *e = strchr(p, sep);
        if (e) *e = 0;
        if (*p && l->n < MAX_LIST) l->item[l->n++] = strdup(p);
        if (!e) break;
        p = e + 1;
    }
    free(dup);
}

static int parse_ints(const list *l, long *out, int *n, const char *what) {
    *n = 0;
    for (int i = 0; i < l->n; i++) {
        char *end;
        long v = strtol(l->item[i], &end, 10);
        if (*end || v < 0 || v > 10000000) {
            fprintf(stderr, "sigma-bench: bad %s '%s'\n", what, l->item[i]);
            return -1;
        }
        out[(*n)++] = v;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    fprintf(stderr,
            "usage: sigma-bench -m MODEL[,MODEL..] [-t THREADS,..] [-p N_PROMPT,..] [-n N_GEN,..]\n"
            "                   [-d DEPTH,..] [-r REPS] [-b N_BATCH] [--kv SPEC[;SPEC..]]\n"
            "                   [--kernels SPEC] [-o md|csv] [--ttft 1] [-B SESSIONS,..]\n"
            "defaults: -t 2 -p 512 -n 128 -d 0 -r 5 -b 512 --kv dense -o md\n");
}

/* Evaluate n random tokens, one call (batch) or one token per call. */
static int run_tokens(sigma_session *s, uint32_t n_vocab, long n, int one_by_one, sigma_token *buf) {
    for (long i = 0; i < n; i++) buf[i] = (sigma_token)(rnd32() % n_vocab);
    if (!one_by_one) return sigma_session_eval(s, buf, (size_t)n);
    for (long i = 0; i < n; i++) {
        int st = sigma_session_eval(s, buf + i, 1);
        if (st != SIGMA_OK) return st;
    }
    return SIGMA_OK;
}

/* --ttft 1: open-to-first-token, REPS times: sigma_model_open (mmap; any
 * load-time work included), a session, eval of a 1-token prompt, its logits;
 * the file is in the page cache after the first (untimed) run. */
static int open_to_first_token(const char *path, long threads, long reps, int csv,
                               const char *kernels) {
    double *ms = calloc((size_t)reps, sizeof *ms);
    if (!ms) return 1;
    int rc = 0;
    unsigned long long fsize = 0, nparams = 0;
    for (long r = -1; r < reps && rc == 0; r++) {
        double t0 = now_s();
        sigma_model_params mp;
        sigma_model_params_init(&mp, sizeof mp);
        sigma_model *m = NULL;
        sigma_session *s = NULL;
        int st = sigma_model_open(path, &mp, &m);
        if (st == SIGMA_OK) {
            sigma_session_params sp;
            sigma_session_params_init(&sp, sizeof sp);
            sp.n_threads = (uint32_t)threads;
            sp.n_ctx = 512;
            st = sigma_session_open(m, &sp, &s);
        }
        const float *logits = NULL;
        if (st == SIGMA_OK) {
            sigma_token t = 1;
            st = sigma_session_eval(s, &t, 1);
        }
        if (st == SIGMA_OK) st = sigma_session_logits(s, -1, &logits);
        double t1 = now_s();
        if (st != SIGMA_OK || !logits) {
            fprintf(stderr, "sigma-bench: open-to-first-token failed on %s (status %d)\n", path, st);
            rc = 1;
        } else if (r >= 0) {
            ms[r] = (t1 - t0) * 1e3;
        }
        if (m && r < 0) {
            sigma_model_info info;
            memset(&info, 0, sizeof info);
            info.struct_size = sizeof info;
            sigma_model_get_info(m, &info);
            fsize = (unsigned long long)info.file_size;
            nparams = (unsigned long long)info.n_params;
        }
        sigma_session_close(s);
        sigma_model_close(m);
    }
    if (rc == 0) {
        double mean = 0, sd = 0;
        for (long r = 0; r < reps; r++) mean += ms[r];
        mean /= (double)reps;
        for (long r = 0; r < reps; r++) sd += (ms[r] - mean) * (ms[r] - mean);
        sd = reps > 1 ? sqrt(sd / (double)(reps - 1)) : 0.0;
        qsort(ms, (size_t)reps, sizeof *ms, cmp_d);
        double med = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        const char *kn = kernels ? kernels : getenv("SIGMA_KERNELS");
        if (!kn || !*kn) kn = "default";
        if (csv)
            printf("%s,%llu,%llu,%s,%ld,-,open+tg1_ms,0,%ld,%.3f,%.3f,%.3f\n", base, fsize, nparams, kn,
                   threads, reps, mean, sd, med);
        else
            printf("| %s | %.2f GiB | %.2f B | %s | %ld | - | open to first token (ms) | %.1f ± %.1f | %.1f |\n",
                   base, (double)fsize / 1073741824.0, (double)nparams / 1e9, kn, threads, mean, sd, med);
        fflush(stdout);
    }
    free(ms);
    return rc;
}

/* One table row: tokens/s over the repetitions (tps is sorted). B > 0: an
 * aggregate over B sessions. */
static void report(const char *base, const sigma_model_info *info, const char *kernels,
                   long threads, const char *kv, int kind, long n, long depth, long B, double *tps,
                   long reps, int csv) {
    double mean = 0, sd = 0;
    for (long r = 0; r < reps; r++) mean += tps[r];
    mean /= (double)reps;
    for (long r = 0; r < reps; r++) sd += (tps[r] - mean) * (tps[r] - mean);
    sd = reps > 1 ? sqrt(sd / (double)(reps - 1)) : 0.0;
    qsort(tps, (size_t)reps, sizeof *tps, cmp_d);
    double med = reps % 2 ? tps[reps / 2] : 0.5 * (tps[reps / 2 - 1] + tps[reps / 2]);
    char test[64], bs[24] = "";
    if (B > 0) snprintf(bs, sizeof bs, " x%ld", B);
    if (depth)
        snprintf(test, sizeof test, "%s%ld @ d%ld%s", kind ? "tg" : "pp", n, depth, bs);
    else
        snprintf(test, sizeof test, "%s%ld%s", kind ? "tg" : "pp", n, bs);
    const char *kn = kernels ? kernels : getenv("SIGMA_KERNELS");
    if (!kn || !*kn) kn = "default";
    if (csv)
        /* a KV spec with options has commas: quoted (RFC 4180) */
        printf("%s,%llu,%llu,%s,%ld,%s%s%s,%s%ld%s%.0ld,%ld,%ld,%.3f,%.3f,%.3f\n", base,
               (unsigned long long)info->file_size, (unsigned long long)info->n_params, kn, threads,
               strchr(kv, ',') ? "\"" : "", kv, strchr(kv, ',') ? "\"" : "", kind ? "tg" : "pp", n,
               B > 0 ? "x" : "", B > 0 ? B : 0L, depth, reps, mean, sd, med);
    else
        printf("| %s | %.2f GiB | %.2f B | %s | %ld | %s | %s | %.2f ± %.2f | %.2f |\n", base,
               (double)info->file_size / 1073741824.0, (double)info->n_params / 1e9, kn, threads,
               kv, test, mean, sd, med);
    fflush(stdout);
}

#define MAX_B 256

/* B sessions, n random tokens each: one sigma_sessions_eval call, or n
 * calls of one token per session. buf: B*n tokens. */
static int run_batch(sigma_session **ss, long B, uint32_t n_vocab, long n, int one_by_one,
                     sigma_token *buf) {
    const sigma_token *tp[MAX_B];
    size_t nt[MAX_B];
    for (long i = 0; i < B * n; i++) buf[i] = (sigma_token)(rnd32() % n_vocab);
    for (long step = 0; step < (one_by_one ? n : 1); step++) {
        for (long b = 0; b < B; b++) {
            tp[b] = buf + b * n + (one_by_one ? step : 0);
            nt[b] = one_by_one ? 1 : (size_t)n;
        }
        int st = sigma_sessions_eval(ss, tp, nt, (size_t)B, NULL);
        if (st != SIGMA_OK) return st;
    }
    return SIGMA_OK;
}

/* -B: every pp and tg test with B concurrent sessions. */
static int bench_batched(sigma_model *m, const sigma_model_info *info, const char *base,
                         const sigma_session_params *sp0, const char *kvspec, long threads,
                         long depth, long B, const long *pps, int n_pp, const long *tgs, int n_tg,
                         long reps, int csv, const char *kernels) {
    sigma_threadpool *pool = NULL;
    sigma_session *ss[MAX_B] = {0};
    int rc = 0, st;
    long longest = 1;
    for (int i = 0; i < n_pp; i++) longest = pps[i] > longest ? pps[i] : longest;
    for (int i = 0; i < n_tg; i++) longest = tgs[i] > longest ? tgs[i] : longest;
    sigma_token *buf = malloc(sizeof *buf * (size_t)B * (size_t)(depth > longest ? depth : longest));
    if (!buf || (st = sigma_threadpool_create((uint32_t)threads, NULL, &pool)) != SIGMA_OK) {
        fprintf(stderr, "sigma-bench: cannot create a thread pool\n");
        free(buf);
        return 1;
    }
    sigma_session_params sp = *sp0;
    sp.threadpool = pool;
    if ((st = sigma_session_open(m, &sp, &ss[0])) != SIGMA_OK) {
        char msg[256] = "";
        sigma_model_last_error(m, msg, sizeof msg);
        fprintf(stderr, "sigma-bench: cannot open a session (status %d) %s\n", st, msg);
        rc = 1;
    }
    if (rc == 0 && depth && run_tokens(ss[0], info->n_vocab, depth, 0, buf) != SIGMA_OK) {
        fprintf(stderr, "sigma-bench: depth fill failed: %s\n", sigma_session_last_error(ss[0]));
        rc = 1;
    }
    for (long b = 1; b < B && rc == 0; b++)
        if ((st = sigma_session_fork(ss[0], &ss[b])) != SIGMA_OK) {
            fprintf(stderr, "sigma-bench: fork failed: %s\n", sigma_session_last_error(ss[0]));
            rc = 1;
        }
    for (int kind = 0; kind < 2 && rc == 0; kind++) {
        int n_tests = kind ? n_tg : n_pp;
        for (int x = 0; x < n_tests && rc == 0; x++) {
            long n = kind ? tgs[x] : pps[x];
            if (n == 0) continue;
            double *tps = calloc((size_t)reps, sizeof *tps);
            for (long r = -1; r < reps && rc == 0; r++) { /* r = -1: warm-up */
                for (long b = 0; b < B; b++) sigma_session_rewind(ss[b], (uint32_t)depth);
                long nn = r < 0 ? (kind ? 1 : (n < 32 ? n : 32)) : n;
                double t0 = now_s();
                st = run_batch(ss, B, info->n_vocab, nn, kind, buf);
                double t1 = now_s();
                if (st != SIGMA_OK) {
                    fprintf(stderr, "sigma-bench: batched eval failed: %s\n",
                            sigma_session_last_error(ss[0]));
                    rc = 1;
                } else if (r >= 0) {
                    tps[r] = (double)(B * n) / (t1 - t0);
                }
            }
            if (rc == 0)
                report(base, info, kernels, threads, kvspec, kind, n, depth, B, tps, reps, csv);
            free(tps);
        }
    }
    for (long b = 0; b < B; b++) sigma_session_close(ss[b]);
    sigma_threadpool_destroy(pool);
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    list models = {0}, threads_l = {0}, pp_l = {0}, tg_l = {0}, depth_l = {0}, kv_l = {0}, b_l = {0};
    long reps = 5, n_batch = 512;
    const char *kernels = NULL, *fmt = "md";
    long ttft = 0;
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage();
            return 0;
        }
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "-m")) split(&models, v, ',');
        else if (!strcmp(a, "-t")) split(&threads_l, v, ',');
        else if (!strcmp(a, "-p")) split(&pp_l, v, ',');
        else if (!strcmp(a, "-n")) split(&tg_l, v, ',');
        else if (!strcmp(a, "-d")) split(&depth_l, v, ',');
        else if (!strcmp(a, "--kv")) split(&kv_l, v, ';');
        else if (!strcmp(a, "-B")) split(&b_l, v, ',');
        else if (!strcmp(a, "-r")) reps = strtol(v, NULL, 10);
        else if (!strcmp(a, "-b")) n_batch = strtol(v, NULL, 10);
        else if (!strcmp(a, "--kernels")) kernels = v;
        else if (!strcmp(a, "-o")) fmt = v;
        else if (!strcmp(a, "--ttft")) ttft = strtol(v, NULL, 10);
        else takes = 0;
        if (!takes) {
            fprintf(stderr, "sigma-bench: unknown option %s\n", a);
            usage();
            return 2;
        }
    }
    if (!models.n) {
        usage();
        return 2;
    }
    if (!threads_l.n) split(&threads_l, "2", ',');
    if (!pp_l.n) split(&pp_l, "512", ',');
    if (!tg_l.n) split(&tg_l, "128", ',');
    if (!depth_l.n) split(&depth_l, "0", ',');
    if (!kv_l.n) split(&kv_l, "dense", ';');
    long thr[MAX_LIST], pps[MAX_LIST], tgs[MAX_LIST], depths[MAX_LIST], bs[MAX_LIST];
    int n_thr, n_pp, n_tg, n_depth, n_b;
    if (parse_ints(&threads_l, thr, &n_thr, "thread count") || parse_ints(&pp_l, pps, &n_pp, "-p") ||
        parse_ints(&tg_l, tgs, &n_tg, "-n") || parse_ints(&depth_l, depths, &n_depth, "-d") ||
        parse_ints(&b_l, bs, &n_b, "-B"))
        return 2;
    for (int i = 0; i < n_b; i++)
        if (bs[i] < 1 || bs[i] > MAX_B) {
            fprintf(stderr, "sigma-bench: -B must be 1..%d\n", MAX_B);
            return 2;
        }
    if (reps < 1 || reps > 1000 || n_batch < 1 || n_batch > 65536) {
        fprintf(stderr, "sigma-bench: bad -r or -b\n");
        return 2;
    }
    if (kernels) setenv("SIGMA_KERNELS", kernels, 1);
    int csv = !strcmp(fmt, "csv");
    if (csv)
        printf("model,size_bytes,params,kernels,threads,kv,test,depth,reps,tps_mean,tps_sd,tps_median\n");
    else
        printf("| model | size | params | kernels | threads | kv | test | t/s | median t/s |\n"
               "| --- | ---: | ---: | --- | ---: | --- | --- | ---: | ---: |\n");
    fflush(stdout);

    int rc = 0;
    for (int mi = 0; mi < models.n; mi++) {
        sigma_model_params mp;
        sigma_model_params_init(&mp, sizeof mp);
        sigma_model *m = NULL;
        if (ttft) {
            for (int ti = 0; ti < n_thr; ti++)
                if (open_to_first_token(models.item[mi], thr[ti], reps, csv, kernels) != 0) rc = 1;
            continue;
        }
        int st = sigma_model_open(models.item[mi], &mp, &m);
        if (st != SIGMA_OK) {
            char msg[256] = "";
            if (m) sigma_model_last_error(m, msg, sizeof msg);
            fprintf(stderr, "sigma-bench: cannot open %s (status %d) %s\n", models.item[mi], st, msg);
            rc = 1;
            continue;
        }
        sigma_model_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        sigma_model_get_info(m, &info);
        const char *base = strrchr(models.item[mi], '/');
        base = base ? base + 1 : models.item[mi];
        for (int ki = 0; ki < kv_l.n; ki++) {
            char kvname[128];
            snprintf(kvname, sizeof kvname, "%s", kv_l.item[ki]);
            char *kvopt = strchr(kvname, ':');
            if (kvopt) *kvopt++ = 0;
            for (int ti = 0; ti < n_thr; ti++) {
                /* the unbatched tests of every depth share one session: its
                 * fill is extended from the depth before (or rewound to a
                 * smaller one), so only the largest depth costs a full fill */
                long longest = 1, max_depth = 0;
                for (int i = 0; i < n_pp; i++) longest = pps[i] > longest ? pps[i] : longest;
                for (int i = 0; i < n_tg; i++) longest = tgs[i] > longest ? tgs[i] : longest;
                for (int i = 0; i < n_depth; i++) max_depth = depths[i] > max_depth ? depths[i] : max_depth;
                sigma_session *s = NULL;
                sigma_token *buf = NULL;
                long filled = 0;
                for (int di = 0; di < n_depth; di++) {
                    long depth = depths[di];
                    sigma_session_params sp;
                    sigma_session_params_init(&sp, sizeof sp);
                    sp.n_threads = (uint32_t)(thr[ti] ? thr[ti] : 0);
                    sp.n_ctx = (uint32_t)(depth + longest + 64);
                    sp.n_batch = (uint32_t)n_batch;
                    sp.kv_strategy = kvname;
                    sp.kv_options = kvopt;
                    if (n_b) {
                        for (int bi = 0; bi < n_b; bi++)
                            if (bench_batched(m, &info, base, &sp, kv_l.item[ki], thr[ti], depth,
                                              bs[bi], pps, n_pp, tgs, n_tg, reps, csv, kernels))
                                rc = 1;
                        continue;
                    }
                    if (!s) {
                        sp.n_ctx = (uint32_t)(max_depth + longest + 64);
                        if ((st = sigma_session_open(m, &sp, &s)) != SIGMA_OK) {
                            char msg[256] = "";
                            sigma_model_last_error(m, msg, sizeof msg);
                            fprintf(stderr, "sigma-bench: cannot open a session (status %d) %s\n", st, msg);
                            rc = 1;
                            break;
                        }
                        buf = malloc(sizeof *buf * (size_t)(max_depth > longest ? max_depth : longest));
                    }
                    sigma_session_rewind(s, (uint32_t)(depth < filled ? depth : filled));
                    if (depth > filled && run_tokens(s, info.n_vocab, depth - filled, 0, buf) != SIGMA_OK) {
                        fprintf(stderr, "sigma-bench: depth fill failed: %s\n", sigma_session_last_error(s));
                        rc = 1;
                    }
                    filled = depth;
                    for (int kind = 0; kind < 2; kind++) {
                        int n_tests = kind ? n_tg : n_pp;
                        for (int x = 0; x < n_tests; x++) {
                            long n = kind ? tgs[x] : pps[x];
                            if (n == 0) continue;
                            double *tps = calloc((size_t)reps, sizeof *tps);
                            int ok = 1;
                            /* warm-up: a short run of the same kind */
                            sigma_session_rewind(s, (uint32_t)depth);
                            run_tokens(s, info.n_vocab, kind ? 1 : (n < 32 ? n : 32), kind, buf);
                            for (long r = 0; r < reps && ok; r++) {
                                sigma_session_rewind(s, (uint32_t)depth);
                                double t0 = now_s();
                                st = run_tokens(s, info.n_vocab, n, kind, buf);
                                double t1 = now_s();
                                if (st != SIGMA_OK) {
                                    fprintf(stderr, "sigma-bench: eval failed: %s\n",
                                            sigma_session_last_error(s));
                                    ok = 0;
                                    rc = 1;
                                }
                                tps[r] = (double)n / (t1 - t0);
                            }
                            if (ok)
                                report(base, &info, kernels, thr[ti], kv_l.item[ki], kind, n,
                                       depth, 0, tps, reps, csv);
                            free(tps);
                        }
                    }
                }
                free(buf);
                sigma_session_close(s);
            }
        }
        sigma_model_close(m);
    }
    return rc;
}
