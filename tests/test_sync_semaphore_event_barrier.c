/* test_sync_semaphore_event_barrier.c - Semaphore, Event and Barrier across
   processes of every start method and threads; after CPython's
   _test_multiprocessing semaphore, event and barrier tests. */
#include "harness.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* N - the parties of CPython's barrier tests; PASSES, THOUSAND - loop
   lengths of the multipass and thousand tests. */
enum { N = 5, PASSES = 10, THOUSAND = 1000 };

/* LONG_S - a wait that only a broken library would reach: it turns a hang
   into a failure. JOIN_S - how long a child may take to end. Both scaled
   (harness.h). */
#define LONG_S MP_T(60.0)
#define JOIN_S MP_T(90.0)

/* Atomically add one to *p. */
static void add(int *p)
{
    __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

/* Atomically read *p. */
static int get(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

/* The calling thread's kernel id. */
static int tid(void)
{
    return (int)syscall(SYS_gettid);
}

/* ------------------------------------------------------------------------
   Semaphore.
   ------------------------------------------------------------------------ */

/* The common start of CPython's test_semaphore and test_bounded_semaphore
   on a semaphore of value 2: down to 0, then a failed try. */
static void semaphore_down_to_zero(mp_semaphore *s)
{
    ck_assert_int_eq(mp_semaphore_value(s), 2);
    mp_ck_code(mp_semaphore_acquire(s, MP_FOREVER), 0);
    ck_assert_int_eq(mp_semaphore_value(s), 1);
    mp_ck_code(mp_semaphore_acquire(s, MP_FOREVER), 0);
    ck_assert_int_eq(mp_semaphore_value(s), 0);
    mp_ck_code(mp_semaphore_acquire(s, 0), MP_ETIMEDOUT);
    ck_assert_int_eq(mp_semaphore_value(s), 0);
}

MP_TEST(semaphore_sequence)
{
    mp_semaphore *s;
    mp_ck_code(mp_semaphore_new(&s, 2, 0), 0);
    semaphore_down_to_zero(s);
    /* Unbounded: release goes past the initial value. */
    for (int v = 1; v <= 4; v++) {
        mp_ck_code(mp_semaphore_release(s), 0);
        ck_assert_int_eq(mp_semaphore_value(s), v);
    }
    mp_semaphore_free(s);
}

MP_TEST(semaphore_bounded)
{
    mp_semaphore *s;
    mp_ck_code(mp_semaphore_new(&s, 2, 2), 0);
    semaphore_down_to_zero(s);
    mp_ck_code(mp_semaphore_release(s), 0);
    ck_assert_int_eq(mp_semaphore_value(s), 1);
    mp_ck_code(mp_semaphore_release(s), 0);
    ck_assert_int_eq(mp_semaphore_value(s), 2);
    mp_ck_code(mp_semaphore_release(s), MP_EOVERFLOW);
    ck_assert_int_eq(mp_semaphore_value(s), 2);
    mp_semaphore_free(s);
}

MP_TEST(semaphore_timeouts)
{
    mp_semaphore *s;
    mp_ck_code(mp_semaphore_new(&s, 0, 0), 0);
    double t0 = mp_test_now();
    mp_ck_code(mp_semaphore_acquire(s, 0), MP_ETIMEDOUT);
    double el = mp_test_now() - t0;
    ck_assert_msg(el < MP_T(0.05), "acquire(0) took %.3f s", el);
    t0 = mp_test_now();
    mp_ck_code(mp_semaphore_acquire(s, 0.2), MP_ETIMEDOUT);
    el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "acquire(0.2) took %.3f s", el);
    ck_assert_int_eq(mp_semaphore_value(s), 0);
    /* With a unit available a timed acquire takes it. */
    mp_ck_code(mp_semaphore_release(s), 0);
    mp_ck_code(mp_semaphore_acquire(s, 0.2), 0);
    ck_assert_int_eq(mp_semaphore_value(s), 0);
    mp_semaphore_free(s);
}

/* A child: release the semaphore THOUSAND times; nonzero exit on any
   error. */
static int t_release_many(void *arg)
{
    mp_semaphore *s = arg;
    int bad = 0;
    for (int i = 0; i < THOUSAND; i++)
        bad += mp_semaphore_release(s) != 0;
    return bad != 0;
}

MP_TEST(semaphore_across_processes)
{
    for (int k = 0; k < 3; k++) {
        mp_semaphore *s;
        mp_ck_code(mp_semaphore_new(&s, 0, 0), 0);
        mp_process *p = mp_test_start(t_release_many, s, 0, mp_test_methods[k]);
        int got = 0, r = 0;
        for (int i = 0; i < THOUSAND; i++) {
            r = mp_semaphore_acquire(s, MP_T(10));
            if (r != 0)
                break;
            got++;
        }
        ck_assert_msg(got == THOUSAND, "method %d: %d acquired, then %s", k,
                      got, mp_err_name(r));
        ck_assert_int_eq(mp_test_finish(p, JOIN_S), 0);
        ck_assert_int_eq(mp_semaphore_value(s), 0);
        mp_semaphore_free(s);
    }
}

MP_TEST(semaphore_bad_inputs)
{
    mp_semaphore *s = NULL;
    mp_ck_code(mp_semaphore_new(NULL, 1, 0), MP_EINVAL);
    mp_ck_code(mp_semaphore_new(&s, 3, 2), MP_EINVAL);
    mp_ck_code(mp_semaphore_new(&s, (unsigned)INT_MAX + 1u, 0), MP_EINVAL);
    ck_assert_ptr_null(s);
    mp_ck_code(mp_semaphore_acquire(NULL, 1), MP_EINVAL);
    mp_ck_code(mp_semaphore_release(NULL), MP_EINVAL);
    mp_ck_code(mp_semaphore_value(NULL), MP_EINVAL);
    mp_semaphore_free(NULL);

    mp_ck_code(mp_semaphore_new(&s, 1, 0), 0);
    mp_ck_code(mp_semaphore_acquire(s, NAN), MP_EINVAL);
    ck_assert_int_eq(mp_semaphore_value(s), 1); /* NaN took nothing */
    mp_semaphore_free(s);

    /* Placed in caller memory: size and alignment are checked. */
    size_t need = mp_semaphore_size();
    _Alignas(16) unsigned char buf[256];
    ck_assert_uint_gt(need, 0);
    ck_assert_uint_le(need + 1, sizeof buf);
    mp_ck_code(mp_semaphore_init_at(&s, buf + 1, need, 1, 0), MP_EINVAL);
    mp_ck_code(mp_semaphore_init_at(&s, buf, need - 1, 1, 0), MP_EINVAL);
    mp_ck_code(mp_semaphore_init_at(&s, NULL, need, 1, 0), MP_EINVAL);
    mp_ck_code(mp_semaphore_init_at(NULL, buf, need, 1, 0), MP_EINVAL);
    mp_ck_code(mp_semaphore_init_at(&s, buf, need, 3, 2), MP_EINVAL);
    mp_ck_code(mp_semaphore_init_at(&s, buf, need, 1, 2), 0);
    ck_assert_ptr_eq(s, (void *)buf);
    mp_ck_code(mp_semaphore_acquire(s, 0), 0);
    mp_ck_code(mp_semaphore_acquire(s, 0), MP_ETIMEDOUT);
    mp_ck_code(mp_semaphore_release(s), 0);
    mp_ck_code(mp_semaphore_release(s), 0);
    mp_ck_code(mp_semaphore_release(s), MP_EOVERFLOW);
    ck_assert_int_eq(mp_semaphore_value(s), 2);
    mp_semaphore_free(s);
    /* The memory stays the caller's and says the object is gone. */
    mp_ck_code(mp_semaphore_value(s), MP_EINVAL);
}

/* ------------------------------------------------------------------------
   Event.
   ------------------------------------------------------------------------ */

/* A child: sleep 0.1 s, then set the event (CPython's _test_event). */
static int t_set_later(void *arg)
{
    mp_test_sleep(MP_T(0.1)); /* the test waits by then */
    return mp_event_set(arg) != 0;
}

MP_TEST(event_basic)
{
    mp_event *e;
    mp_ck_code(mp_event_new(&e), 0);
    ck_assert_int_eq(mp_event_is_set(e), 0);
    double t0 = mp_test_now();
    ck_assert_int_eq(mp_event_wait(e, 0), 0);
    double el = mp_test_now() - t0;
    ck_assert_msg(el < MP_T(0.05), "wait(0) took %.3f s", el);
    t0 = mp_test_now();
    ck_assert_int_eq(mp_event_wait(e, 0.1), 0);
    el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.1 && el < MP_T(1.5), "wait(0.1) took %.3f s", el);

    mp_ck_code(mp_event_set(e), 0);
    ck_assert_int_eq(mp_event_is_set(e), 1);
    mp_ck_code(mp_event_set(e), 0); /* setting twice is fine */
    t0 = mp_test_now();
    ck_assert_int_eq(mp_event_wait(e, MP_FOREVER), 1);
    ck_assert_int_eq(mp_event_wait(e, 0.1), 1);
    el = mp_test_now() - t0;
    ck_assert_msg(el < MP_T(0.05), "waits on a set event took %.3f s", el);

    for (int k = 0; k < 3; k++) {
        mp_ck_code(mp_event_clear(e), 0);
        ck_assert_int_eq(mp_event_is_set(e), 0);
        mp_process *p = mp_test_start(t_set_later, e, 0, mp_test_methods[k]);
        ck_assert_int_eq(mp_event_wait(e, MP_FOREVER), 1);
        ck_assert_int_eq(mp_test_finish(p, JOIN_S), 0);
        ck_assert_int_eq(mp_event_is_set(e), 1);
    }
    mp_event_free(e);
}

/* waiter - one thread or process waiting on an event (arena memory for a
   process). */
struct waiter {
    mp_event *e;
    double timeout;
    int tid;    /* the waiting thread's id, valid once ready */
    int ready;  /* set just before mp_event_wait */
    int result; /* what mp_event_wait returned; -100 until then */
};

/* A child or thread body: announce itself, wait, report the result; exit
   status 0 when the wait returned 1. */
static int t_event_waiter(void *arg)
{
    struct waiter *w = arg;
    w->tid = tid();
    __atomic_store_n(&w->ready, 1, __ATOMIC_RELEASE);
    int r = mp_event_wait(w->e, w->timeout);
    __atomic_store_n(&w->result, r, __ATOMIC_RELEASE);
    return r != 1;
}

/* A pthread running t_event_waiter. */
static void *th_event_waiter(void *arg)
{
    t_event_waiter(arg);
    return NULL;
}

/* Wait (up to 30 s, scaled) until w announced itself and its thread sleeps
   (state S in /proc): it is then inside mp_event_wait, past the moment
   it read the flag. Returns 1 if so. */
static int waiter_asleep(const struct waiter *w)
{
    double end = mp_test_now() + MP_T(30);
    while (mp_test_now() < end) {
        if (__atomic_load_n(&w->ready, __ATOMIC_ACQUIRE)) {
            char path[64], buf[512];
            snprintf(path, sizeof path, "/proc/%d/stat", w->tid);
            FILE *f = fopen(path, "r");
            if (f != NULL) {
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                fclose(f);
                buf[n] = '\0';
                const char *rp = strrchr(buf, ')');
                if (rp != NULL && rp[1] == ' ' && rp[2] == 'S')
                    return 1;
            }
        }
        mp_test_sleep(0.001);
    }
    return 0;
}

MP_TEST(event_wakes_every_waiter)
{
    enum { W = 4 };
    mp_event *e;
    mp_ck_code(mp_event_new(&e), 0);
    struct waiter *w = mp_shared_alloc(W * sizeof *w);
    ck_assert_ptr_nonnull(w);
    mp_process *p[W];
    for (int i = 0; i < W; i++) {
        w[i] = (struct waiter){.e = e, .timeout = MP_FOREVER, .result = -100};
        p[i] = mp_test_start(t_event_waiter, &w[i], 0, mp_test_methods[i % 3]);
    }
    for (int i = 0; i < W; i++)
        ck_assert_msg(waiter_asleep(&w[i]), "waiter %d never slept", i);
    mp_ck_code(mp_event_set(e), 0); /* one set for all */
    int failed = 0;
    for (int i = 0; i < W; i++)
        failed += mp_test_finish(p[i], JOIN_S) != 0;
    ck_assert_int_eq(failed, 0);
    for (int i = 0; i < W; i++)
        ck_assert_int_eq(w[i].result, 1);
    mp_shared_free(w);
    mp_event_free(e);
}

MP_TEST(event_set_then_clear_wakes)
{
    /* A waiter that slept before a set returns 1 even if the flag was
       cleared again before it ran (Python's Condition-based Event). One
       thread of this process and one child per start method. */
    enum { W = 4 };
    mp_event *e;
    mp_ck_code(mp_event_new(&e), 0);
    struct waiter *w = mp_shared_alloc(W * sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (int i = 0; i < W; i++)
        w[i] = (struct waiter){.e = e, .timeout = MP_T(30), .result = -100};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, th_event_waiter, &w[0]), 0);
    mp_process *p[W - 1];
    for (int i = 1; i < W; i++)
        p[i - 1] =
            mp_test_start(t_event_waiter, &w[i], 0, mp_test_methods[i - 1]);
    for (int i = 0; i < W; i++)
        ck_assert_msg(waiter_asleep(&w[i]), "waiter %d never slept", i);
    mp_ck_code(mp_event_set(e), 0);
    mp_ck_code(mp_event_clear(e), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    int failed = 0;
    for (int i = 1; i < W; i++)
        failed += mp_test_finish(p[i - 1], JOIN_S) != 0;
    ck_assert_int_eq(failed, 0);
    for (int i = 0; i < W; i++)
        ck_assert_msg(w[i].result == 1, "waiter %d got %d", i, w[i].result);
    ck_assert_int_eq(mp_event_is_set(e), 0);
    mp_shared_free(w);
    mp_event_free(e);
}

MP_TEST(event_bad_inputs)
{
    mp_ck_code(mp_event_new(NULL), MP_EINVAL);
    mp_ck_code(mp_event_set(NULL), MP_EINVAL);
    mp_ck_code(mp_event_clear(NULL), MP_EINVAL);
    mp_ck_code(mp_event_is_set(NULL), MP_EINVAL);
    mp_ck_code(mp_event_wait(NULL, 0), MP_EINVAL);
    mp_event_free(NULL);

    mp_event *e;
    mp_ck_code(mp_event_new(&e), 0);
    mp_ck_code(mp_event_wait(e, NAN), MP_EINVAL);
    mp_ck_code(mp_event_set(e), 0);
    mp_ck_code(mp_event_wait(e, NAN), MP_EINVAL); /* even when set */
    mp_event_free(e);

    size_t need = mp_event_size();
    _Alignas(16) unsigned char buf[256];
    ck_assert_uint_gt(need, 0);
    ck_assert_uint_le(need + 1, sizeof buf);
    mp_ck_code(mp_event_init_at(&e, buf + 4, need), MP_EINVAL);
    mp_ck_code(mp_event_init_at(&e, buf, need - 1), MP_EINVAL);
    mp_ck_code(mp_event_init_at(&e, NULL, need), MP_EINVAL);
    mp_ck_code(mp_event_init_at(NULL, buf, need), MP_EINVAL);
    mp_ck_code(mp_event_init_at(&e, buf, need), 0);
    ck_assert_ptr_eq(e, (void *)buf);
    ck_assert_int_eq(mp_event_is_set(e), 0);
    mp_ck_code(mp_event_set(e), 0);
    ck_assert_int_eq(mp_event_wait(e, 0), 1);
    mp_event_free(e);
    mp_ck_code(mp_event_is_set(e), MP_EINVAL);
}

/* ------------------------------------------------------------------------
   Barrier: CPython's _TestBarrier with N parties, the participants being
   child processes of mixed start methods and usually this process.
   ------------------------------------------------------------------------ */

/* bctx - what the participants of a barrier test share (arena). */
struct bctx {
    mp_barrier *b;
    mp_barrier *b2;
    int r0, r1, r2, r3; /* counters, CPython's results lists */
    int idx[N];         /* how often each arrival index was returned */
    int counter;        /* bumped by the barrier's action */
    int passes[N];      /* the thousand test: passes done per process */
};

/* part - one participant: the shared context and its number. */
struct part {
    struct bctx *c;
    int me;
};

/* A zeroed context in the arena, without barriers. */
static struct bctx *ctx_new(void)
{
    struct bctx *c = mp_shared_alloc(sizeof *c);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Free a context and its barriers. */
static void ctx_free(struct bctx *c)
{
    mp_barrier_free(c->b);
    mp_barrier_free(c->b2);
    mp_shared_free(c);
}

/* A participant gives up: break the barriers so that nobody waits for it,
   and report failure. */
static int give_up(struct bctx *c)
{
    mp_barrier_abort(c->b);
    if (c->b2 != NULL)
        mp_barrier_abort(c->b2);
    return 1;
}

/* Run fn as participants 0 .. nchild-1 in child processes (start methods
   in turn) and, when self is nonzero, as participant nchild in this
   process. Returns how many of them failed. */
static int run_parties(mp_target_fn fn, struct bctx *c, int nchild, int self)
{
    mp_process *p[N];
    ck_assert_int_le(nchild, N);
    for (int i = 0; i < nchild; i++) {
        struct part a = {c, i};
        p[i] = mp_test_start(fn, &a, sizeof a, mp_test_methods[i % 3]);
    }
    int failed = 0;
    if (self) {
        struct part a = {c, nchild};
        failed += fn(&a) != 0;
    }
    for (int i = 0; i < nchild; i++)
        failed += mp_test_finish(p[i], JOIN_S) != 0;
    return failed;
}

/* Poll until at least n participants wait on b (30 s at most, scaled); 1
   if so. */
static int until_waiting(mp_barrier *b, int n)
{
    double end = mp_test_now() + MP_T(30);
    while (mp_barrier_n_waiting(b) < n) {
        if (mp_test_now() > end)
            return 0;
        mp_test_sleep(0.001);
    }
    return 1;
}

/* CPython's multipass: r0 counts arrivals before the first wait of a
   pass, r1 before the second; neither may run ahead by a cycle. */
static int p_passes(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int bad = 0;
    for (int i = 0; i < PASSES; i++) {
        add(&c->r0);
        bad += get(&c->r1) != i * N;
        if (mp_barrier_wait(c->b, LONG_S) < 0)
            return give_up(c);
        add(&c->r1);
        bad += get(&c->r0) != (i + 1) * N;
        if (mp_barrier_wait(c->b, LONG_S) < 0)
            return give_up(c);
    }
    bad += mp_barrier_n_waiting(c->b) != 0;
    bad += mp_barrier_broken(c->b) != 0;
    return bad != 0;
}

MP_TEST(barrier_passes)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_passes, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r0, PASSES * N);
    ck_assert_int_eq(c->r1, PASSES * N);
    ck_assert_int_eq(mp_barrier_n_waiting(c->b), 0);
    ck_assert_int_eq(mp_barrier_broken(c->b), 0);
    ck_assert_int_eq(mp_barrier_parties(c->b), N);
    ctx_free(c);
}

/* Count the arrival index returned by one wait. */
static int p_wait_return(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, LONG_S);
    if (i < 0 || i >= N)
        return give_up(c);
    add(&c->idx[i]);
    return 0;
}

MP_TEST(barrier_wait_return)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_wait_return, c, N - 1, 1), 0);
    for (int i = 0; i < N; i++)
        ck_assert_msg(c->idx[i] == 1, "index %d returned %d times", i,
                      c->idx[i]);
    ctx_free(c);
}

/* A barrier action: count its runs in the int at arg. */
static int act_count(void *arg)
{
    add(arg);
    return 0;
}

/* After one wait the action has run exactly once, whoever ran it. */
static int p_action(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    if (mp_barrier_wait(c->b, LONG_S) < 0)
        return give_up(c);
    return get(&c->counter) != 1;
}

MP_TEST(barrier_action)
{
    struct bctx *c = ctx_new();
    mp_barrier_opts o = {.action = act_count, .action_arg = &c->counter};
    mp_ck_code(mp_barrier_new(&c->b, N, &o), 0);
    ck_assert_int_eq(run_parties(p_action, c, N - 1, 1), 0);
    ck_assert_int_eq(c->counter, 1);
    ctx_free(c);
}

/* CPython's _test_abort_f: index N/2 aborts; the others' next wait
   breaks (r2), never passes (r1). */
static int p_abort(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, LONG_S);
    if (i < 0)
        return give_up(c);
    if (i == N / 2)
        return mp_barrier_abort(c->b) != 0;
    int r = mp_barrier_wait(c->b, LONG_S);
    if (r >= 0)
        add(&c->r1);
    else if (r == MP_EBROKEN)
        add(&c->r2);
    else
        return give_up(c);
    return 0;
}

MP_TEST(barrier_abort)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_abort, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r1, 0);
    ck_assert_int_eq(c->r2, N - 1);
    ck_assert_int_eq(mp_barrier_broken(c->b), 1);
    ck_assert_int_eq(mp_barrier_n_waiting(c->b), 0);
    /* Broken stays broken for newcomers. */
    mp_ck_code(mp_barrier_wait(c->b, LONG_S), MP_EBROKEN);
    ctx_free(c);
}

/* CPython's _test_reset_f: index N/2 resets the barrier once the others
   wait again, which breaks their wait (r2); then all pass once more
   (r3). */
static int p_reset(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, LONG_S);
    if (i < 0)
        return give_up(c);
    if (i == N / 2) {
        if (!until_waiting(c->b, N - 1))
            return give_up(c);
        if (mp_barrier_reset(c->b) != 0)
            return give_up(c);
    } else {
        int r = mp_barrier_wait(c->b, LONG_S);
        if (r >= 0)
            add(&c->r1);
        else if (r == MP_EBROKEN)
            add(&c->r2);
        else
            return give_up(c);
    }
    if (mp_barrier_wait(c->b, LONG_S) < 0)
        return give_up(c);
    add(&c->r3);
    return 0;
}

MP_TEST(barrier_reset)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_reset, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r1, 0);
    ck_assert_int_eq(c->r2, N - 1);
    ck_assert_int_eq(c->r3, N);
    ck_assert_int_eq(mp_barrier_broken(c->b), 0);
    ctx_free(c);
}

/* CPython's _test_abort_and_reset_f: abort as in p_abort, then meet at
   b2, where index N/2 resets b between two b2 cycles, and pass b again. */
static int p_abort_and_reset(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, LONG_S);
    if (i < 0)
        return give_up(c);
    if (i == N / 2) {
        mp_barrier_abort(c->b);
    } else {
        int r = mp_barrier_wait(c->b, LONG_S);
        if (r >= 0)
            add(&c->r1);
        else if (r == MP_EBROKEN)
            add(&c->r2);
        else
            return give_up(c);
    }
    /* Everyone has left b before the reset, nobody enters it before. */
    int j = mp_barrier_wait(c->b2, LONG_S);
    if (j < 0)
        return give_up(c);
    if (j == N / 2 && mp_barrier_reset(c->b) != 0)
        return give_up(c);
    if (mp_barrier_wait(c->b2, LONG_S) < 0)
        return give_up(c);
    if (mp_barrier_wait(c->b, LONG_S) < 0)
        return give_up(c);
    add(&c->r3);
    return 0;
}

MP_TEST(barrier_abort_and_reset)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    mp_ck_code(mp_barrier_new(&c->b2, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_abort_and_reset, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r1, 0);
    ck_assert_int_eq(c->r2, N - 1);
    ck_assert_int_eq(c->r3, N);
    ck_assert_int_eq(mp_barrier_broken(c->b), 0);
    ck_assert_int_eq(mp_barrier_broken(c->b2), 0);
    ctx_free(c);
}

/* Count how a wait that cannot complete ended: MP_EBROKEN in r1,
   MP_ETIMEDOUT in r2 (a success is counted nowhere). */
static void count_failure(struct bctx *c, int r)
{
    if (r == MP_EBROKEN)
        add(&c->r1);
    else if (r == MP_ETIMEDOUT)
        add(&c->r2);
}

/* CPython's _test_timeout_f: index N/2 comes 1 s late to a wait with a
   0.5 s timeout. */
static int p_timeout(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, LONG_S);
    if (i < 0)
        return give_up(c);
    if (i == N / 2)
        mp_test_sleep(1.0);
    count_failure(c, mp_barrier_wait(c->b, 0.5));
    return 0;
}

MP_TEST(barrier_timeout)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_timeout, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r1 + c->r2, N);
    /* One time-out breaks the barrier; the others see it broken. */
    ck_assert_int_eq(c->r2, 1);
    ck_assert_int_eq(mp_barrier_broken(c->b), 1);
    ctx_free(c);
}

/* CPython's _test_default_timeout_f: an explicit long first wait, then
   index N/2 is late for a wait that uses the barrier's 0.5 s default. */
static int p_default_timeout(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int i = mp_barrier_wait(c->b, MP_T(30.0));
    if (i < 0)
        return give_up(c);
    if (i == N / 2)
        mp_test_sleep(1.0);
    count_failure(c, mp_barrier_wait_default(c->b));
    return 0;
}

MP_TEST(barrier_default_timeout)
{
    struct bctx *c = ctx_new();
    mp_barrier_opts o = {.timeout = 0.5};
    mp_ck_code(mp_barrier_new(&c->b, N, &o), 0);
    ck_assert_int_eq(run_parties(p_default_timeout, c, N - 1, 1), 0);
    ck_assert_int_eq(c->r1 + c->r2, N);
    ck_assert_int_eq(c->r2, 1);
    ck_assert_int_eq(mp_barrier_broken(c->b), 1);
    ctx_free(c);
}

MP_TEST(barrier_single)
{
    mp_barrier *b;
    mp_ck_code(mp_barrier_new(&b, 1, NULL), 0);
    ck_assert_int_eq(mp_barrier_wait(b, MP_FOREVER), 0);
    ck_assert_int_eq(mp_barrier_wait(b, MP_FOREVER), 0);
    ck_assert_int_eq(mp_barrier_wait(b, 0), 0); /* never has to wait */
    ck_assert_int_eq(mp_barrier_n_waiting(b), 0);
    ck_assert_int_eq(mp_barrier_broken(b), 0);
    ck_assert_int_eq(mp_barrier_parties(b), 1);
    mp_barrier_free(b);
}

/* A barrier action that fails. */
static int act_fail(void *arg)
{
    add(arg);
    return 1;
}

MP_TEST(barrier_action_failure_breaks)
{
    int *runs = mp_shared_alloc(sizeof *runs);
    ck_assert_ptr_nonnull(runs);
    mp_barrier *b;
    mp_barrier_opts o = {.action = act_fail, .action_arg = runs};
    mp_ck_code(mp_barrier_new(&b, 1, &o), 0);
    mp_ck_code(mp_barrier_wait(b, MP_FOREVER), MP_EBROKEN);
    ck_assert_int_eq(*runs, 1);
    ck_assert_int_eq(mp_barrier_broken(b), 1);
    mp_ck_code(mp_barrier_wait(b, MP_FOREVER), MP_EBROKEN);
    ck_assert_int_eq(*runs, 1); /* broken: the action does not run again */
    mp_ck_code(mp_barrier_reset(b), 0);
    ck_assert_int_eq(mp_barrier_broken(b), 0);
    mp_ck_code(mp_barrier_wait(b, MP_FOREVER), MP_EBROKEN);
    ck_assert_int_eq(*runs, 2);
    mp_barrier_free(b);
    mp_shared_free(runs);
}

/* CPython's test_thousand: after wait i a participant has done i + 1
   passes, and every other one i or i + 1. */
static int p_thousand(void *arg)
{
    const struct part *a = arg;
    struct bctx *c = a->c;
    int bad = 0;
    for (int i = 0; i < THOUSAND; i++) {
        if (mp_barrier_wait(c->b, LONG_S) < 0)
            return give_up(c);
        __atomic_store_n(&c->passes[a->me], i + 1, __ATOMIC_SEQ_CST);
        for (int q = 0; q < N; q++) {
            int v = get(&c->passes[q]);
            bad += v < i || v > i + 1;
        }
    }
    return bad != 0;
}

MP_TEST(barrier_thousand)
{
    struct bctx *c = ctx_new();
    mp_ck_code(mp_barrier_new(&c->b, N, NULL), 0);
    ck_assert_int_eq(run_parties(p_thousand, c, N, 0), 0);
    for (int q = 0; q < N; q++)
        ck_assert_int_eq(c->passes[q], THOUSAND);
    ck_assert_int_eq(mp_barrier_broken(c->b), 0);
    ctx_free(c);
}

/* A child: wait on the barrier with no timeout (to be killed there). */
static int p_wait_forever(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    return mp_barrier_wait(c->b, MP_FOREVER) < 0;
}

MP_TEST(barrier_dead_participant)
{
    /* A participant killed while waiting breaks the barrier for the one
       who arrives after its death, even without a timeout. */
    for (int k = 0; k < 3; k++) {
        struct bctx *c = ctx_new();
        mp_ck_code(mp_barrier_new(&c->b, 3, NULL), 0);
        struct part a = {c, 0};
        mp_process *p =
            mp_test_start(p_wait_forever, &a, sizeof a, mp_test_methods[k]);
        ck_assert(until_waiting(c->b, 1));
        mp_ck_code(mp_process_kill(p), 0);
        ck_assert_int_eq(mp_test_finish(p, JOIN_S), -SIGKILL);
        double t0 = mp_test_now();
        mp_ck_code(mp_barrier_wait(c->b, MP_FOREVER), MP_EBROKEN);
        double el = mp_test_now() - t0;
        ck_assert_msg(el < MP_T(2.0), "method %d: noticed after %.3f s", k, el);
        ck_assert_int_eq(mp_barrier_broken(c->b), 1);
        /* A reset makes it usable again. */
        mp_ck_code(mp_barrier_reset(c->b), 0);
        ck_assert_int_eq(mp_barrier_broken(c->b), 0);
        ck_assert_int_eq(mp_barrier_n_waiting(c->b), 0);
        ctx_free(c);
    }
}

/* thwait - a wait on a barrier by a thread of this process. */
struct thwait {
    mp_barrier *b;
    double timeout;
    int result;
    double end; /* when the wait returned */
};

/* A pthread: wait on the barrier, keep the result and the time. */
static void *th_barrier_wait(void *arg)
{
    struct thwait *t = arg;
    t->result = mp_barrier_wait(t->b, t->timeout);
    t->end = mp_test_now();
    return NULL;
}

MP_TEST(barrier_dead_participant_wakes_waiter)
{
    /* A waiter that sleeps when another participant dies notices it
       (within about 100 ms) instead of waiting for the full timeout. */
    for (int k = 0; k < 3; k++) {
        struct bctx *c = ctx_new();
        mp_ck_code(mp_barrier_new(&c->b, 3, NULL), 0);
        struct thwait t = {.b = c->b, .timeout = 20, .result = -100};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, th_barrier_wait, &t), 0);
        ck_assert(until_waiting(c->b, 1));
        struct part a = {c, 0};
        mp_process *p =
            mp_test_start(p_wait_forever, &a, sizeof a, mp_test_methods[k]);
        ck_assert(until_waiting(c->b, 2));
        double t0 = mp_test_now();
        mp_ck_code(mp_process_kill(p), 0);
        ck_assert_int_eq(mp_test_finish(p, JOIN_S), -SIGKILL);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        mp_ck_code(t.result, MP_EBROKEN);
        double el = t.end - t0;
        ck_assert_msg(el < MP_T(2.0), "method %d: noticed after %.3f s", k, el);
        ck_assert_int_eq(mp_barrier_broken(c->b), 1);
        ctx_free(c);
    }
}

/* A barrier action: record which process ran it. */
static int act_mark(void *arg)
{
    __atomic_store_n((int *)arg, (int)getpid(), __ATOMIC_SEQ_CST);
    return 0;
}

/* A child: wait once, keep the result in r1. */
static int p_wait_keep(void *arg)
{
    struct bctx *c = ((const struct part *)arg)->c;
    int r = mp_barrier_wait(c->b, LONG_S);
    __atomic_store_n(&c->r1, r, __ATOMIC_SEQ_CST);
    return r < 0;
}

MP_TEST(barrier_action_in_child)
{
    /* The last arrival runs the action: a child arriving after a thread
       of this process runs it, resolved in its own address space (a
       spawned child's differs from ours). */
    for (int k = 0; k < 3; k++) {
        struct bctx *c = ctx_new();
        mp_barrier_opts o = {.action = act_mark, .action_arg = &c->counter};
        mp_ck_code(mp_barrier_new(&c->b, 2, &o), 0);
        c->r1 = -100;
        struct thwait t = {.b = c->b, .timeout = LONG_S, .result = -100};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, th_barrier_wait, &t), 0);
        ck_assert(until_waiting(c->b, 1));
        struct part a = {c, 0};
        mp_process *p =
            mp_test_start(p_wait_keep, &a, sizeof a, mp_test_methods[k]);
        pid_t pid = mp_process_pid(p);
        ck_assert_int_eq(mp_test_finish(p, JOIN_S), 0);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(c->counter, pid);
        ck_assert_int_eq(t.result, 0);
        ck_assert_int_eq(c->r1, 1);
        ctx_free(c);
    }
}

MP_TEST(barrier_bad_inputs)
{
    mp_barrier *b = NULL;
    mp_ck_code(mp_barrier_new(&b, 0, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_new(NULL, 2, NULL), MP_EINVAL);
    mp_barrier_opts nan_timeout = {.timeout = NAN};
    mp_ck_code(mp_barrier_new(&b, 2, &nan_timeout), MP_EINVAL);
    ck_assert_ptr_null(b);
    mp_ck_code(mp_barrier_wait(NULL, 1), MP_EINVAL);
    mp_ck_code(mp_barrier_abort(NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_reset(NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_n_waiting(NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_broken(NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_parties(NULL), MP_EINVAL);
    mp_barrier_free(NULL);

    mp_ck_code(mp_barrier_new(&b, 2, NULL), 0);
    mp_ck_code(mp_barrier_wait(b, NAN), MP_EINVAL);
    /* The NaN wait neither arrived nor broke anything. */
    ck_assert_int_eq(mp_barrier_n_waiting(b), 0);
    ck_assert_int_eq(mp_barrier_broken(b), 0);
    mp_barrier_free(b);

    ck_assert_uint_eq(mp_barrier_size(0), 0);
    size_t need = mp_barrier_size(2);
    ck_assert_uint_gt(need, 0);
    ck_assert_uint_ge(mp_barrier_size(3), need);
    unsigned char *mem = malloc(need + 16);
    ck_assert_ptr_nonnull(mem);
    mp_ck_code(mp_barrier_init_at(&b, mem, need - 1, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_init_at(&b, mem + 4, need, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_init_at(&b, NULL, need, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_init_at(&b, mem, need, 0, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_init_at(NULL, mem, need, 2, NULL), MP_EINVAL);
    mp_ck_code(mp_barrier_init_at(&b, mem, need, 2, &nan_timeout), MP_EINVAL);
    /* A placed barrier works like an allocated one. */
    mp_ck_code(mp_barrier_init_at(&b, mem, need, 1, NULL), 0);
    ck_assert_ptr_eq(b, (void *)mem);
    ck_assert_int_eq(mp_barrier_parties(b), 1);
    ck_assert_int_eq(mp_barrier_wait(b, MP_FOREVER), 0);
    mp_barrier_free(b);
    mp_ck_code(mp_barrier_parties(b), MP_EINVAL);
    free(mem);
}

static mp_barrier *sl_bar;

static int sl_child(void *arg)
{
    (void)arg;
    return mp_barrier_wait(sl_bar, MP_FOREVER) == MP_EBROKEN ? 0 : 1;
}

static volatile int sl_res = 99;

static void *sl_waiter(void *arg)
{
    (void)arg;
    sl_res = mp_barrier_wait(sl_bar, MP_T(10.0));
    return NULL;
}

MP_TEST(barrier_waiter_without_slot_sees_reset)
{
    /* Two parties have four slots. Four waiters of four abandoned cycles
       keep theirs while stopped: the next waiter goes without one, and a
       reset must still give it MP_EBROKEN. */
    mp_ck_code(mp_barrier_new(&sl_bar, 2, NULL), 0);
    mp_process *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = mp_test_start(sl_child, NULL, 0, MP_START_FORK);
        while (mp_barrier_n_waiting(sl_bar) != 1)
            mp_test_sleep(0.001);
        mp_test_sleep(MP_T(0.02)); /* asleep in the wait, holding a slot */
        kill(mp_process_pid(p[i]), SIGSTOP);
        mp_ck_code(mp_barrier_reset(sl_bar), 0);
    }
    pthread_t t;
    pthread_create(&t, NULL, sl_waiter, NULL);
    while (mp_barrier_n_waiting(sl_bar) != 1)
        mp_test_sleep(0.001);
    mp_ck_code(mp_barrier_reset(sl_bar), 0);
    pthread_join(t, NULL);
    mp_ck_code(sl_res, MP_EBROKEN);
    for (int i = 0; i < 4; i++) {
        kill(mp_process_pid(p[i]), SIGCONT);
        ck_assert_int_eq(mp_test_finish(p[i], MP_T(30)), 0);
    }
    mp_barrier_free(sl_bar);
}

static mp_barrier *re_bar;
static volatile int re_abort = 99;

static int re_action(void *arg)
{
    (void)arg;
    re_abort = mp_barrier_abort(re_bar); /* from inside: refused */
    return 0;
}

MP_TEST(barrier_action_cannot_reenter)
{
    mp_barrier_opts o = {.action = re_action};
    mp_ck_code(mp_barrier_new(&re_bar, 1, &o), 0);
    ck_assert_int_eq(mp_barrier_wait(re_bar, MP_T(5.0)), 0);
    mp_ck_code(re_abort, MP_EDEADLK);
    ck_assert_int_eq(mp_barrier_broken(re_bar), 0);
    /* The lock was not let go under the action's feet: usable still. */
    ck_assert_int_eq(mp_barrier_wait(re_bar, MP_T(5.0)), 0);
    mp_barrier_free(re_bar);
}
