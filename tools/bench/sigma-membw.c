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
 * cannot beat. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

int main(int argc, char **argv) {
    long mib = 1024, reps = 5;
    int thr[MAX_T], n_thr = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !v) {
            fprintf(stderr, "usage: sigma-membw [-t THREADS,..] [-s MIB] [-r REPS]\n");
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
        double mean = 0, sd = 0;
        for (long r = 0; r < reps; r++) mean += gbs[r];
        mean /= (double)reps;
        for (long r = 0; r < reps; r++) sd += (gbs[r] - mean) * (gbs[r] - mean);
        sd = reps > 1 ? sqrt(sd / (double)(reps - 1)) : 0.0;
        qsort(gbs, (size_t)reps, sizeof *gbs, cmp_d);
        double med = reps % 2 ? gbs[reps / 2] : 0.5 * (gbs[reps / 2 - 1] + gbs[reps / 2]);
        printf("| %d | %ld MiB | %.2f ± %.2f | %.2f |\n", thr[ti], mib, mean, sd, med);
        fflush(stdout);
    }
    /* keep the sums alive without printing them to stdout */
    if (sink == 42) fprintf(stderr, "\n");
    free(gbs);
    free(buf);
    return 0;
}
