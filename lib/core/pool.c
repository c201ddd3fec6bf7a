/* A fixed pool of worker threads running one parallel-for at a time.
 *
 * sg_pool_run() publishes a job (function, context, task count, grain) under
 * the pool mutex and bumps a generation counter; workers wake up, take chunks
 * of tasks from an atomic counter until none are left, and report done. The
 * caller takes chunks too and then waits for every worker (a barrier), so the
 * job's memory may be reused as soon as sg_pool_run() returns. Which thread
 * runs which chunk varies, but each task is run exactly once, so results do
 * not depend on scheduling. Calls from several threads are serialised by a
 * second mutex (sessions sharing a pool take turns). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core.h"

struct sg_worker {
    struct sg_pool *pool;
    uint32_t tid;
    pthread_t thread;
};

struct sg_pool {
    sg_alloc alloc;
    uint32_t n_threads;             /* including the caller */
    uint32_t n_started;             /* workers actually running */
    struct sg_worker *workers;
    pthread_mutex_t use_lock;       /* one sg_pool_run at a time */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    uint64_t generation;            /* under lock */
    uint32_t pending;               /* workers not yet done with the job; under lock */
    int stop;                       /* under lock */
    /* the current job; written under lock before generation is bumped */
    sg_task_fn fn;
    void *ctx;
    size_t n_tasks, grain;
    atomic_size_t next;
    /* lock-free mirrors for a short spin before blocking: a decode step
     * runs ~100 small parallel-fors, and waking a thread through the
     * condition variable costs tens of microseconds each time */
    atomic_uint_fast64_t pub_generation;
    atomic_uint pub_pending;
    atomic_int pub_stop;
};

/* Spin iterations before sleeping (each a pause, ~50 ns): long enough to
 * bridge the gaps between the operations of a layer, short enough not to
 * burn a shared core for long. */
#define SPIN_ITERS 2000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_chunks(struct sg_pool *p, uint32_t tid, sg_task_fn fn, void *ctx, size_t n,
                       size_t grain) {
    for (;;) {
        size_t b = atomic_fetch_add_explicit(&p->next, grain, memory_order_relaxed);
        if (b >= n) break;
        size_t e = n - b < grain ? n : b + grain;
        fn(ctx, tid, b, e);
    }
}

static void *worker_main(void *arg) {
    struct sg_worker *w = arg;
    struct sg_pool *p = w->pool;
    uint64_t seen = 0;
    for (int i = 0; i < SPIN_ITERS; i++) { /* the first job usually follows soon */
        if (atomic_load_explicit(&p->pub_generation, memory_order_acquire) != seen ||
            atomic_load_explicit(&p->pub_stop, memory_order_relaxed))
            break;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen) pthread_cond_wait(&p->wake, &p->lock);
        if (p->stop) break;
        seen = p->generation;
        sg_task_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t n = p->n_tasks, grain = p->grain;
        pthread_mutex_unlock(&p->lock);
        run_chunks(p, w->tid, fn, ctx, n, grain);
        pthread_mutex_lock(&p->lock);
        atomic_fetch_sub_explicit(&p->pub_pending, 1, memory_order_release);
        if (--p->pending == 0) pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->lock);
        for (int i = 0; i < SPIN_ITERS; i++) { /* wait briefly for the next job */
            if (atomic_load_explicit(&p->pub_generation, memory_order_acquire) != seen ||
                atomic_load_explicit(&p->pub_stop, memory_order_relaxed))
                break;
            cpu_relax();
        }
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void pool_stop(struct sg_pool *p) {
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    atomic_store(&p->pub_stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (uint32_t i = 0; i < p->n_started; i++) pthread_join(p->workers[i].thread, NULL);
    p->n_started = 0;
}

int sg_pool_create(const sg_alloc *alloc, uint32_t n_threads, sg_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return SIGMA_E_INVALID_ARG;
    struct sg_pool *p = sg_calloc(alloc, 1, sizeof *p);
    if (!p) return SIGMA_E_NOMEM;
    p->alloc = *alloc;
    p->n_threads = n_threads;
    atomic_init(&p->next, 0);
    atomic_init(&p->pub_generation, 0);
    atomic_init(&p->pub_pending, 0);
    atomic_init(&p->pub_stop, 0);
    if (n_threads > 1) {
        p->workers = sg_calloc(alloc, n_threads - 1, sizeof *p->workers);
        if (!p->workers) {
            sg_free(alloc, p);
            return SIGMA_E_NOMEM;
        }
    }
    int ok_use = pthread_mutex_init(&p->use_lock, NULL) == 0;
    int ok_lock = ok_use && pthread_mutex_init(&p->lock, NULL) == 0;
    int ok_wake = ok_lock && pthread_cond_init(&p->wake, NULL) == 0;
    int ok_done = ok_wake && pthread_cond_init(&p->done, NULL) == 0;
    if (!ok_done) {
        if (ok_wake) pthread_cond_destroy(&p->wake);
        if (ok_lock) pthread_mutex_destroy(&p->lock);
        if (ok_use) pthread_mutex_destroy(&p->use_lock);
        sg_free(alloc, p->workers);
        sg_free(alloc, p);
        return SIGMA_E_NOMEM;
    }
    for (uint32_t i = 0; i + 1 < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].tid = i + 1;
        if (pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]) != 0) {
            sg_pool_destroy(p);
            return SIGMA_E_NOMEM;
        }
        p->n_started++;
    }
    *out = p;
    return SIGMA_OK;
}

void sg_pool_destroy(sg_pool *p) {
    if (!p) return;
    pool_stop(p);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->use_lock);
    sg_alloc a = p->alloc;
    sg_free(&a, p->workers);
    sg_free(&a, p);
}

uint32_t sg_pool_threads(const sg_pool *p) { return p ? p->n_threads : 1; }

void sg_pool_run(sg_pool *p, size_t n_tasks, size_t grain, sg_task_fn fn, void *ctx) {
    if (n_tasks == 0) return;
    uint32_t nt = p ? p->n_started + 1 : 1;
    if (grain == 0) {
        /* about 4 chunks per thread, for balance when cores are shared */
        grain = n_tasks / ((size_t)nt * 4);
        if (grain == 0) grain = 1;
    }
    if (!p || p->n_started == 0 || n_tasks <= grain) {
        if (p) pthread_mutex_lock(&p->use_lock);
        fn(ctx, 0, 0, n_tasks);
        if (p) pthread_mutex_unlock(&p->use_lock);
        return;
    }
    pthread_mutex_lock(&p->use_lock);
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    p->grain = grain;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->pending = p->n_started;
    atomic_store_explicit(&p->pub_pending, p->n_started, memory_order_relaxed);
    p->generation++;
    atomic_store_explicit(&p->pub_generation, p->generation, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    run_chunks(p, 0, fn, ctx, n_tasks, grain);
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&p->pub_pending, memory_order_acquire) == 0) break;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while (p->pending > 0) pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->use_lock);
}

/* ---- public API ------------------------------------------------------------ */

struct sigma_threadpool {
    sg_pool *pool;
    sg_alloc alloc;
};

int sigma_threadpool_create(uint32_t n_threads, const sigma_allocator *allocator,
                            sigma_threadpool **out) {
    if (!out) return SIGMA_E_INVALID_ARG;
    *out = NULL;
    if (n_threads > 1024) return SIGMA_E_INVALID_ARG;
    if (n_threads == 0) n_threads = sg_cpu_count();
    sg_alloc a;
    sg_alloc_init(&a, allocator);
    sigma_threadpool *tp = sg_calloc(&a, 1, sizeof *tp);
    if (!tp) return SIGMA_E_NOMEM;
    tp->alloc = a;
    int st = sg_pool_create(&a, n_threads, &tp->pool);
    if (st != SIGMA_OK) {
        sg_free(&a, tp);
        return st;
    }
    *out = tp;
    return SIGMA_OK;
}

void sigma_threadpool_destroy(sigma_threadpool *tp) {
    if (!tp) return;
    sg_alloc a = tp->alloc;
    sg_pool_destroy(tp->pool);
    sg_free(&a, tp);
}

sg_pool *sg_threadpool_pool(sigma_threadpool *tp) { return tp ? tp->pool : NULL; }
