/* sigma-membw: how fast this machine reads memory, the limit decode speed is
 * measured against in docs/performance.md.
 *
 *   sigma-membw [-t THREADS,..] [-s MIB] [-r REPS]
 *
 * Allocates one buffer of MIB mebibytes (default 1024, far larger than any
 * cache), writes it once, then for each thread count runs REPS passes in
 * which the threads sum disjoint, equal slices of it (64-bit words, eight
 * independent accumulators so the compiler vectorises the loop and the
 * loads are the bottleneck). Prints a Markdown table: GB/s (10^9 bytes per
 * second) as mean ± sd and median of the passes. Decoding one token reads
 * every weight once, so (weight bytes) / (median GB/s) is the time one token
 * cannot beat.
 *
 *   sigma-membw --fma [-t THREADS,..] [-r REPS]
 *
 * instead measures the floating-point peak that prefill of float weights is
 * held to: each thread runs 12 independent chains of fused multiply-adds on
 * registers (256-bit AVX2 FMA, and 512-bit if the CPU has AVX-512F), no
 * memory traffic. Prints GFLOP/s (an FMA counts 2 per lane) as mean ± sd and
 * median; (FLOPs per token) / (median GFLOP/s) is the time a prefill token
 * cannot beat. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) && defined(__GNUC__)
#  include <immintrin.h>
#  define HAVE_X86 1
#endif

#define MAX_T 64

typedef struct job {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
    pthread_barrier_t *bar;
} job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t sum_words(const uint64_t *p, size_t n) {
    uint64_t a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += p[i + k];
    for (; i < n; i++) a[0] += p[i];
    uint64_t s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    return s;
}

static void *worker(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->bar);
    j->sum = sum_words(j->p, j->n);
    pthread_barrier_wait(j->bar);
    return NULL;
}


/* ---- --fma: peak of fused multiply-adds ---- */
#define FMA_ITERS 40000000L /* x 12 FMAs per level and pass */

#ifdef HAVE_X86
/* 12 chains: enough to cover a 4-cycle FMA latency on two pipes with room */
#  define FMA_BODY(V, FMA, SET1)                                                   \
    V c0 = SET1(1.0f), c1 = SET1(1.1f), c2 = SET1(1.2f), c3 = SET1(1.3f), c4 = SET1(1.4f); \
    V c5 = SET1(1.5f), c6 = SET1(1.6f), c7 = SET1(1.7f), c8 = SET1(1.8f), c9 = SET1(1.9f); \
    V c10 = SET1(2.0f), c11 = SET1(2.1f);                                          \
    const V m = SET1(0.999999f), a = SET1(1e-7f);                                  \
    for (long i = 0; i < iters; i++) {                                             \
        c0 = FMA(c0, m, a), c1 = FMA(c1, m, a), c2 = FMA(c2, m, a), c3 = FMA(c3, m, a); \
        c4 = FMA(c4, m, a), c5 = FMA(c5, m, a), c6 = FMA(c6, m, a), c7 = FMA(c7, m, a); \
        c8 = FMA(c8, m, a), c9 = FMA(c9, m, a), c10 = FMA(c10, m, a), c11 = FMA(c11, m, a); \
    }                                                                              \
    c0 = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;

__attribute__((target("avx2,fma"), noinline)) static float fma_avx2(long iters) {
    FMA_BODY(__m256, _mm256_fmadd_ps, _mm256_set1_ps)
    return _mm256_cvtss_f32(c0);
}
__attribute__((target("avx512f"), noinline)) static float fma_avx512(long iters) {
    FMA_BODY(__m512, _mm512_fmadd_ps, _mm512_set1_ps)
    return _mm512_cvtss_f32(c0);
}
#endif

typedef struct fjob {
    int wide; /* 8 or 16 lanes */
    float sum;
    pthread_barrier_t *bar;
} fjob;

static float fma_run(int wide) {
#ifdef HAVE_X86
    return wide == 16 ? fma_avx512(FMA_ITERS) : fma_avx2(FMA_ITERS);
#else
    (void)wide;
    return 0.0f;
#endif
}

static void *fworker(void *arg) {
    fjob *j = arg;
    pthread_barrier_wait(j->bar);
    j->sum = fma_run(j->wide);
    pthread_barrier_wait(j->bar);
    return NULL;
}

/* One pass of t threads x FMA_ITERS x 12 FMAs of `wide` lanes; returns GFLOP/s. */
static double fma_pass(int wide, int t, float *sink) {
    pthread_t th[MAX_T];
    fjob jobs[MAX_T];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)t);
    for (int i = 0; i < t; i++) jobs[i] = (fjob){wide, 0.0f, &bar};
    for (int i = 1; i < t; i++)
        if (pthread_create(&th[i], NULL, fworker, &jobs[i]) != 0) {
            fprintf(stderr, "sigma-membw: cannot start %d threads\n", t);
            exit(1);
        }
    pthread_barrier_wait(&bar);
    double t0 = now_s();
    jobs[0].sum = fma_run(wide);
    pthread_barrier_wait(&bar);
    double t1 = now_s();
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < t; i++) *sink += jobs[i].sum;
    return (double)t * FMA_ITERS * 12.0 * wide * 2.0 / (t1 - t0) / 1e9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One pass with t threads; returns seconds (the main thread is one of them). */
static double pass(const uint64_t *buf, size_t words, int t, uint64_t *sink) {
    pthread_t th[MAX_T];
    job jobs[MAX_T];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)t);
    size_t per = words / (size_t)t;
    for (int i = 0; i < t; i++) {
        jobs[i].p = buf + (size_t)i * per;
        jobs[i].n = i == t - 1 ? words - (size_t)i * per : per;
        jobs[i].sum = 0;
        jobs[i].bar = &bar;
    }
    int started = 1;
    for (int i = 1; i < t; i++) {
        if (pthread_create(&th[i], NULL, worker, &jobs[i]) != 0) break;
        started++;
    }
    if (started != t) {
        fprintf(stderr, "sigma-membw: cannot start %d threads\n", t);
        exit(1);
    }
    pthread_barrier_wait(&bar);
    double t0 = now_s();
    jobs[0].sum = sum_words(jobs[0].p, jobs[0].n);
    pthread_barrier_wait(&bar);
    double t1 = now_s();
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    for (int i = 0; i < t; i++) *sink += jobs[i].sum;
    return t1 - t0;
}

/* mean, sample sd and median of v[0..n) (sorts v) */
static void stats(double *v, long n, double *mean, double *sd, double *med) {
    double m = 0, s = 0;
    for (long r = 0; r < n; r++) m += v[r];
    m /= (double)n;
    for (long r = 0; r < n; r++) s += (v[r] - m) * (v[r] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(s / (double)(n - 1)) : 0.0;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fma_table(const int *thr, int n_thr, long reps) {
#ifndef HAVE_X86
    (void)thr, (void)n_thr, (void)reps;
    fprintf(stderr, "sigma-membw: --fma needs an x86-64 build\n");
    return 1;
#else
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "sigma-membw: --fma: this CPU has no AVX2+FMA\n");
        return 1;
    }
    double *v = calloc((size_t)reps, sizeof *v);
    if (!v) return 1;
    float sink = 0.0f;
    printf("| threads | FMA width | GFLOP/s | median GFLOP/s |\n| ---: | ---: | ---: | ---: |\n");
    for (int wide = 8; wide <= 16; wide += 8) {
        if (wide == 16 && !__builtin_cpu_supports("avx512f")) break;
        for (int ti = 0; ti < n_thr; ti++) {
            fma_pass(wide, thr[ti], &sink); /* warm-up (clock, thread start) */
            for (long r = 0; r < reps; r++) v[r] = fma_pass(wide, thr[ti], &sink);
            double mean, sd, med;
            stats(v, reps, &mean, &sd, &med);
            printf("| %d | %d-bit | %.1f ± %.1f | %.1f |\n", thr[ti], wide * 32, mean, sd, med);
            fflush(stdout);
        }
    }
    if (sink == 42.0f) fprintf(stderr, "\n");
    free(v);
    return 0;
#endif
}

int main(int argc, char **argv) {
    long mib = 1024, reps = 5;
    int thr[MAX_T], n_thr = 0, fma = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fma")) {
            fma = 1;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !v) {
            fprintf(stderr, "usage: sigma-membw [-t THREADS,..] [-s MIB] [-r REPS] | --fma [-t THREADS,..] [-r REPS]\n");
            return !strcmp(a, "-h") || !strcmp(a, "--help") ? 0 : 2;
        }
        i++;
        if (!strcmp(a, "-s")) mib = strtol(v, NULL, 10);
        else if (!strcmp(a, "-r")) reps = strtol(v, NULL, 10);
        else if (!strcmp(a, "-t")) {
            char *d = strdup(v), *save = NULL;
            for (char *tok = strtok_r(d, ",", &save); tok && n_thr < MAX_T; tok = strtok_r(NULL, ",", &save)) {
                long x = strtol(tok, NULL, 10);
                if (x < 1 || x > MAX_T) {
                    fprintf(stderr, "sigma-membw: bad thread count '%s'\n", tok);
                    free(d);
                    return 2;
                }
                thr[n_thr++] = (int)x;
            }
            free(d);
        } else {
            fprintf(stderr, "sigma-membw: unknown option %s\n", a);
            return 2;
        }
    }
    if (mib < 64 || mib > 65536 || reps < 1 || reps > 1000) {
        fprintf(stderr, "sigma-membw: -s must be 64..65536, -r 1..1000\n");
        return 2;
    }
    if (!n_thr) {
        thr[0] = 1;
        thr[1] = 2;
        n_thr = 2;
    }
    if (fma) return fma_table(thr, n_thr, reps);
    size_t bytes = (size_t)mib << 20, words = bytes / 8;
    uint64_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes) != 0) {
        fprintf(stderr, "sigma-membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i++) buf[i] = i;
    double *gbs = calloc((size_t)reps, sizeof *gbs);
    uint64_t sink = 0;
    printf("| threads | buffer | GB/s | median GB/s |\n| ---: | ---: | ---: | ---: |\n");
    for (int ti = 0; ti < n_thr; ti++) {
        pass(buf, words, thr[ti], &sink); /* warm-up */
        for (long r = 0; r < reps; r++) gbs[r] = (double)bytes / pass(buf, words, thr[ti], &sink) / 1e9;
        double mean, sd, med;
        stats(gbs, reps, &mean, &sd, &med);
        printf("| %d | %ld MiB | %.2f ± %.2f | %.2f |\n", thr[ti], mib, mean, sd, med);
        fflush(stdout);
    }
    /* keep the sums alive without printing them to stdout */
    if (sink == 42) fprintf(stderr, "\n");
    free(gbs);
    free(buf);
    return 0;
}
