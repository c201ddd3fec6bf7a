/* sigma-attnbench: the attention of a KV strategy alone, and the memory
 * bandwidth it is bounded by.
 *
 * Creates a built-in strategy (default `dense`) for a layout, appends D
 * positions of random rows to every layer, then times decode-style attend
 * calls (one query at position D-1, every layer) and reports the median
 * ms per token and the GB/s of cache it reads (K and V rows of all heads).
 * `--bw` also runs a read-bandwidth probe: the same threads summing a
 * buffer of the same size as the cache (an upper bound for attention).
 *
 *   sigma-attnbench --shape sigma|twin|tinyllama|Q,K,V,D [-L layers]
 *                   [-d depth,...] [-t threads] [-r reps] [--kv NAME[:OPT]] [--bw]
 *
 * Uses internal headers (links the static library). Random rows; timings
 * only. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "kv/kv.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float rndf(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 40) / (double)(1u << 24)) * 2.0f - 1.0f;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct bw_job {
    const sg_kernels *k;
    const float *ones; /* 4096 floats (stays in L1) */
    const float *buf;
    size_t n;
    uint32_t parts;
    float sums[64];
} bw_job;

static void bw_task(void *ctx, uint32_t tid, size_t begin, size_t end) {
    bw_job *j = ctx;
    (void)tid;
    for (size_t t = begin; t < end; t++) {
        size_t a = j->n * t / j->parts, b = j->n * (t + 1) / j->parts;
        float acc = 0.0f;
        for (size_t i = a; i < b; i += 4096) {
            size_t m = b - i < 4096 ? b - i : 4096;
            acc += j->k->dot_f32(j->buf + i, j->ones, m);
        }
        j->sums[t % 64] = acc;
    }
}

static void usage(const char *a0) {
    fprintf(stderr,
            "usage: %s [--shape sigma|twin|tinyllama|Q,K,V,D] [-L layers] [-d depth,...]\n"
            "          [-t threads] [-r reps] [--kv NAME[:OPTIONS]] [--bw]\n",
            a0);
}

int main(int argc, char **argv) {
    uint32_t nq = 32, nk = 4, nv = 16, dh = 64, layers = 1, threads = 2, reps = 7;
    const char *depths = "1024,4096,16384", *kvspec = "dense";
    int bw = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bw")) {
            bw = 1;
            continue;
        }
        if (!v) {
            usage(argv[0]);
            return 2;
        }
        i++;
        if (!strcmp(a, "--shape")) {
            if (!strcmp(v, "sigma")) nq = 32, nk = 4, nv = 16, dh = 64;
            else if (!strcmp(v, "twin")) nq = 32, nk = 16, nv = 16, dh = 64;
            else if (!strcmp(v, "tinyllama")) nq = 32, nk = 4, nv = 4, dh = 64;
            else if (sscanf(v, "%u,%u,%u,%u", &nq, &nk, &nv, &dh) != 4) {
                usage(argv[0]);
                return 2;
            }
        } else if (!strcmp(a, "-L")) layers = (uint32_t)atoi(v);
        else if (!strcmp(a, "-d")) depths = v;
        else if (!strcmp(a, "-t")) threads = (uint32_t)atoi(v);
        else if (!strcmp(a, "-r")) reps = (uint32_t)atoi(v);
        else if (!strcmp(a, "--kv")) kvspec = v;
        else {
            usage(argv[0]);
            return 2;
        }
    }
    if (!layers || !threads || !reps || reps > 1000 || threads > 64) {
        usage(argv[0]);
        return 2;
    }
    char name[64];
    const char *opts = strchr(kvspec, ':');
    size_t nlen = opts ? (size_t)(opts - kvspec) : strlen(kvspec);
    if (nlen >= sizeof name) nlen = sizeof name - 1;
    memcpy(name, kvspec, nlen);
    name[nlen] = 0;
    if (opts) opts++;

    sg_alloc al;
    sg_alloc_init(&al, NULL);
    sg_kernels kern;
    sg_kernels_init_spec(&kern, 1, getenv("SIGMA_KERNELS"));
    sg_pool *pool = NULL;
    if (threads > 1 && sg_pool_create(&al, threads, &pool) != SIGMA_OK) return 1;
    sg_exec ex;
    memset(&ex, 0, sizeof ex);
    ex.k = &kern;
    ex.pool = pool;
    ex.n_threads = threads;
    sg_kv_env env = {&ex, &al};
    sigma_kv_strategy st;
    if (!sg_kv_find(name, &st)) {
        fprintf(stderr, "unknown strategy %s\n", name);
        return 2;
    }
    st.user = &env;

    printf("| shape q/k/v/d | layers | kv | depth | ms/token (median of %u) | min | CPU ms (median, all threads) | cache MB read | GB/s |%s\n",
           reps, bw ? " probe GB/s |" : "");
    printf("|---|---:|---|---:|---:|---:|---:|---:|---:|%s\n", bw ? "---:|" : "");
    const char *p = depths;
    while (*p) {
        uint32_t D = (uint32_t)strtoul(p, NULL, 10);
        p = strchr(p, ',');
        p = p ? p + 1 : "";
        if (!D) continue;
        sigma_kv_layout lay = {sizeof lay, layers, nq, nk, nv, dh, dh, D, 256};
        void *state = NULL;
        char err[256] = "";
        if (st.create(st.user, &lay, opts, &state, err, sizeof err) != SIGMA_OK) {
            fprintf(stderr, "create: %s\n", err);
            return 1;
        }
        size_t krow = (size_t)nk * dh, vrow = (size_t)nv * dh;
        float *kbuf = malloc(256 * krow * sizeof(float)), *vbuf = malloc(256 * vrow * sizeof(float));
        float *q = malloc((size_t)nq * dh * sizeof(float)), *out = malloc((size_t)nq * dh * sizeof(float));
        if (!kbuf || !vbuf || !q || !out) return 1;
        for (size_t i = 0; i < (size_t)nq * dh; i++) q[i] = rndf();
        for (uint32_t l = 0; l < layers; l++)
            for (uint32_t p0 = 0; p0 < D; p0 += 256) {
                uint32_t n = D - p0 < 256 ? D - p0 : 256;
                for (size_t i = 0; i < n * krow; i++) kbuf[i] = rndf();
                for (size_t i = 0; i < n * vrow; i++) vbuf[i] = rndf();
                if (st.append(state, l, p0, n, kbuf, vbuf) != SIGMA_OK) {
                    fprintf(stderr, "append failed\n");
                    return 1;
                }
            }
        double t[1000], c[1000];
        for (uint32_t r = 0; r <= reps; r++) {
            double t0 = now_s(), c0 = cpu_s();
            for (uint32_t l = 0; l < layers; l++) {
                sigma_kv_attend_args a;
                memset(&a, 0, sizeof a);
                a.struct_size = sizeof a;
                a.layer = l;
                a.pos0 = D - 1;
                a.n_queries = 1;
                a.q = q;
                a.out = out;
                a.scale = 0.125f;
                if (st.attend(state, &a) != SIGMA_OK) {
                    fprintf(stderr, "attend failed\n");
                    return 1;
                }
            }
            if (r) { /* first call: warm-up */
                t[r - 1] = now_s() - t0;
                c[r - 1] = cpu_s() - c0;
            }
        }
        qsort(t, reps, sizeof *t, cmp_d);
        qsort(c, reps, sizeof *c, cmp_d);
        double med = t[reps / 2];
        /* bytes per element: dense f16 (its default) or bf16 unless
         * type=f32; topv f32 (its default) unless type=f16 or bf16. The
         * column is the cache's size (what dense reads), also for topv */
        size_t esize = 4;
        if (!strcmp(name, "dense")) esize = opts && strstr(opts, "type=f32") ? 4 : 2;
        if (!strcmp(name, "topv")) esize = opts && (strstr(opts, "type=f16") || strstr(opts, "type=bf16")) ? 2 : 4;
        double bytes = (double)D * (double)(krow + vrow) * (double)esize * layers;
        printf("| %u/%u/%u/%u | %u | %s | %u | %.3f | %.3f | %.3f | %.1f | %.1f |", nq, nk, nv, dh,
               layers, kvspec, D, med * 1e3, t[0] * 1e3, c[reps / 2] * 1e3, bytes / 1e6,
               bytes / med / 1e9);
        if (bw) {
            size_t n = (size_t)(bytes / 4);
            float *buf = malloc(n * sizeof(float));
            if (!buf) return 1;
            for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
            static float ones[4096];
            for (size_t i = 0; i < 4096; i++) ones[i] = 1.0f;
            bw_job j = {&kern, ones, buf, n, threads * 4, {0}};
            double bt[1000];
            for (uint32_t r = 0; r <= reps; r++) {
                double t0 = now_s();
                sg_pool_run(pool, j.parts, 1, bw_task, &j);
                if (r) bt[r - 1] = now_s() - t0;
            }
            qsort(bt, reps, sizeof *bt, cmp_d);
            printf(" %.1f |", bytes / bt[reps / 2] / 1e9);
            free(buf);
        }
        printf("\n");
        fflush(stdout);
        free(kbuf);
        free(vbuf);
        free(q);
        free(out);
        st.destroy(state);
    }
    sg_pool_destroy(pool);
    return 0;
}
