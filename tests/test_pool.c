/* test_pool.c - Pool: exact maps under every start method and chunksize,
   failing items, workers that crash or are killed, task timeouts,
   max_tasks_per_child, initializers, apply, imap, shutdown. */
#include "harness.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int triple(const void *in, void *out)
{
    *(int64_t *)out = *(const int64_t *)in * 3;
    return 0;
}

static int64_t *iota(size_t n)
{
    int64_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)i;
    return v;
}

static mp_pool *new_pool(int processes, mp_start_method m)
{
    mp_pool *p = NULL;
    mp_pool_opts o = {.processes = processes, .start = m};
    mp_ck_code(mp_pool_new(&p, &o), 0);
    return p;
}

/* Items of out that are not in * 3 (statuses other than 0 excused when
   allow is that code). */
static size_t wrong(const int64_t *in, const int64_t *out, const int *st,
                    size_t n, int allow)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (st != NULL && st[i] != 0) {
            bad += st[i] != allow;
            continue;
        }
        bad += out[i] != in[i] * 3;
    }
    return bad;
}

MP_TEST(million_items_every_method_and_chunksize)
{
    static const size_t sizes[] = {0, 1, 7, 100000};
    size_t n = 1000000;
    int64_t *in = iota(n), *out = malloc(n * sizeof *out);
    for (int k = 0; k < 3; k++) {
        mp_pool *pool = new_pool(2, mp_test_methods[k]);
        for (size_t s = 0; s < 4; s++) {
            memset(out, 0, n * sizeof *out);
            mp_map_opts mo = {.chunksize = sizes[s]};
            mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, &mo), 0);
            ck_assert_msg(wrong(in, out, NULL, n, 0) == 0,
                          "method %d chunksize %zu", k, sizes[s]);
        }
        mp_pool_close(pool);
        mp_ck_code(mp_pool_join(pool, MP_T(30)), 0);
        mp_pool_free(pool);
    }
    free(in);
    free(out);
}

MP_TEST(arena_arrays_used_in_place)
{
    size_t n = 100000;
    int64_t *in = mp_shared_alloc(n * 8), *out = mp_shared_alloc(n * 8);
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    int *st = mp_shared_alloc(n * sizeof(int));
    memset(st, 0xff, n * sizeof(int)); /* the map zeroes it */
    mp_pool *pool = new_pool(2, MP_START_SPAWN);
    mp_map_opts mo = {.status = st};
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, &mo), 0);
    ck_assert_int_eq(wrong(in, out, st, n, 0), 0);
    mp_pool_free(pool);
    mp_shared_free(in);
    mp_shared_free(out);
    mp_shared_free(st);
}

static int odd_fails(const void *in, void *out)
{
    int64_t v = *(const int64_t *)in;
    *(int64_t *)out = v * 3;
    return v % 1000 == 999 ? (int)(v % 7) + 1 : 0;
}

MP_TEST(failing_items_get_their_status)
{
    size_t n = 10000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    int *st = malloc(n * sizeof(int));
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_map_opts mo = {.chunksize = 13, .status = st};
    mp_ck_code(mp_pool_map(pool, odd_fails, in, 8, out, 8, n, &mo), MP_ETASK);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        int want = i % 1000 == 999 ? (int)(i % 7) + 1 : 0;
        bad += st[i] != want || out[i] != (int64_t)i * 3;
    }
    ck_assert_int_eq(bad, 0);
    /* Without a status array the answer is the same. */
    mp_ck_code(mp_pool_map(pool, odd_fails, in, 8, out, 8, n, NULL), MP_ETASK);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, 0, NULL), 0);
    mp_pool_free(pool);
    free(in);
    free(out);
    free(st);
}

/* Crash on item 4242 (segfault) and on items 100, 200 .. 500 (SIGKILL). */
static int crashy(const void *in, void *out)
{
    int64_t v = *(const int64_t *)in;
    if (v == 4242) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile int *)(uintptr_t)4096 = 1;
    }
    if (v >= 100 && v <= 500 && v % 100 == 0)
        raise(SIGKILL);
    *(int64_t *)out = v * 3;
    return 0;
}

MP_TEST(dead_workers_fail_only_their_items)
{
    size_t n = 20000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    int *st = malloc(n * sizeof(int));
    for (int k = 0; k < 3; k++) {
        mp_pool *pool = new_pool(2, mp_test_methods[k]);
        static const size_t sizes[] = {0, 1, 64};
        for (int s = 0; s < 3; s++) {
            memset(out, 0, n * 8);
            mp_map_opts mo = {.chunksize = sizes[s], .status = st};
            mp_ck_code(mp_pool_map(pool, crashy, in, 8, out, 8, n, &mo),
                       MP_EWORKERDIED);
            size_t died = 0, bad = 0;
            for (size_t i = 0; i < n; i++) {
                int culprit =
                    i == 4242 || (i >= 100 && i <= 500 && i % 100 == 0);
                if (culprit)
                    died += st[i] == MP_EWORKERDIED;
                else
                    bad += st[i] != 0 || out[i] != (int64_t)i * 3;
            }
            ck_assert_msg(died == 6 && bad == 0, "method %d: died %zu bad %zu",
                          k, died, bad);
            /* The pool goes on: another batch, all correct. */
            mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, NULL), 0);
            ck_assert_int_eq(wrong(in, out, NULL, n, 0), 0);
        }
        struct mp_pool_stats ps;
        mp_ck_code(mp_pool_stats(pool, &ps), 0);
        ck_assert_uint_eq(ps.died, 18);
        mp_pool_free(pool);
    }
    free(in);
    free(out);
    free(st);
}

static int apply_crash(const void *arg, size_t len, mp_result *res)
{
    (void)len;
    (void)res;
    if (*(const int *)arg == 1)
        raise(SIGKILL);
    if (*(const int *)arg == 2)
        abort();
    return 0;
}

MP_TEST(dead_worker_fails_its_apply_with_the_signal)
{
    mp_pool *pool = new_pool(2, MP_START_FORK);
    int what = 1;
    mp_async *a;
    mp_ck_code(mp_pool_apply_async(pool, apply_crash, &what, sizeof what, &a),
               0);
    mp_ck_code(mp_async_get(a, NULL, NULL, MP_T(30)), MP_EWORKERDIED);
    ck_assert_int_eq(mp_async_signal(a), SIGKILL);
    ck_assert_int_eq(mp_async_successful(a), 0);
    mp_async_free(a);
    what = 2;
    mp_ck_code(mp_pool_apply(pool, apply_crash, &what, sizeof what, NULL, NULL),
               MP_EWORKERDIED);
    what = 0;
    mp_ck_code(mp_pool_apply(pool, apply_crash, &what, sizeof what, NULL, NULL),
               0);
    mp_pool_free(pool);
}

static int sleepy(const void *in, void *out)
{
    int64_t v = *(const int64_t *)in;
    if (v == 3)
        mp_test_sleep(60);
    *(int64_t *)out = v * 3;
    return 0;
}

MP_TEST(task_timeout_kills_the_item)
{
    mp_pool *pool;
    mp_pool_opts o = {.processes = 2, .task_timeout = 0.5};
    mp_ck_code(mp_pool_new(&pool, &o), 0);
    size_t n = 50;
    int64_t *in = iota(n), *out = calloc(n, 8);
    int st[50];
    mp_map_opts mo = {.chunksize = 1, .status = st};
    double t0 = mp_test_now();
    mp_ck_code(mp_pool_map(pool, sleepy, in, 8, out, 8, n, &mo), MP_ETIMEDOUT);
    double el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.5 && el < MP_T(5), "took %.3f s", el);
    mp_ck_code(st[3], MP_ETIMEDOUT);
    st[3] = 0;
    out[3] = 9;
    ck_assert_int_eq(wrong(in, out, st, n, 0), 0);
    struct mp_pool_stats ps;
    mp_pool_stats(pool, &ps);
    ck_assert_uint_eq(ps.timed_out, 1);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, NULL), 0);
    mp_pool_free(pool);
    free(in);
    free(out);
}

static int whoami(const void *in, void *out)
{
    (void)in;
    *(int64_t *)out = getpid();
    return 0;
}

MP_TEST(max_tasks_per_child_replaces_workers)
{
    mp_pool *pool;
    mp_pool_opts o = {.processes = 2, .max_tasks_per_child = 3};
    mp_ck_code(mp_pool_new(&pool, &o), 0);
    size_t n = 60;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_map_opts mo = {.chunksize = 1};
    mp_ck_code(mp_pool_map(pool, whoami, in, 8, out, 8, n, &mo), 0);
    /* Each worker ran at most 3 tasks: at least 20 different pids. */
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        int seen = 0, count = 0;
        for (size_t j = 0; j < i; j++)
            seen |= out[j] == out[i];
        for (size_t j = 0; j < n; j++)
            count += out[j] == out[i];
        distinct += !seen;
        ck_assert_int_le(count, 3);
    }
    ck_assert_uint_ge(distinct, 20);
    struct mp_pool_stats ps;
    mp_pool_stats(pool, &ps);
    ck_assert_uint_ge(ps.retired, 18);
    ck_assert_uint_eq(ps.died, 0);
    mp_pool_free(pool);
    free(in);
    free(out);
}

static int init_ok(void *arg)
{
    return *(int *)arg == 7 ? 0 : 1;
}

static int init_crash(void *arg)
{
    (void)arg;
    raise(SIGKILL);
    return 0;
}

MP_TEST(failing_initializer_leaves_no_child)
{
    mp_pool *pool = NULL;
    int seven = 7, six = 6;
    for (int k = 0; k < 3; k++) {
        mp_pool_opts o = {.processes = 3,
                          .start = mp_test_methods[k],
                          .initializer = init_ok,
                          .initarg = &six,
                          .initarg_size = sizeof six};
        mp_ck_code(mp_pool_new(&pool, &o), MP_ETASK);
        ck_assert_ptr_null(pool);
        o.initializer = init_crash;
        mp_ck_code(mp_pool_new(&pool, &o), MP_EWORKERDIED);
        o.initializer = init_ok;
        o.initarg = &seven;
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        mp_pool_free(pool);
        pool = NULL;
    }
    /* The harness fails the test if any process is left. */
}

MP_TEST(close_join_terminate_free_leave_no_child)
{
    size_t n = 1000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_pool *pool = new_pool(3, MP_START_FORK);
    mp_ck_code(mp_pool_join(pool, 0), MP_ESTATE);
    mp_ck_code(mp_pool_close(pool), 0);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, NULL), MP_ECLOSED);
    mp_ck_code(mp_pool_join(pool, MP_T(30)), 0);
    mp_pool_free(pool);
    /* terminate with work going on */
    pool = new_pool(2, MP_START_FORKSERVER);
    mp_async *a;
    int64_t slow[4] = {3, 3, 3, 3};
    mp_ck_code(mp_pool_map_async(pool, sleepy, slow, 8, out, 8, 4, NULL, &a),
               0);
    mp_test_sleep(MP_T(0.1)); /* the work has started */
    mp_ck_code(mp_pool_terminate(pool), 0);
    mp_ck_code(mp_async_get(a, NULL, NULL, MP_T(10)), MP_EBROKEN);
    mp_async_free(a);
    mp_ck_code(mp_pool_join(pool, MP_T(10)), 0);
    mp_pool_free(pool);
    /* free of a running pool terminates it; handles outlive it */
    pool = new_pool(2, MP_START_SPAWN);
    mp_ck_code(mp_pool_map_async(pool, sleepy, slow, 8, out, 8, 4, NULL, &a),
               0);
    mp_pool_free(pool);
    mp_ck_code(mp_async_get(a, NULL, NULL, 0), MP_EBROKEN);
    mp_async_free(a);
    free(in);
    free(out);
}

static int echo(const void *arg, size_t len, mp_result *res)
{
    return mp_result_set(res, arg, len);
}

static int fail_with(const void *arg, size_t len, mp_result *res)
{
    (void)len;
    (void)res;
    return *(const int *)arg;
}

MP_TEST(apply_and_async_handles)
{
    mp_pool *pool = new_pool(2, MP_START_FORK);
    void *r = NULL;
    size_t len = 0;
    mp_ck_code(mp_pool_apply(pool, echo, "hello", 5, &r, &len), 0);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(memcmp(r, "hello", 5), 0);
    free(r);
    /* A big argument and result. */
    size_t big = 3 << 20;
    char *b = malloc(big);
    for (size_t i = 0; i < big; i++)
        b[i] = (char)(i * 7);
    mp_ck_code(mp_pool_apply(pool, echo, b, big, &r, &len), 0);
    ck_assert_uint_eq(len, big);
    ck_assert_int_eq(memcmp(r, b, big), 0);
    free(r);
    free(b);
    /* An error of the function itself. */
    int e = 42;
    mp_async *a;
    mp_ck_code(mp_pool_apply_async(pool, fail_with, &e, sizeof e, &a), 0);
    mp_ck_code(mp_async_wait(a, MP_T(30)), 0);
    ck_assert_int_eq(mp_async_ready(a), 1);
    ck_assert_int_eq(mp_async_successful(a), 0);
    mp_ck_code(mp_async_get(a, NULL, NULL, 0), MP_ETASK);
    ck_assert_int_eq(mp_async_error(a), 42);
    mp_async_free(a);
    /* Not ready yet: successful says so, get says busy. */
    int64_t slow = 3, res64;
    mp_ck_code(
        mp_pool_map_async(pool, sleepy, &slow, 8, &res64, 8, 1, NULL, &a), 0);
    ck_assert_int_eq(mp_async_ready(a), 0);
    mp_ck_code(mp_async_successful(a), MP_ESTATE);
    mp_ck_code(mp_async_wait(a, 0.1), MP_EBUSY);
    mp_ck_code(mp_async_get(a, NULL, NULL, 0.1), MP_EBUSY);
    mp_async_free(a); /* detached: the sleeping item is dropped */
    /* Many at once. */
    enum { N = 2000 };
    mp_async **as = malloc(N * sizeof *as);
    for (int i = 0; i < N; i++)
        mp_ck_code(mp_pool_apply_async(pool, echo, &i, sizeof i, &as[i]), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        void *p = NULL;
        bad += mp_async_get(as[i], &p, &len, MP_T(30)) != 0 ||
               len != sizeof i || *(int *)p != i;
        free(p);
        mp_async_free(as[i]);
    }
    free(as);
    ck_assert_int_eq(bad, 0);
    mp_pool_terminate(pool);
    mp_pool_free(pool);
}

/* gen - a generator that counts what it was asked for. */
struct gen {
    int64_t next, end;
    int64_t *taken_by_now; /* how far the consumer is */
    int64_t max_ahead;     /* the most items read ahead of the consumer */
};

static int gen_next(void *ctx, void *item)
{
    struct gen *g = ctx;
    if (g->next == g->end)
        return 0;
    int64_t ahead = g->next - *g->taken_by_now;
    if (ahead > g->max_ahead)
        g->max_ahead = ahead;
    *(int64_t *)item = g->next++;
    return 1;
}

MP_TEST(imap_ordered_and_unordered)
{
    size_t n = 5000;
    int64_t *in = iota(n);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    for (int ordered = 0; ordered < 2; ordered++) {
        mp_imap *it;
        mp_imap_opts o = {.ordered = ordered, .chunksize = 16};
        mp_ck_code(mp_pool_imap(pool, triple, in, 8, 8, n, &o, &it), 0);
        unsigned char *seen = calloc(n, 1);
        size_t count = 0, idx = 0, last = 0, inorder = 1;
        int64_t v;
        int r;
        while ((r = mp_imap_next(it, &v, &idx, MP_T(30))) == 0) {
            ck_assert_uint_lt(idx, n);
            ck_assert_int_eq(v, (int64_t)idx * 3);
            seen[idx]++;
            if (count > 0 && idx != last + 1)
                inorder = 0;
            last = idx;
            count++;
        }
        mp_ck_code(r, MP_EOF);
        ck_assert_uint_eq(count, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_eq(seen[i], 1);
        if (ordered)
            ck_assert_int_eq(inorder, 1);
        free(seen);
        mp_imap_free(it);
    }
    /* From a generator: never more than the window read ahead. */
    int64_t taken = 0;
    struct gen g = {0, 3000, &taken, 0};
    mp_imap_opts o = {.ordered = 1,
                      .chunksize = 4,
                      .window = 32,
                      .gen = gen_next,
                      .gen_ctx = &g};
    mp_imap *it;
    mp_ck_code(mp_pool_imap(pool, triple, NULL, 8, 8, 0, &o, &it), 0);
    int64_t v;
    size_t idx;
    while (mp_imap_next(it, &v, &idx, MP_T(30)) == 0) {
        ck_assert_int_eq(v, (int64_t)idx * 3);
        taken = (int64_t)idx + 1;
    }
    ck_assert_int_eq(taken, 3000);
    ck_assert_int_le(g.max_ahead, 32);
    mp_imap_free(it);
    /* Failing items come out with their index; freeing early is fine. */
    mp_ck_code(mp_pool_imap(pool, odd_fails, in, 8, 8, n, NULL, &it), 0);
    int fails = 0, r;
    while ((r = mp_imap_next(it, &v, &idx, MP_T(30))) != MP_EOF) {
        if (r == MP_ETASK) {
            fails++;
            ck_assert_uint_eq(idx % 1000, 999);
        } else {
            mp_ck_code(r, 0);
        }
    }
    ck_assert_int_eq(fails, 5);
    mp_imap_free(it);
    mp_ck_code(mp_pool_imap(pool, triple, in, 8, 8, n, NULL, &it), 0);
    mp_ck_code(mp_imap_next(it, &v, &idx, MP_T(30)), 0);
    mp_imap_free(it);
    mp_pool_free(pool);
    free(in);
}

/* progress - what the callback saw. */
struct progress {
    size_t calls, last, total;
    int monotonic;
};

static void on_progress(size_t done, size_t total, void *arg)
{
    struct progress *p = arg;
    if (done < p->last)
        p->monotonic = 0;
    p->last = done;
    p->total = total;
    p->calls++;
}

static int slow_item(const void *in, void *out)
{
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
    return triple(in, out);
}

MP_TEST(progress_callback)
{
    size_t n = 2000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    struct progress p = {0, 0, 0, 1};
    mp_ck_code(mp_pool_set_progress(pool, on_progress, &p, 0.02), 0);
    mp_map_opts mo = {.chunksize = 10};
    mp_ck_code(mp_pool_map(pool, slow_item, in, 8, out, 8, n, &mo), 0);
    ck_assert_uint_ge(p.calls, 3);
    ck_assert_int_eq(p.monotonic, 1);
    ck_assert_uint_eq(p.last, n);
    ck_assert_uint_eq(p.total, n);
    mp_pool_free(pool);
    free(in);
    free(out);
}

/* killer - a thread that SIGKILLs random children of ours. */
struct killer {
    volatile int stop;
    int kills;
};

static void *kill_randomly(void *arg)
{
    struct killer *k = arg;
    unsigned seed = (unsigned)time(NULL);
    while (!k->stop) {
        struct timespec ts = {0, (long)(1000000 + rand_r(&seed) % 4000000)};
        nanosleep(&ts, NULL);
        char path[64], buf[1024] = {0};
        snprintf(path, sizeof path, "/proc/%d/task/%d/children", getpid(),
                 getpid());
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[got] = '\0';
        int pids[64], n = 0;
        for (char *s = strtok(buf, " \n"); s && n < 64; s = strtok(NULL, " \n"))
            pids[n++] = atoi(s);
        if (n > 0 && kill(pids[rand_r(&seed) % n], SIGKILL) == 0)
            k->kills++;
    }
    return NULL;
}

static int busy_item(const void *in, void *out)
{
    volatile int64_t x = 0;
    for (int i = 0; i < 300; i++)
        x += i;
    (void)x;
    return triple(in, out);
}

MP_TEST(chaos_random_kills_never_hang)
{
    size_t n = 100000;
    int64_t *in = iota(n), *out = malloc(n * 8);
    int *st = malloc(n * sizeof(int));
    mp_pool *pool = new_pool(2, MP_START_FORK);
    int total_kills = 0;
    for (int trial = 0; trial < 20; trial++) {
        memset(out, 0, n * 8);
        struct killer k = {0, 0};
        pthread_t t;
        pthread_create(&t, NULL, kill_randomly, &k);
        mp_map_opts mo = {.chunksize = (size_t)(trial % 3) * 50, .status = st};
        int r = mp_pool_map(pool, busy_item, in, 8, out, 8, n, &mo);
        k.stop = 1;
        pthread_join(t, NULL);
        total_kills += k.kills;
        ck_assert_msg(r == 0 || r == MP_EWORKERDIED, "trial %d: %s", trial,
                      mp_err_name(r));
        ck_assert_msg(wrong(in, out, st, n, MP_EWORKERDIED) == 0,
                      "trial %d: wrong results", trial);
    }
    ck_assert_int_gt(total_kills, 0);
    /* Still a working pool. */
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, NULL), 0);
    mp_pool_free(pool);
    free(in);
    free(out);
    free(st);
}

/* storm - whether replacement workers should die in their initializer. */
static int *storm_flag;

static int init_maybe_die(void *arg)
{
    (void)arg;
    if (*storm_flag)
        raise(SIGKILL);
    return 0;
}

MP_TEST(restart_storm_is_an_error)
{
    storm_flag = mp_shared_alloc(sizeof *storm_flag);
    mp_pool *pool;
    mp_pool_opts o = {.processes = 2, .initializer = init_maybe_die};
    mp_ck_code(mp_pool_new(&pool, &o), 0);
    *storm_flag = 1; /* every replacement now dies before working */
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    /* Kill the workers: their replacements keep dying. */
    mp_async *a;
    int64_t slow = 3;
    mp_ck_code(mp_pool_map_async(pool, sleepy, &slow, 8, out, 8, 1, NULL, &a),
               0);
    mp_test_sleep(MP_T(0.1)); /* a worker has taken the task */
    char path[64], buf[256] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
    FILE *f = fopen(path, "r");
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    for (char *s = strtok(buf, " \n"); s; s = strtok(NULL, " \n"))
        kill(atoi(s), SIGKILL);
    double t0 = mp_test_now();
    int r = mp_async_get(a, NULL, NULL, MP_T(30));
    ck_assert_msg(r == MP_EWORKERDIED || r == MP_EBROKEN, "%s", mp_err_name(r));
    mp_async_free(a);
    int m = MP_OK;
    for (int i = 0; i < 50 && m != MP_EBROKEN; i++)
        m = mp_pool_map(pool, triple, in, 8, out, 8, 4, NULL);
    mp_ck_code(m, MP_EBROKEN);
    ck_assert(mp_test_now() - t0 < MP_T(20));
    mp_pool_free(pool);
    mp_shared_free(storm_flag);
}

static int parent_with_pool(void *arg)
{
    (void)arg;
    mp_pool *pool;
    mp_pool_opts o = {.processes = 2};
    if (mp_pool_new(&pool, &o) != 0)
        return 1;
    int64_t in[8] = {3, 3, 3, 3, 3, 3, 3, 3}, out[8];
    mp_pool_map(pool, sleepy, in, 8, out, 8, 8, NULL); /* 60 s */
    return 2;
}

MP_TEST(interrupted_parent_leaves_no_worker)
{
    /* Ctrl-C: the parent of a pool dies of SIGINT; its workers die with
       it (they come back to us, a subreaper: we reap them). */
    mp_process *p = mp_test_start(parent_with_pool, NULL, 0, MP_START_FORK);
    mp_test_sleep(MP_T(0.3)); /* its pool is running by then */
    kill(mp_process_pid(p), SIGINT);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGINT);
    double t0 = mp_test_now();
    int left = 1;
    while (left && mp_test_now() - t0 < MP_T(5)) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        char path[64], buf[256] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
        FILE *f = fopen(path, "r");
        left = f != NULL && fread(buf, 1, sizeof buf - 1, f) > 0;
        if (f)
            fclose(f);
        mp_test_sleep(0.01);
    }
    ck_assert_int_eq(left, 0);
}

static int slow3(const void *in, void *out)
{
    int64_t v = *(const int64_t *)in;
    if (v == 0)
        mp_test_sleep(MP_T(1.0)); /* still running at the close */
    *(int64_t *)out = v * 3;
    return 0;
}

MP_TEST(close_lets_running_work_finish)
{
    /* Found in review: workers leaving because the pool closed were taken
       for a restart storm, which cancelled the work still running. */
    mp_pool *pool = new_pool(2, MP_START_FORK);
    int64_t in[2] = {0, 1}, out[2] = {-1, -1};
    mp_async *a;
    mp_ck_code(mp_pool_map_async(pool, slow3, in, 8, out, 8, 2, NULL, &a), 0);
    mp_test_sleep(MP_T(0.1)); /* the work has started */
    mp_ck_code(mp_pool_close(pool), 0);
    mp_ck_code(mp_async_get(a, NULL, NULL, MP_T(30)), 0);
    ck_assert(out[0] == 0 && out[1] == 3);
    mp_async_free(a);
    mp_ck_code(mp_pool_join(pool, MP_T(30)), 0);
    struct mp_pool_stats ps;
    mp_pool_stats(pool, &ps);
    ck_assert_uint_eq(ps.started, 2); /* no restarts */
    mp_pool_free(pool);
}

MP_TEST(handles_outlive_their_pool)
{
    /* Found in review: a handle freed after its pool touched freed
       memory (ASan would see it). */
    int64_t in[4] = {1, 2, 3, 4}, out[4];
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_async *done, *pending;
    mp_ck_code(mp_pool_map_async(pool, triple, in, 8, out, 8, 4, NULL, &done),
               0);
    mp_ck_code(mp_async_get(done, NULL, NULL, MP_T(30)), 0);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, 4, NULL), 0);
    int64_t slow = 3;
    mp_ck_code(
        mp_pool_map_async(pool, sleepy, &slow, 8, out, 8, 1, NULL, &pending),
        0);
    mp_imap *it;
    mp_ck_code(mp_pool_imap(pool, triple, in, 8, 8, 4, NULL, &it), 0);
    mp_pool_free(pool);
    ck_assert_int_eq(mp_async_ready(done), 1);
    mp_ck_code(mp_async_get(pending, NULL, NULL, 0), MP_EBROKEN);
    mp_async_free(done);
    mp_async_free(pending);
    int64_t v;
    int r;
    while ((r = mp_imap_next(it, &v, NULL, MP_T(1))) != MP_EOF)
        ck_assert(r == 0 || r == MP_EBROKEN);
    mp_imap_free(it);
}

static void progress_calls_pool(size_t done, size_t total, void *arg)
{
    (void)done;
    (void)total;
    struct mp_pool_stats st;
    mp_pool_stats(arg, &st); /* would deadlock under the pool's lock */
}

MP_TEST(progress_callback_may_call_the_pool)
{
    size_t n = 400;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_ck_code(mp_pool_set_progress(pool, progress_calls_pool, pool, 0.01), 0);
    mp_map_opts mo = {.chunksize = 4};
    mp_ck_code(mp_pool_map(pool, slow_item, in, 8, out, 8, n, &mo), 0);
    ck_assert_int_eq(wrong(in, out, NULL, n, 0), 0);
    mp_pool_free(pool);
    free(in);
    free(out);
}

MP_TEST(huge_chunksize_is_one_chunk)
{
    size_t n = 1000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_map_opts mo = {.chunksize = SIZE_MAX};
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, &mo), 0);
    ck_assert_int_eq(wrong(in, out, NULL, n, 0), 0);
    mp_imap *it;
    mp_imap_opts io = {.chunksize = SIZE_MAX / 2};
    mp_ck_code(mp_pool_imap(pool, triple, in, 8, 8, n, &io, &it), MP_EINVAL);
    mp_pool_free(pool);
    free(in);
    free(out);
}

MP_TEST(imap_after_close_keeps_its_results)
{
    /* Found in review: results fed before a close were reported as
       MP_ECLOSED and the rest dropped. */
    size_t n = 20;
    int64_t *in = iota(n);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_imap *it;
    mp_imap_opts o = {.ordered = 1, .window = 4};
    mp_ck_code(mp_pool_imap(pool, triple, in, 8, 8, n, &o, &it), 0);
    mp_ck_code(mp_pool_close(pool), 0);
    int64_t v;
    size_t idx, got = 0;
    int r;
    while ((r = mp_imap_next(it, &v, &idx, MP_T(30))) == 0) {
        ck_assert_int_eq(v, (int64_t)idx * 3);
        got++;
    }
    ck_assert_uint_eq(got, 4); /* the window that was in flight */
    mp_ck_code(r, MP_ECLOSED);
    mp_ck_code(mp_imap_next(it, &v, &idx, 0), MP_EOF);
    mp_imap_free(it);
    mp_pool_free(pool);
    free(in);
}

MP_TEST(bad_inputs)
{
    mp_pool *pool = NULL;
    mp_pool_opts neg = {.processes = -1};
    mp_pool_opts nan_to = {.task_timeout = NAN};
    mp_ck_code(mp_pool_new(NULL, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_new(&pool, &neg), MP_EINVAL);
    mp_ck_code(mp_pool_new(&pool, &nan_to), MP_EINVAL);
    int64_t in[2] = {1, 2}, out[2];
    mp_async *a;
    mp_ck_code(mp_pool_map(NULL, triple, in, 8, out, 8, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_close(NULL), MP_EINVAL);
    mp_ck_code(mp_pool_terminate(NULL), MP_EINVAL);
    mp_ck_code(mp_pool_join(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_async_wait(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_async_ready(NULL), MP_EINVAL);
    mp_ck_code(mp_async_get(NULL, NULL, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_imap_next(NULL, out, NULL, 0), MP_EINVAL);
    mp_pool_free(NULL);
    mp_async_free(NULL);
    mp_imap_free(NULL);
    pool = new_pool(1, MP_START_FORK);
    mp_ck_code(mp_pool_map(pool, NULL, in, 8, out, 8, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_map(pool, triple, NULL, 8, out, 8, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, NULL, 8, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_map_async(pool, triple, in, 8, out, 8, 2, NULL, NULL),
               MP_EINVAL);
    mp_ck_code(mp_pool_apply_async(pool, NULL, in, 8, &a), MP_EINVAL);
    mp_ck_code(mp_pool_apply_async(pool, echo, NULL, 8, &a), MP_EINVAL);
    mp_ck_code(mp_pool_set_progress(pool, on_progress, NULL, NAN), MP_EINVAL);
    mp_ck_code(mp_result_set(NULL, in, 1), MP_EINVAL);
    mp_pool_free(pool);
}

/* ---- contexts, ranges, error reports ----------------------------------
 */

/* lin - the context of the linear maps: out = in * mul + add. */
struct lin {
    int64_t mul, add;
};

static int lin_item(const void *ctx, const void *in, void *out)
{
    const struct lin *c = ctx;
    *(int64_t *)out = *(const int64_t *)in * c->mul + c->add;
    return 0;
}

/* A global set in the parent after start: spawn and forkserver workers
   never see it, which is what contexts are for. */
static int64_t parent_only = 1;

MP_TEST(map_ctx_reaches_workers_under_every_method)
{
    size_t n = 10000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    struct lin pool_ctx = {3, 1}, call_ctx = {5, parent_only};
    parent_only = 7; /* too late for a copy of it to travel */
    for (int k = 0; k < 3; k++) {
        mp_pool *pool;
        mp_pool_opts o = {.processes = 2,
                          .start = mp_test_methods[k],
                          .ctx = &pool_ctx,
                          .ctx_size = sizeof pool_ctx};
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        static const size_t sizes[] = {0, 1};
        for (int s = 0; s < 2; s++) {
            /* The pool's context when the call gives none... */
            mp_map_opts mo = {.chunksize = sizes[s]};
            mp_ck_code(mp_pool_map_ctx(pool, lin_item, in, 8, out, 8, n, &mo),
                       0);
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(out[i], (int64_t)i * 3 + 1);
            /* ... the call's, copied, when it gives one. */
            mo.ctx = &call_ctx;
            mo.ctx_size = sizeof call_ctx;
            mp_ck_code(mp_pool_map_ctx(pool, lin_item, in, 8, out, 8, n, &mo),
                       0);
            for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(out[i], (int64_t)i * 5 + 1);
        }
        /* An arena pointer travels as it is (ctx_size 0). */
        struct lin *shared = mp_shared_alloc(sizeof *shared);
        *shared = (struct lin){2, 2};
        mp_map_opts mo = {.ctx = shared};
        mp_ck_code(mp_pool_map_ctx(pool, lin_item, in, 8, out, 8, n, &mo), 0);
        ck_assert_int_eq(out[n - 1], (int64_t)(n - 1) * 2 + 2);
        mp_shared_free(shared);
        mp_pool_free(pool);
    }
    mp_pool_opts bad = {.ctx_size = 8};
    mp_pool *p;
    mp_ck_code(mp_pool_new(&p, &bad), MP_EINVAL);
    free(in);
    free(out);
}

/* A range item: i squared plus the context's add; item 1077 fails. */
static int square(const void *ctx, size_t i, void *out)
{
    if (i == 1077)
        return 42;
    *(int64_t *)out = (int64_t)(i * i) + ((const struct lin *)ctx)->add;
    return 0;
}

MP_TEST(range_map_has_no_input_and_fails_per_item)
{
    size_t n = 100000, start = 1000;
    int64_t *out = calloc(n, 8);
    int *st = calloc(n, sizeof(int));
    struct lin c = {0, 9};
    for (int k = 0; k < 3; k++) {
        mp_pool *pool = new_pool(2, mp_test_methods[k]);
        mp_task_error e;
        mp_map_opts mo = {
            .status = st, .ctx = &c, .ctx_size = sizeof c, .error = &e};
        mp_ck_code(mp_pool_map_range(pool, square, start, n, out, 8, &mo),
                   MP_ETASK);
        ck_assert_uint_eq(e.index, 1077);
        mp_ck_code(e.code, MP_ETASK);
        ck_assert_int_eq(e.error, 42);
        ck_assert_int_eq(st[1077 - start], 42);
        for (size_t i = 0; i < n; i++)
            if (i + start != 1077)
                ck_assert_int_eq(out[i],
                                 (int64_t)((i + start) * (i + start)) + 9);
        /* From 1078 on nothing fails: the report says so. */
        mo.chunksize = 1;
        mp_ck_code(mp_pool_map_range(pool, square, 1078, 1000, out, 8, &mo), 0);
        ck_assert_uint_eq(e.index, SIZE_MAX);
        mp_ck_code(e.code, 0);
        mp_pool_free(pool);
    }
    mp_pool *pool = new_pool(1, MP_START_FORK);
    mp_ck_code(mp_pool_map_range(pool, square, SIZE_MAX - 5, 10, NULL, 0, NULL),
               MP_EINVAL);
    mp_pool_free(pool);
    free(out);
    free(st);
}

MP_TEST(error_report_names_item_value_and_signal)
{
    size_t n = 20000;
    int64_t *in = iota(n), *out = calloc(n, 8);
    mp_pool *pool = new_pool(2, MP_START_FORK);
    mp_task_error e;
    mp_map_opts mo = {.error = &e}; /* no status array asked for */
    mp_ck_code(mp_pool_map(pool, odd_fails, in, 8, out, 8, n, &mo), MP_ETASK);
    ck_assert_uint_eq(e.index, 999);
    mp_ck_code(e.code, MP_ETASK);
    ck_assert_int_eq(e.error, 999 % 7 + 1);
    mp_ck_code(mp_pool_map(pool, crashy, in, 8, out, 8, n, &mo),
               MP_EWORKERDIED);
    ck_assert_uint_eq(e.index, 100);
    mp_ck_code(e.code, MP_EWORKERDIED);
    ck_assert_int_ne(e.signal, 0);
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, n, &mo), 0);
    ck_assert_uint_eq(e.index, SIZE_MAX);
    mp_pool_free(pool);
    free(in);
    free(out);
}

/* A byte-string item: its bytes reversed, with the context's prefix;
   "fail" fails with 7, "crash" kills its worker. */
static int reverse(const void *ctx, const void *in, size_t len, mp_result *res)
{
    if (len == 4 && memcmp(in, "fail", 4) == 0)
        return 7;
    if (len == 5 && memcmp(in, "crash", 5) == 0)
        raise(SIGKILL);
    const char *pre = ctx;
    size_t p = strlen(pre);
    char buf[256];
    memcpy(buf, pre, p);
    for (size_t i = 0; i < len; i++)
        buf[p + i] = ((const char *)in)[len - 1 - i];
    return mp_result_set(res, buf, p + len);
}

MP_TEST(byte_string_map_in_order_with_statuses)
{
    enum { N = 5000 };
    static char text[N][101];
    mp_bytes in[N];
    char *shared = mp_shared_alloc(N * 101); /* half of them in the arena */
    for (int i = 0; i < N; i++) {
        int len = i % 101; /* 0 to 100 bytes */
        char *d = i % 2 ? shared + i * 101 : text[i];
        for (int k = 0; k < len; k++)
            d[k] = (char)('a' + (i + k) % 26);
        in[i] = (mp_bytes){d, (size_t)len};
    }
    in[1234] = (mp_bytes){"fail", 4};
    in[4321] = (mp_bytes){"crash", 5};
    int st[N];
    for (int k = 0; k < 3; k++) {
        mp_pool *pool = new_pool(2, mp_test_methods[k]);
        mp_task_error e;
        mp_map_opts mo = {.status = st, .ctx = ">", .ctx_size = 2, .error = &e};
        mp_bytes *out = NULL;
        mp_ck_code(mp_pool_map_bytes(pool, reverse, in, N, &out, &mo),
                   MP_ETASK);
        ck_assert_ptr_nonnull(out);
        ck_assert_uint_eq(e.index, 1234);
        ck_assert_int_eq(e.error, 7);
        mp_ck_code(st[4321], MP_EWORKERDIED);
        for (int i = 0; i < N; i++) {
            if (i == 1234 || i == 4321) {
                ck_assert_ptr_null(out[i].data);
                continue;
            }
            mp_ck_code(st[i], 0);
            ck_assert_uint_eq(out[i].len, in[i].len + 1);
            const char *o = out[i].data, *s = in[i].data;
            ck_assert_int_eq(o[0], '>');
            for (size_t b = 0; b < in[i].len; b++)
                ck_assert_int_eq(o[1 + b], s[in[i].len - 1 - b]);
        }
        mp_bytes_free(out); /* every result at once */
        mp_bytes none[1] = {{NULL, 0}};
        mp_ck_code(mp_pool_map_bytes(pool, reverse, none, 1, &out, &mo), 0);
        ck_assert_uint_eq(out[0].len, 1); /* just the prefix */
        mp_bytes_free(out);
        mp_pool_free(pool);
    }
    mp_shared_free(shared);
    mp_bytes bad = {NULL, 3};
    mp_bytes *o2;
    mp_pool *pool = new_pool(1, MP_START_FORK);
    mp_ck_code(mp_pool_map_bytes(pool, reverse, &bad, 1, &o2, NULL), MP_EINVAL);
    mp_ck_code(mp_pool_map_bytes(pool, reverse, in, 1, NULL, NULL), MP_EINVAL);
    mp_pool_free(pool);
}

/* An apply with a context: the argument times the context's factor;
   an argument of -1 fails with 5, -2 kills its worker. */
static int scale_apply(const void *ctx, const void *arg, size_t len,
                       mp_result *res)
{
    (void)len;
    int64_t v = *(const int64_t *)arg;
    if (v == -1)
        return 5;
    if (v == -2)
        raise(SIGKILL);
    v *= ((const struct lin *)ctx)->mul;
    return mp_result_set(res, &v, sizeof v);
}

MP_TEST(apply_and_imap_take_a_context_and_report_errors)
{
    struct lin pool_ctx = {10, 0}, call_ctx = {100, 0};
    for (int k = 0; k < 3; k++) {
        mp_pool *pool;
        mp_pool_opts o = {.processes = 2,
                          .start = mp_test_methods[k],
                          .ctx = &pool_ctx,
                          .ctx_size = sizeof pool_ctx};
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        int64_t v = 7, *got = NULL;
        size_t len = 0;
        mp_ck_code(mp_pool_apply_ctx(pool, scale_apply, &v, sizeof v,
                                     (void **)&got, &len, NULL),
                   0);
        ck_assert_int_eq(*got, 70);
        free(got);
        mp_task_error e;
        mp_apply_opts ao = {
            .ctx = &call_ctx, .ctx_size = sizeof call_ctx, .error = &e};
        mp_ck_code(mp_pool_apply_ctx(pool, scale_apply, &v, sizeof v,
                                     (void **)&got, &len, &ao),
                   0);
        ck_assert_int_eq(*got, 700);
        free(got);
        ck_assert_uint_eq(e.index, SIZE_MAX);
        v = -1;
        mp_ck_code(
            mp_pool_apply_ctx(pool, scale_apply, &v, sizeof v, NULL, NULL, &ao),
            MP_ETASK);
        ck_assert_uint_eq(e.index, 0);
        ck_assert_int_eq(e.error, 5);
        v = -2;
        mp_ck_code(
            mp_pool_apply_ctx(pool, scale_apply, &v, sizeof v, NULL, NULL, &ao),
            MP_EWORKERDIED);
        ck_assert_int_eq(e.signal, SIGKILL);
        /* The same report from an async handle. */
        mp_async *a;
        mp_ck_code(
            mp_pool_apply_ctx_async(pool, scale_apply, &v, sizeof v, NULL, &a),
            0);
        mp_ck_code(mp_async_wait(a, MP_T(10)), 0);
        mp_ck_code(mp_async_task_error(a, &e), 0);
        mp_ck_code(e.code, MP_EWORKERDIED);
        mp_async_free(a);
        /* imap with the pool's context, in order. */
        int64_t in[100], out;
        for (int i = 0; i < 100; i++)
            in[i] = i;
        mp_imap *it;
        mp_imap_opts io = {.ordered = 1, .chunksize = 7};
        mp_ck_code(mp_pool_imap_ctx(pool, lin_item, in, 8, 8, 100, &io, &it),
                   0);
        size_t idx;
        for (int i = 0; i < 100; i++) {
            mp_ck_code(mp_imap_next(it, &out, &idx, MP_T(10)), 0);
            ck_assert_uint_eq(idx, (size_t)i);
            ck_assert_int_eq(out, 10 * i);
        }
        mp_ck_code(mp_imap_next(it, &out, &idx, MP_T(10)), MP_EOF);
        mp_imap_task_error(it, &e);
        ck_assert_uint_eq(e.index, SIZE_MAX);
        mp_imap_free(it);
        /* A failing item of an imap: its own error value too. */
        in[42] = 999; /* odd_fails: fails with 999 % 7 + 1 */
        mp_ck_code(mp_pool_imap(pool, odd_fails, in, 8, 8, 100, &io, &it), 0);
        int failed = 0, r;
        while ((r = mp_imap_next(it, &out, &idx, MP_T(10))) != MP_EOF) {
            if (r == 0)
                continue;
            mp_ck_code(r, MP_ETASK);
            mp_ck_code(mp_imap_task_error(it, &e), 0);
            ck_assert_uint_eq(idx, 42);
            ck_assert_uint_eq(e.index, 42);
            mp_ck_code(e.code, MP_ETASK);
            ck_assert_int_eq(e.error, 999 % 7 + 1);
            failed++;
        }
        ck_assert_int_eq(failed, 1);
        in[42] = 42;
        mp_imap_free(it);
        mp_pool_free(pool);
    }
}

/* MP_CHECK in a child: a call that fails ends it with status 1. */
static int check_fails(void *arg)
{
    (void)arg;
    char buf[8];
    mp_queue *q;
    MP_CHECK(mp_queue_new(&q, NULL));
    MP_CHECK(mp_queue_get(q, buf, sizeof buf, 0)); /* empty: exits */
    return 0;
}

MP_TEST(check_macro_exits_on_a_failed_call)
{
    ck_assert_int_eq(
        mp_test_finish(mp_test_start(check_fails, NULL, 0, MP_START_FORK),
                       MP_T(10)),
        1);
}
