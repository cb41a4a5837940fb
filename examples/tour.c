/* tour.c - the examples of the Python multiprocessing post, in C with
   multiproc: run by `make run`. Each section prints what it does and how
   long it took. */
#include <multiproc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "tour: %s: %s (%s)\n", what, mp_strerror(r),
                mp_err_name(r));
        exit(1);
    }
}

/* The post's sleep(): report, sleep, report. */
static int sleeper(void *arg)
{
    double sec = *(double *)arg;
    pid_t pid = mp_process_pid(mp_current_process());
    printf("process %d: Sleeping for %g seconds\n", (int)pid, sec);
    fflush(stdout);
    struct timespec ts = {(time_t)sec, (long)((sec - (time_t)sec) * 1e9)};
    nanosleep(&ts, NULL);
    printf("process %d Finished sleeping\n", (int)pid);
    fflush(stdout);
    return 0;
}

static mp_process *start_sleeper(double sec, mp_start_method how)
{
    mp_process *p;
    mp_process_opts opts = {.start = how, .arg_size = sizeof sec};
    check(mp_process_new(&p, sleeper, &sec, &opts), "mp_process_new");
    check(mp_process_start(p), "mp_process_start");
    return p;
}

static void section(const char *title)
{
    printf("\n== %s ==\n", title);
    fflush(stdout);
}

/* Two processes started and not joined: the parent is done long before
   they wake up. */
static void process_without_join(void)
{
    section("Process: two sleepers, started but not joined");
    double t0 = now();
    mp_process *p1 = start_sleeper(1, MP_START_DEFAULT);
    mp_process *p2 = start_sleeper(1, MP_START_DEFAULT);
    double t1 = now();
    if (mp_process_name(mp_current_process())[0] == 'M') /* MainProcess */
        printf("Program finished in %.3f seconds\n", t1 - t0);
    fflush(stdout);
    /* A real program could return from main here: multiproc joins
       non-daemon children at exit, as Python does. The tour waits so the
       next section starts clean. */
    check(mp_process_join(p1, MP_FOREVER), "join");
    check(mp_process_join(p2, MP_FOREVER), "join");
    mp_process_free(p1);
    mp_process_free(p2);
}

/* Three sleepers started, then joined: about one second in all. */
static double three_joined(mp_start_method how)
{
    double t0 = now();
    mp_process *ps[3];
    for (int i = 0; i < 3; i++)
        ps[i] = start_sleeper(1, how);
    for (int i = 0; i < 3; i++) {
        check(mp_process_join(ps[i], MP_FOREVER), "join");
        mp_process_free(ps[i]);
    }
    double el = now() - t0;
    printf("Program finished in %.3f seconds\n", el);
    return el;
}

/* Start+join of a process that does nothing, to feel the cost of each
   method (make bench measures it properly). */
static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static double start_join_ms(mp_start_method how, int n)
{
    double t0 = now();
    for (int i = 0; i < n; i++) {
        mp_process *p;
        mp_process_opts opts = {.start = how};
        check(mp_process_new(&p, noop, NULL, &opts), "new");
        check(mp_process_start(p), "start");
        check(mp_process_join(p, MP_FOREVER), "join");
        mp_process_free(p);
    }
    return (now() - t0) * 1e3 / n;
}

/* counter - the post's shared counter: a plain long in the arena. */
struct counter {
    mp_lock *lock; /* NULL: increment without one */
    volatile long value;
    long rounds;
};

static int increment(void *arg)
{
    struct counter *c = arg;
    for (long i = 0; i < c->rounds; i++) {
        if (c->lock != NULL)
            check(mp_lock_acquire(c->lock, MP_FOREVER), "acquire");
        c->value = c->value + 1; /* read, add, write: not atomic */
        if (c->lock != NULL)
            check(mp_lock_release(c->lock), "release");
    }
    return 0;
}

/* Four processes add to one counter; returns the final value. */
static long count_with(mp_lock *lock, long rounds, double *secs)
{
    struct counter *c = mp_shared_alloc(sizeof *c);
    c->lock = lock;
    c->rounds = rounds;
    double t0 = now();
    mp_process *ps[4];
    for (int i = 0; i < 4; i++) {
        check(mp_process_new(&ps[i], increment, c, NULL), "new");
        check(mp_process_start(ps[i]), "start");
    }
    for (int i = 0; i < 4; i++) {
        check(mp_process_join(ps[i], MP_FOREVER), "join");
        mp_process_free(ps[i]);
    }
    *secs = now() - t0;
    long v = c->value;
    mp_shared_free(c);
    return v;
}

static void locks(void)
{
    section("Lock: four processes add 1 to a shared counter 1000000 times");
    long rounds = 1000000, want = 4 * rounds;
    double secs;
    long v = count_with(NULL, rounds, &secs);
    printf("without a lock: %ld (expected %ld)%s\n", v, want,
           v == want ? "" : ": updates were lost");
    mp_lock *lock;
    check(mp_lock_new(&lock), "mp_lock_new");
    v = count_with(lock, rounds, &secs);
    printf("with a lock:    %ld (expected %ld) in %.3f s\n", v, want, secs);
    mp_lock_free(lock);
}

/* chunk - a piece of work: sum the squares of [from, to). */
struct chunk {
    long from, to;
};

/* result - what a worker sends back. */
struct result {
    long from;
    double sum;
    int worker;
};

/* worker_args - a worker's queues and number. */
struct worker_args {
    mp_queue *work, *results;
    int id;
};

/* A worker: take chunks until the work queue is closed and drained. */
static int square_worker(void *arg)
{
    struct worker_args *w = arg;
    struct chunk c;
    while (mp_queue_get(w->work, &c, sizeof c, MP_FOREVER) == sizeof c) {
        struct result r = {c.from, 0, w->id};
        for (long i = c.from; i < c.to; i++)
            r.sum += (double)i * (double)i;
        check(mp_queue_put(w->results, &r, sizeof r, MP_FOREVER), "put");
    }
    return 0;
}

static void queues(void)
{
    section("Queue: 10 chunks of work shared by 4 processes through a queue");
    mp_queue *work, *results;
    check(mp_queue_new(&work, NULL), "mp_queue_new");
    check(mp_queue_new(&results, NULL), "mp_queue_new");
    double t0 = now();
    mp_process *ps[4];
    for (int i = 0; i < 4; i++) {
        struct worker_args a = {work, results, i + 1};
        mp_process_opts o = {.arg_size = sizeof a};
        check(mp_process_new(&ps[i], square_worker, &a, &o), "new");
        check(mp_process_start(ps[i]), "start");
    }
    const long n = 50000000, step = n / 10;
    for (long from = 0; from < n; from += step) {
        struct chunk c = {from, from + step};
        check(mp_queue_put(work, &c, sizeof c, MP_FOREVER), "put");
    }
    check(mp_queue_close(work), "close"); /* no more work: workers end */
    double total = 0;
    int per_worker[5] = {0};
    for (int i = 0; i < 10; i++) {
        struct result r;
        check((int)mp_queue_get(results, &r, sizeof r, MP_FOREVER), "get");
        total += r.sum;
        per_worker[r.worker]++;
    }
    for (int i = 0; i < 4; i++) {
        check(mp_process_join(ps[i], MP_FOREVER), "join");
        mp_process_free(ps[i]);
    }
    printf("sum of i^2 for i < %ld = %.6e, in %.3f s\n", n, total, now() - t0);
    printf("chunks done per worker: %d %d %d %d\n", per_worker[1],
           per_worker[2], per_worker[3], per_worker[4]);
    mp_queue_free(work);
    mp_queue_free(results);
}

/* Is n prime? Deliberately naive: about a millisecond for big n. */
static int is_prime(const void *in, void *out)
{
    uint64_t n = *(const uint64_t *)in;
    int prime = n >= 2;
    for (uint64_t d = 2; prime && d * d <= n; d++)
        prime = n % d != 0;
    *(int *)out = prime;
    return 0;
}

/* Draw a progress bar on one line. */
static void bar(size_t done, size_t total, void *arg)
{
    (void)arg;
    int width = 40, filled = (int)(done * (size_t)width / (total ? total : 1));
    printf("\r[%.*s%*s] %zu/%zu", filled,
           "########################################", width - filled, "", done,
           total);
    if (done == total)
        printf("\n");
    fflush(stdout);
}

static void pools(void)
{
    section("Pool: which of 12000 large numbers are prime, map with progress");
    enum { N = 12000 };
    uint64_t *nums = malloc(N * sizeof *nums);
    int *prime = malloc(N * sizeof *prime);
    for (int i = 0; i < N; i++)
        nums[i] = 1000000000000ull + (uint64_t)i * 2 + 1;

    double t0 = now();
    for (int i = 0; i < N / 10; i++)
        is_prime(&nums[i], &prime[i]);
    double one = (now() - t0) * 10;
    printf("one process would take about %.2f s\n", one);

    mp_pool *pool;
    check(mp_pool_new(&pool, NULL), "mp_pool_new");
    check(mp_pool_set_progress(pool, bar, NULL, 0.05), "progress");
    mp_map_opts mo = {.chunksize = 20};
    t0 = now();
    check(mp_pool_map(pool, is_prime, nums, sizeof *nums, prime, sizeof *prime,
                      N, &mo),
          "mp_pool_map");
    double t = now() - t0;
    int count = 0;
    for (int i = 0; i < N; i++)
        count += prime[i];
    printf("%d primes; %d workers took %.2f s (%.1fx)\n", count, mp_cpu_count(),
           t, one / t);
    check(mp_pool_close(pool), "close");
    check(mp_pool_join(pool, MP_FOREVER), "join");
    mp_pool_free(pool);
    free(nums);
    free(prime);
}

int main(int argc, char **argv)
{
    /* Like Python's `if __name__ == "__main__":` - spawned and forkserver
       children start here and never return from mp_init. */
    check(mp_init(&argc, &argv, NULL), "mp_init");
    printf("multiproc tour: %d CPUs usable\n", mp_cpu_count());

    process_without_join();

    section("Process: three sleepers, started then joined");
    three_joined(MP_START_DEFAULT);

    static const struct {
        mp_start_method how;
        const char *name;
    } methods[] = {{MP_START_FORK, "fork"},
                   {MP_START_SPAWN, "spawn"},
                   {MP_START_FORKSERVER, "forkserver"}};
    for (int i = 0; i < 3; i++) {
        char title[80];
        snprintf(title, sizeof title, "Process: the same with start method %s",
                 methods[i].name);
        section(title);
        three_joined(methods[i].how);
    }

    section("Process: what starting a process costs");
    for (int i = 0; i < 3; i++)
        printf("%-10s start+join of a no-op process: %.3f ms\n",
               methods[i].name, start_join_ms(methods[i].how, 20));

    locks();
    queues();
    pools();
    return 0;
}
