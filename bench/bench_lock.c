/* bench_lock.c - Lock throughput: uncontended acquire+release in one
   process, and two processes doing lock+increment+unlock on one counter;
   "raw" is a robust process-shared pthread mutex in the same memory.
   Usage: bench_lock multiproc|raw [million-ops [figure-prefix]] (only the
   figures whose names start with the prefix). */
#include "bench_util.h"

#include <multiproc.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* shared - what the two contending processes touch. */
struct shared {
    mp_lock *lock;
    pthread_mutex_t mutex;
    volatile long counter;
    long per_proc;
    int raw;
};

static void op_lock(struct shared *s)
{
    if (s->raw)
        pthread_mutex_lock(&s->mutex);
    else
        mp_lock_acquire(s->lock, MP_FOREVER);
}

static void op_unlock(struct shared *s)
{
    if (s->raw)
        pthread_mutex_unlock(&s->mutex);
    else
        mp_lock_release(s->lock);
}

static int hammer(void *arg)
{
    struct shared *s = arg;
    for (long i = 0; i < s->per_proc; i++) {
        op_lock(s);
        s->counter++;
        op_unlock(s);
    }
    return 0;
}

/* Millions of uncontended acquire+release pairs per second. */
static double uncontended(struct shared *s, long n)
{
    double t0 = bench_now();
    if (s->raw) {
        for (long i = 0; i < n; i++) {
            pthread_mutex_lock(&s->mutex);
            pthread_mutex_unlock(&s->mutex);
        }
    } else {
        for (long i = 0; i < n; i++) {
            mp_lock_acquire(s->lock, MP_FOREVER);
            mp_lock_release(s->lock);
        }
    }
    return (double)n / (bench_now() - t0) / 1e6;
}

/* Millions of lock+increment+unlock per second, two processes in all. */
static double contended(struct shared *s, long per_proc)
{
    s->counter = 0;
    s->per_proc = per_proc;
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORK};
    double t0 = bench_now();
    if (mp_process_new(&p, hammer, s, &o) != 0 || mp_process_start(p) != 0)
        exit(1);
    hammer(s);
    mp_process_join(p, MP_FOREVER);
    double t = bench_now() - t0;
    mp_process_free(p);
    if (s->counter != 2 * per_proc) {
        fprintf(stderr, "bench_lock: lost updates: %ld of %ld\n", s->counter,
                2 * per_proc);
        exit(1);
    }
    return (double)(2 * per_proc) / t / 1e6;
}

int main(int argc, char **argv)
{
    if (mp_init(&argc, &argv, NULL) != 0)
        return 1;
    const char *impl = argc > 1 ? argv[1] : "multiproc";
    long n = (long)((argc > 2 ? atof(argv[2]) : 20) * 1e6);
    bench_select(argc > 3 ? argv[3] : NULL);
    struct shared *s = mp_shared_alloc(sizeof *s);
    s->raw = strcmp(impl, "raw") == 0;
    if (s->raw) {
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&s->mutex, &a);
    } else if (mp_lock_new(&s->lock) != 0) {
        return 1;
    }
    double v[5];
    if (bench_want("lock.uncontended")) {
        for (int i = 0; i < 5; i++)
            v[i] = uncontended(s, n / 5);
        bench_report("lock.uncontended", impl, bench_median(v, 5), "Mops/s");
    }
    if (bench_want("lock.contended_2proc")) {
        for (int i = 0; i < 5; i++)
            v[i] = contended(s, n / 10);
        bench_report("lock.contended_2proc", impl, bench_median(v, 5),
                     "Mops/s");
    }
    return 0;
}
