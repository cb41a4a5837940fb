/* test_queue.c - Queue, JoinableQueue and SimpleQueue across processes:
   order, exactly-once delivery, every error code, close and drain,
   join, large messages, and producers and consumers killed at random. */
#include "harness.h"

#include "../src/core/core.h"
#include "../src/queue/queue_internal.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A message of the tests: who, which, how long, a checksum, the bytes. */
struct msg {
    uint32_t from;
    uint32_t seq;
    uint32_t len;
    uint32_t sum;
    unsigned char data[];
};

static uint32_t fnv(const void *p, size_t n, uint32_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 16777619u;
    return h;
}

/* Fill m for (from, seq) with len bytes; its total size. */
static size_t make_msg(struct msg *m, uint32_t from, uint32_t seq, uint32_t len)
{
    m->from = from;
    m->seq = seq;
    m->len = len;
    for (uint32_t i = 0; i < len; i++)
        m->data[i] = (unsigned char)(seq * 31 + i * 7 + from);
    m->sum = fnv(m->data, len, 2166136261u ^ from ^ (seq << 8) ^ len);
    return sizeof *m + len;
}

/* 1 if m, of size n bytes, is whole. */
static int msg_ok(const struct msg *m, size_t n)
{
    return n >= sizeof *m && n == sizeof *m + m->len &&
           m->sum == fnv(m->data, m->len,
                         2166136261u ^ m->from ^ (m->seq << 8) ^ m->len);
}

/* ---- order and delivery -------------------------------------------------
 */

/* shared - what the queue tests share with their children. */
struct shared {
    mp_queue *q;
    long count; /* messages per producer */

    volatile int bad;    /* messages that were not whole, or out of order */
    volatile long got;   /* messages consumed */
    unsigned char *seen; /* per (producer, seq): times received */
    volatile int stop;   /* producers stop */
    volatile long committed[4]; /* highest seq whose put returned 0 */
};

static struct shared *new_shared(const mp_queue_opts *o)
{
    struct shared *s = mp_shared_alloc(sizeof *s);
    ck_assert_ptr_nonnull(s);
    mp_ck_code(mp_queue_new(&s->q, o), 0);
    return s;
}

static void free_shared(struct shared *s)
{
    mp_queue_free(s->q);
    mp_shared_free(s->seen);
    mp_shared_free(s);
}

/* job - a producer's orders, copied to it by value. */
struct job {
    struct shared *s;
    int from;
};

/* Start fn as producer number from, with method m. */
static mp_process *start_producer(mp_target_fn fn, struct shared *s, int from,
                                  mp_start_method m)
{
    struct job j = {s, from};
    return mp_test_start(fn, &j, sizeof j, m);
}

/* Put count messages of sizes 0..2000 bytes. */
static int t_produce(void *arg)
{
    struct job *j = arg;
    struct shared *s = j->s;
    struct msg *m = malloc(sizeof *m + 4096);
    for (long i = 0; i < s->count; i++) {
        size_t n = make_msg(m, (uint32_t)j->from, (uint32_t)i,
                            (uint32_t)((i * 37) % 2001));
        if (mp_queue_put(s->q, m, n, MP_T(30)) != 0)
            return 1;
    }
    free(m);
    return 0;
}

MP_TEST(fifo_one_to_one_every_method)
{
    for (int k = 0; k < 3; k++) {
        struct shared *s = new_shared(NULL);
        s->count = 10000;
        mp_process *p = start_producer(t_produce, s, 0, mp_test_methods[k]);
        struct msg *m = malloc(sizeof *m + 4096);
        int bad = 0;
        for (long i = 0; i < s->count; i++) {
            ssize_t n = mp_queue_get(s->q, m, sizeof *m + 4096, MP_T(30));
            bad += n < 0 || !msg_ok(m, (size_t)n) || m->seq != (uint32_t)i;
        }
        free(m);
        ck_assert_int_eq(bad, 0);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        ck_assert_int_eq(mp_queue_qsize(s->q), 0);
        free_shared(s);
    }
}

/* Take messages until MP_EOF, marking each (from, seq) seen. */
static int t_consume(void *arg)
{
    struct shared *s = arg;
    struct msg *m = malloc(sizeof *m + 4096);
    for (;;) {
        ssize_t n = mp_queue_get(s->q, m, sizeof *m + 4096, MP_T(30));
        if (n == MP_EOF)
            break;
        if (n < 0 || !msg_ok(m, (size_t)n) || m->from > 3) {
            __atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
            continue;
        }
        __atomic_add_fetch(&s->seen[m->from * s->count + m->seq], 1,
                           __ATOMIC_RELAXED);
        __atomic_add_fetch(&s->got, 1, __ATOMIC_RELAXED);
    }
    free(m);
    return 0;
}

MP_TEST(exactly_once_three_producers_two_consumers)
{
    mp_queue_opts o = {.capacity = 64 << 10}; /* small: wraps, fills */
    struct shared *s = new_shared(&o);
    s->count = 20000;
    s->seen = mp_shared_alloc(3 * (size_t)s->count);
    mp_process *c[2], *p[3];
    for (int i = 0; i < 2; i++)
        c[i] = mp_test_start(t_consume, s, 0, mp_test_methods[i]);
    for (int i = 0; i < 3; i++)
        p[i] = start_producer(t_produce, s, i, mp_test_methods[i]);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(mp_test_finish(p[i], MP_T(60)), 0);
    mp_ck_code(mp_queue_close(s->q), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(mp_test_finish(c[i], MP_T(60)), 0);
    ck_assert_int_eq(s->bad, 0);
    ck_assert_int_eq(s->got, 3 * s->count);
    long twice = 0, never = 0;
    for (long i = 0; i < 3 * s->count; i++) {
        twice += s->seen[i] > 1;
        never += s->seen[i] == 0;
    }
    ck_assert_int_eq(twice, 0);
    ck_assert_int_eq(never, 0);
    free_shared(s);
}

/* ---- error codes ----------------------------------------------------------
 */

MP_TEST(full_and_empty_with_timeouts)
{
    mp_queue *q;
    mp_queue_opts o = {.maxsize = 2};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    char buf[16];
    ck_assert_int_eq(mp_queue_empty(q), 1);
    ck_assert_int_eq(mp_queue_full(q), 0);
    double t0 = mp_test_now();
    mp_ck_code(mp_queue_get(q, buf, sizeof buf, 0), MP_EEMPTY);
    ck_assert(mp_test_now() - t0 < MP_T(0.05));
    t0 = mp_test_now();
    mp_ck_code(mp_queue_get(q, buf, sizeof buf, 0.2), MP_EEMPTY);
    double el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "%.3f", el);
    mp_ck_code(mp_queue_put(q, "a", 1, 0), 0);
    mp_ck_code(mp_queue_put(q, "bb", 2, 0), 0);
    ck_assert_int_eq(mp_queue_qsize(q), 2);
    ck_assert_int_eq(mp_queue_full(q), 1);
    ck_assert_int_eq(mp_queue_empty(q), 0);
    t0 = mp_test_now();
    mp_ck_code(mp_queue_put(q, "c", 1, 0), MP_EFULL);
    ck_assert(mp_test_now() - t0 < MP_T(0.05));
    t0 = mp_test_now();
    mp_ck_code(mp_queue_put(q, "c", 1, 0.2), MP_EFULL);
    el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "%.3f", el);
    ck_assert_int_eq(mp_queue_get(q, buf, sizeof buf, 0), 1);
    ck_assert_int_eq(buf[0], 'a');
    mp_ck_code(mp_queue_put(q, "c", 1, 0), 0);
    ck_assert_int_eq(mp_queue_get(q, buf, sizeof buf, 0), 2);
    ck_assert_int_eq(memcmp(buf, "bb", 2), 0);
    ck_assert_int_eq(mp_queue_get(q, buf, sizeof buf, 0), 1);
    ck_assert_int_eq(buf[0], 'c');
    mp_queue_free(q);
}

MP_TEST(capacity_bounds_bytes)
{
    mp_queue *q;
    mp_queue_opts o = {.capacity = 1}; /* rounded up to 4 KiB */
    mp_ck_code(mp_queue_new(&q, &o), 0);
    char block[1000] = {0};
    int n = 0;
    while (mp_queue_put(q, block, sizeof block, 0) == 0)
        n++;
    ck_assert_int_eq(n, 4); /* 4 x 1008 bytes of records fit in 4096 */
    ck_assert_int_eq(mp_queue_qsize(q), 4);
    mp_ck_code(mp_queue_put(q, block, sizeof block, 0), MP_EFULL);
    ck_assert_int_eq(mp_queue_get(q, block, sizeof block, 0), 1000);
    mp_ck_code(mp_queue_put(q, block, sizeof block, 0), 0);
    mp_queue_free(q);
}

MP_TEST(msgsize_leaves_the_message)
{
    mp_queue *q;
    mp_ck_code(mp_queue_new(&q, NULL), 0);
    mp_ck_code(mp_queue_put(q, "hello world", 11, 0), 0);
    char small[4], big[32];
    size_t need = 0;
    mp_ck_code(mp_queue_get(q, small, sizeof small, 0), MP_EMSGSIZE);
    mp_ck_code(mp_queue_get_ex(q, small, sizeof small, &need, 0), MP_EMSGSIZE);
    ck_assert_uint_eq(need, 11);
    ck_assert_int_eq(mp_queue_qsize(q), 1);
    ck_assert_int_eq(mp_queue_get_ex(q, big, sizeof big, &need, 0), 11);
    ck_assert_int_eq(memcmp(big, "hello world", 11), 0);
    /* Zero-length messages travel too, even into a NULL buffer. */
    mp_ck_code(mp_queue_put(q, NULL, 0, 0), 0);
    ck_assert_int_eq(mp_queue_get(q, NULL, 0, 0), 0);
    mp_queue_free(q);
}

MP_TEST(bad_inputs)
{
    mp_queue *q;
    char b[8];
    void *p;
    mp_queue_opts huge = {.capacity = (size_t)2 << 30};
    mp_queue_opts many = {.maxsize = (size_t)1 << 30};
    mp_ck_code(mp_queue_new(NULL, NULL), MP_EINVAL);
    mp_ck_code(mp_queue_new(&q, &huge), MP_EINVAL);
    mp_ck_code(mp_queue_new(&q, &many), MP_EINVAL);
    mp_ck_code(mp_queue_put(NULL, b, 1, 0), MP_EINVAL);
    mp_ck_code(mp_queue_get(NULL, b, 1, 0), MP_EINVAL);
    mp_ck_code(mp_queue_qsize(NULL), MP_EINVAL);
    mp_ck_code(mp_queue_empty(NULL), MP_EINVAL);
    mp_ck_code(mp_queue_full(NULL), MP_EINVAL);
    mp_ck_code(mp_queue_close(NULL), MP_EINVAL);
    mp_ck_code(mp_queue_task_done(NULL), MP_EINVAL);
    mp_ck_code(mp_queue_join(NULL, 0), MP_EINVAL);
    mp_queue_free(NULL);
    mp_ck_code(mp_queue_new(&q, NULL), 0);
    mp_ck_code(mp_queue_put(q, NULL, 1, 0), MP_EINVAL);
    mp_ck_code(mp_queue_put(q, b, 1, NAN), MP_EINVAL);
    mp_ck_code(mp_queue_get(q, NULL, 1, 0), MP_EINVAL);
    mp_ck_code(mp_queue_get(q, b, 1, NAN), MP_EINVAL);
    mp_ck_code(mp_queue_get_alloc(q, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_queue_get_ref(q, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_queue_get_alloc(q, &p, 0), MP_EEMPTY);
    /* Not joinable. */
    mp_ck_code(mp_queue_task_done(q), MP_ENOTSUP);
    mp_ck_code(mp_queue_join(q, 0), MP_ENOTSUP);
    /* put_ref takes arena blocks only, and no more than they hold. */
    mp_ck_code(mp_queue_put_ref(q, b, sizeof b, 0), MP_EINVAL);
    void *blk = mp_shared_alloc(100);
    mp_ck_code(mp_queue_put_ref(q, (char *)blk + 16, 10, 0), MP_EINVAL);
    mp_ck_code(mp_queue_put_ref(q, blk, 1 << 20, 0), MP_EINVAL);
    mp_shared_free(blk);
    /* A freed queue, while its memory says so. */
    mp_queue_free(q);
    mp_ck_code(mp_queue_put(q, b, 1, 0), MP_EINVAL);
}

/* ---- close ---------------------------------------------------------------
 */

static int t_get_until_eof(void *arg)
{
    struct shared *s = arg;
    char b[64];
    double t0 = mp_test_now();
    ssize_t n = mp_queue_get(s->q, b, sizeof b, MP_FOREVER);
    /* Woken by the close, not by a timeout. */
    return n == MP_EOF && mp_test_now() - t0 < MP_T(10) ? 0 : 1;
}

MP_TEST(close_drains_then_eof)
{
    struct shared *s = new_shared(NULL);
    for (int i = 0; i < 5; i++)
        mp_ck_code(mp_queue_put(s->q, &i, sizeof i, 0), 0);
    mp_ck_code(mp_queue_close(s->q), 0);
    mp_ck_code(mp_queue_put(s->q, "x", 1, 0), MP_ECLOSED);
    mp_ck_code(mp_queue_put(s->q, "x", 1, MP_FOREVER), MP_ECLOSED);
    for (int i = 0; i < 5; i++) {
        int v = -1;
        ck_assert_int_eq(mp_queue_get(s->q, &v, sizeof v, 0), sizeof v);
        ck_assert_int_eq(v, i);
    }
    char b[4];
    mp_ck_code(mp_queue_get(s->q, b, sizeof b, 0), MP_EOF);
    mp_ck_code(mp_queue_get(s->q, b, sizeof b, MP_FOREVER), MP_EOF);
    mp_ck_code(mp_queue_close(s->q), 0); /* twice is fine */
    free_shared(s);
}

MP_TEST(close_wakes_blocked_getters)
{
    for (int k = 0; k < 3; k++) {
        struct shared *s = new_shared(NULL);
        mp_process *p[2];
        for (int i = 0; i < 2; i++)
            p[i] = mp_test_start(t_get_until_eof, s, 0, mp_test_methods[k]);
        mp_test_sleep(MP_T(0.2)); /* asleep past the spin */
        mp_ck_code(mp_queue_close(s->q), 0);
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(mp_test_finish(p[i], MP_T(30)), 0);
        free_shared(s);
    }
}

/* ---- blocking across processes -------------------------------------------
 */

static int t_late_put(void *arg)
{
    struct shared *s = arg;
    mp_test_sleep(MP_T(0.2)); /* the parent is asleep by then */
    int v = 42;
    return mp_queue_put(s->q, &v, sizeof v, MP_T(10));
}

static int t_late_get(void *arg)
{
    struct shared *s = arg;
    mp_test_sleep(MP_T(0.2)); /* the parent is asleep by then */
    int v;
    return mp_queue_get(s->q, &v, sizeof v, MP_T(10)) == sizeof v && v == 1 ? 0
                                                                            : 1;
}

MP_TEST(sleepers_are_woken)
{
    /* A getter asleep on an empty queue, a putter asleep on a full one. */
    for (int k = 0; k < 3; k++) {
        mp_queue_opts o = {.maxsize = 1};
        struct shared *s = new_shared(&o);
        mp_process *p = mp_test_start(t_late_put, s, 0, mp_test_methods[k]);
        int v = 0;
        double t0 = mp_test_now();
        ck_assert_int_eq(mp_queue_get(s->q, &v, sizeof v, MP_T(10)), sizeof v);
        ck_assert_int_eq(v, 42);
        ck_assert(mp_test_now() - t0 < MP_T(5));
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        v = 1;
        mp_ck_code(mp_queue_put(s->q, &v, sizeof v, 0), 0);
        p = mp_test_start(t_late_get, s, 0, mp_test_methods[k]);
        v = 2;
        mp_ck_code(mp_queue_put(s->q, &v, sizeof v, MP_T(10)), 0);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        ck_assert_int_eq(mp_queue_get(s->q, &v, sizeof v, 0), sizeof v);
        ck_assert_int_eq(v, 2);
        free_shared(s);
    }
}

/* ---- joinable --------------------------------------------------------------
 */

static int t_work_and_done(void *arg)
{
    struct shared *s = arg;
    char b[64];
    for (;;) {
        ssize_t n = mp_queue_get(s->q, b, sizeof b, MP_T(30));
        if (n == MP_EOF)
            return 0;
        if (n < 0)
            return 1;
        mp_test_sleep(0.001);
        if (mp_queue_task_done(s->q) != 0)
            return 2;
    }
}

MP_TEST(joinable_join_waits_for_task_done)
{
    mp_queue_opts o = {.joinable = 1};
    struct shared *s = new_shared(&o);
    mp_ck_code(mp_queue_join(s->q, 0), 0); /* nothing put yet */
    for (int i = 0; i < 200; i++)
        mp_ck_code(mp_queue_put(s->q, &i, sizeof i, 0), 0);
    mp_ck_code(mp_queue_join(s->q, 0.05), MP_ETIMEDOUT);
    mp_process *p[2];
    for (int i = 0; i < 2; i++)
        p[i] = mp_test_start(t_work_and_done, s, 0, mp_test_methods[i + 1]);
    mp_ck_code(mp_queue_join(s->q, MP_T(30)), 0);
    ck_assert_int_eq(mp_queue_qsize(s->q), 0);
    mp_ck_code(mp_queue_task_done(s->q), MP_ERANGE);
    mp_queue_close(s->q);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(mp_test_finish(p[i], MP_T(30)), 0);
    free_shared(s);
}

/* ---- joining a child that put data -------------------------------------
 */

enum { MB = 1 << 20 };

static int t_put_50mb(void *arg)
{
    struct shared *s = arg;
    char *b = malloc(MB);
    for (int i = 0; i < 50; i++) {
        memset(b, i, MB);
        if (mp_queue_put(s->q, b, MB, MP_T(10)) != 0)
            return 1;
    }
    free(b);
    return 0; /* and exit, with nothing read yet */
}

MP_TEST(child_that_put_50mb_joins_before_reading)
{
    /* Python's "joining processes that use queues" deadlock: here put
       returns once the data is in shared memory. */
    mp_queue_opts o = {.capacity = (size_t)128 << 20};
    struct shared *s = new_shared(&o);
    mp_process *p = mp_test_start(t_put_50mb, s, 0, MP_START_FORK);
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    ck_assert_int_eq(mp_queue_qsize(s->q), 50);
    char *b = malloc(MB);
    int bad = 0;
    for (int i = 0; i < 50; i++) {
        ssize_t n = mp_queue_get(s->q, b, MB, 0);
        bad += n != MB || b[0] != (char)i || b[MB - 1] != (char)i;
    }
    free(b);
    ck_assert_int_eq(bad, 0);
    free_shared(s);
}

/* ---- large messages and references -----------------------------------------
 */

MP_TEST(large_messages_go_by_reference)
{
    mp_queue *q;
    mp_queue_opts o = {.capacity = 64 << 10};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    size_t n = 40000; /* over half the ring: by reference */
    unsigned char *big = malloc(64 << 10); /* room for the largest too */
    for (size_t i = 0; i < (64 << 10); i++)
        big[i] = (unsigned char)(i * 13);
    struct mp__arena_stats st0, st;
    mp__arena_stats(&st0);
    mp_ck_code(mp_queue_put(q, big, n, 0), 0);
    mp__arena_stats(&st);
    ck_assert_uint_ge(st.used_bytes, st0.used_bytes + n); /* its block */
    /* Capacity bounds the bytes the queue holds, blocks included: a
       second large message waits for the first to be taken. */
    mp_ck_code(mp_queue_put(q, big, n, 0), MP_EFULL);
    mp_ck_code(mp_queue_put(q, big, n, 0.05), MP_EFULL);
    /* Longer than the capacity allows at all: refused at once. */
    mp_ck_code(mp_queue_put(q, big, (64 << 10) - 23, MP_FOREVER), MP_EMSGSIZE);
    ck_assert_int_eq(mp_queue_qsize(q), 1);
    unsigned char *out = malloc(n);
    ck_assert_int_eq(mp_queue_get(q, out, n, 0), (ssize_t)n);
    ck_assert_int_eq(memcmp(out, big, n), 0);
    mp_ck_code(mp_queue_put(q, big, (64 << 10) - 24, 0), 0);
    ck_assert_int_eq(mp_queue_get(q, out, n, 0), MP_EMSGSIZE);
    void *got = NULL;
    ck_assert_int_eq(mp_queue_get_alloc(q, &got, 0), (64 << 10) - 24);
    free(got);
    mp_ck_code(mp_queue_put(q, big, n, 0), 0);
    ck_assert_int_eq(mp_queue_get_alloc(q, &got, 0), (ssize_t)n);
    ck_assert_int_eq(memcmp(got, big, n), 0);
    free(got);
    void *blk = NULL;
    mp_ck_code(mp_queue_put(q, big, n, 0), 0);
    ck_assert_int_eq(mp_queue_get_ref(q, &blk, 0), (ssize_t)n);
    ck_assert_int_eq(mp_shared_contains(blk), 1);
    ck_assert_int_eq(memcmp(blk, big, n), 0);
    mp_shared_free(blk);
    /* put_ref: the same block comes out, not a copy. */
    void *mine = mp_shared_alloc(n);
    memcpy(mine, big, n);
    mp_ck_code(mp_queue_put_ref(q, mine, n, 0), 0);
    ck_assert_int_eq(mp_queue_get_ref(q, &blk, 0), (ssize_t)n);
    ck_assert_ptr_eq(blk, mine);
    mp_shared_free(blk);
    /* A small message asked for by reference is copied into a block. */
    mp_ck_code(mp_queue_put(q, "tiny", 4, 0), 0);
    ck_assert_int_eq(mp_queue_get_ref(q, &blk, 0), 4);
    ck_assert_int_eq(memcmp(blk, "tiny", 4), 0);
    mp_shared_free(blk);
    /* Freeing a queue frees the large messages left in it. */
    mp_ck_code(mp_queue_put(q, big, n, 0), 0);
    mp_queue_free(q);
    mp__arena_stats(&st);
    ck_assert_uint_lt(st.used_bytes, st0.used_bytes);
    free(big);
    free(out);
}

/* ---- killed at random
 * ---------------------------------------------------------
 */

enum { CHAOS_MAX = 200000 };

/* A producer of the chaos test: puts until told to stop, noting each
   seq whose put returned (committed). */
static int t_chaos_produce(void *arg)
{
    struct job *j = arg;
    struct shared *s = j->s;
    int me = j->from;
    struct msg *m = malloc(sizeof *m + 4096);
    for (long i = 0; i < CHAOS_MAX && !s->stop; i++) {
        size_t n = make_msg(m, (uint32_t)me, (uint32_t)i,
                            (uint32_t)((i * 131 + (long)me * 17) % 3000));
        int r = mp_queue_put(s->q, m, n, 0.05);
        if (r == MP_EFULL) {
            i--;
            continue;
        }
        if (r != 0)
            break;
        s->committed[me] = i;
    }
    free(m);
    return 0;
}

static int t_chaos_consume(void *arg)
{
    struct shared *s = arg;
    struct msg *m = malloc(sizeof *m + 4096);
    for (;;) {
        ssize_t n = mp_queue_get(s->q, m, sizeof *m + 4096, 0.05);
        if (n == MP_EOF)
            break;
        if (n == MP_EEMPTY)
            continue;
        if (n < 0 || !msg_ok(m, (size_t)n) || m->from > 1 ||
            m->seq >= CHAOS_MAX) {
            __atomic_add_fetch(&s->bad, 1, __ATOMIC_RELAXED);
            continue;
        }
        __atomic_add_fetch(&s->seen[(size_t)m->from * CHAOS_MAX + m->seq], 1,
                           __ATOMIC_RELAXED);
    }
    free(m);
    return 0;
}

MP_TEST(killed_at_random_moments)
{
    /* Two producers and two consumers on a small ring; one or two of them
       SIGKILLed at a random moment; 30 trials. Nothing torn, nothing
       duplicated, nothing lost once put returned (but for the one
       message each killed consumer was taking), and the queue still
       works. */
    srand((unsigned)time(NULL));
    for (int trial = 0; trial < 30; trial++) {
        mp_queue_opts o = {.capacity = 16 << 10};
        struct shared *s = new_shared(&o);
        s->count = CHAOS_MAX;
        s->seen = mp_shared_alloc(2 * (size_t)CHAOS_MAX);
        for (int i = 0; i < 2; i++)
            s->committed[i] = -1;
        mp_process *ps[4];
        for (int i = 0; i < 2; i++)
            ps[i] = mp_test_start(t_chaos_consume, s, 0, MP_START_FORK);
        for (int i = 0; i < 2; i++)
            ps[2 + i] = start_producer(t_chaos_produce, s, i, MP_START_FORK);
        mp_test_sleep((double)(rand() % 20 + 1) / 1000);
        int victims = 1 + rand() % 2, killed_consumers = 0;
        int dead[4] = {0};
        for (int v = 0; v < victims; v++) {
            int who = rand() % 4;
            if (dead[who])
                continue;
            dead[who] = 1;
            killed_consumers += who < 2;
            mp_process_kill(ps[who]);
            mp_test_sleep((double)(rand() % 3) / 1000);
        }
        s->stop = 1;
        for (int i = 2; i < 4; i++)
            mp_test_finish(ps[i], MP_T(60));
        mp_queue_close(s->q);
        if (dead[0] && dead[1])
            t_chaos_consume(s); /* no consumer left: drain here */
        for (int i = 0; i < 2; i++)
            mp_test_finish(ps[i], MP_T(60));
        long twice = 0, lost = 0;
        for (int p = 0; p < 2; p++) {
            for (long i = 0; i < CHAOS_MAX; i++) {
                unsigned char c = s->seen[(size_t)p * CHAOS_MAX + i];
                twice += c > 1;
                lost += i <= s->committed[p] && c == 0;
            }
        }
        ck_assert_msg(s->bad == 0, "trial %d: %d torn", trial, s->bad);
        ck_assert_msg(twice == 0, "trial %d: %ld twice", trial, twice);
        ck_assert_msg(lost <= killed_consumers,
                      "trial %d: %ld lost, %d consumers killed", trial, lost,
                      killed_consumers);
        ck_assert_int_eq(mp_queue_qsize(s->q), 0);
        free_shared(s);
    }
    /* And a queue used by killed processes goes on working. */
    mp_queue *q;
    mp_ck_code(mp_queue_new(&q, NULL), 0);
    mp_ck_code(mp_queue_put(q, "ok", 2, 0), 0);
    char b[2];
    ck_assert_int_eq(mp_queue_get(q, b, 2, 0), 2);
    mp_queue_free(q);
}

/* fault - a child told to die at one step of its nth put or get. */
struct fault {
    mp_queue *q;
    int step;
    int nth;
    uint32_t size;
    volatile int got[8]; /* what a consumer child took */
    volatile int ngot;
};

static struct fault *fault_now;
static int fault_seen;

static void fault_hook(int step)
{
    if (step == fault_now->step && ++fault_seen == fault_now->nth)
        raise(SIGKILL);
}

static int t_fault_put(void *arg)
{
    fault_now = arg;
    mp__queue_fault_hook = fault_hook;
    struct msg *m = malloc(sizeof *m + 4096);
    for (uint32_t i = 0; i < 4; i++) {
        size_t n = make_msg(m, 0, i, fault_now->size);
        if (mp_queue_put(fault_now->q, m, n, MP_T(10)) != 0)
            return 1;
    }
    return 0; /* the hook never fired */
}

static int t_fault_get(void *arg)
{
    fault_now = arg;
    mp__queue_fault_hook = fault_hook;
    struct msg *m = malloc(sizeof *m + 4096);
    for (int i = 0; i < 4; i++) {
        ssize_t n = mp_queue_get(fault_now->q, m, sizeof *m + 4096, MP_T(10));
        if (n < 0 || !msg_ok(m, (size_t)n))
            return 1;
        fault_now->got[fault_now->ngot++] = (int)m->seq;
    }
    return 0;
}

/* A 4 KiB queue whose next record starts 3024 bytes in: with 1000-byte
   messages, the second one put wraps around the end. */
static mp_queue *positioned_queue(void)
{
    mp_queue *q;
    mp_queue_opts o = {.capacity = 4096};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    char filler[1000] = {0};
    for (int i = 0; i < 3; i++) {
        mp_ck_code(mp_queue_put(q, filler, sizeof filler, 0), 0);
        ck_assert_int_eq(mp_queue_get(q, filler, sizeof filler, 0),
                         (ssize_t)sizeof filler);
    }
    return q;
}

/* Drain q, checking every message; a bitmask of the seqs found. */
static int drain(mp_queue *q)
{
    struct msg *m = malloc(sizeof *m + 4096);
    int mask = 0;
    ssize_t n;
    while ((n = mp_queue_get(q, m, sizeof *m + 4096, 0)) >= 0) {
        ck_assert_msg(msg_ok(m, (size_t)n), "torn message");
        mask |= 1 << m->seq;
    }
    mp_ck_code(n, MP_EEMPTY);
    free(m);
    return mask;
}

MP_TEST(killed_at_each_step)
{
    /* A producer or a consumer killed at each named step of its second
       call (the one that wraps around the ring), or, for large messages
       (by reference: a 4 KiB queue holds one at a time), of its first:
       a message is delivered exactly when its put committed, and stays
       queued unless its get committed; the bytes the queue counts for
       large messages come out exact (a large put fits at once after). */
    static const uint32_t sizes[] = {1000 - sizeof(struct msg), 3000};
    for (int z = 0; z < 2; z++) {
        for (int step = MP__QP_LOCKED; step <= MP__QG_UNLOCKED; step++) {
            int is_put = step <= MP__QP_UNLOCKED;
            struct fault *f = mp_shared_alloc(sizeof *f);
            f->q = positioned_queue();
            f->step = step;
            f->size = sizes[z];
            /* A wrap marker is met once, by the second get. */
            f->nth = step == MP__QG_SKIPPED || z == 1 ? 1 : 2;
            int first = z == 1; /* the victim's first call */
            if (step == MP__QG_SKIPPED && z == 1) {
                mp_queue_free(f->q);
                mp_shared_free(f);
                continue; /* 24-byte references do not wrap here */
            }
            if (!is_put) {
                struct msg *m = malloc(sizeof *m + 4096);
                for (uint32_t i = 0; i < (first ? 1u : 4u); i++)
                    mp_ck_code(
                        mp_queue_put(f->q, m, make_msg(m, 0, i, f->size), 0),
                        0);
                free(m);
            }
            mp_process *p = mp_test_start(is_put ? t_fault_put : t_fault_get, f,
                                          0, MP_START_FORK);
            ck_assert_msg(mp_test_finish(p, MP_T(30)) == -SIGKILL,
                          "step %d size %u: not killed", step, f->size);
            int mask = drain(f->q);
            if (is_put) {
                int want = step >= MP__QP_COMMITTED ? 0x3 : 0x1;
                if (first)
                    want >>= 1;
                ck_assert_msg(mask == want, "put step %d size %u: got %#x",
                              step, f->size, mask);
            } else {
                int want = step >= MP__QG_COMMITTED ? 0xc : 0xe;
                if (first)
                    want = step >= MP__QG_COMMITTED ? 0 : 1;
                ck_assert_msg(f->ngot == !first && (first || f->got[0] == 0),
                              "get step %d: child took %d", step, f->ngot);
                ck_assert_msg(mask == want, "get step %d size %u: left %#x",
                              step, f->size, mask);
            }
            if (first) {
                struct msg *m = malloc(sizeof *m + 4096);
                mp_ck_code(mp_queue_put(f->q, m, make_msg(m, 0, 0, f->size), 0),
                           0);
                mp_ck_code(mp_queue_put(f->q, m, make_msg(m, 0, 1, f->size), 0),
                           MP_EFULL);
                ck_assert_int_gt(mp_queue_get(f->q, m, sizeof *m + 4096, 0), 0);
                free(m);
            }
            /* The queue goes on working for everyone. */
            mp_ck_code(mp_queue_put(f->q, "ok", 2, 0), 0);
            char b[2];
            ck_assert_int_eq(mp_queue_get(f->q, b, 2, 0), 2);
            mp_queue_free(f->q);
            mp_shared_free(f);
        }
    }
}

static int lw_kill_step;

static void lw_hook(int step)
{
    if (step == lw_kill_step)
        raise(SIGKILL);
}

static mp_queue *lw_q;

static int lw_producer(void *arg)
{
    (void)arg;
    mp_test_sleep(MP_T(0.2)); /* the consumer is asleep by now */
    mp__queue_fault_hook = lw_hook;
    mp_queue_put(lw_q, "hello", 5, MP_FOREVER);
    return 0;
}

MP_TEST(producer_killed_before_its_wakeup)
{
    /* Killed after the commit, before waking the sleeping consumer: the
       message must still reach it, within the sleepers' nap. */
    const int steps[] = {MP__QP_COMMITTED, MP__QP_UNLOCKED};
    for (int i = 0; i < 2; i++) {
        lw_kill_step = steps[i];
        mp_ck_code(mp_queue_new(&lw_q, NULL), 0);
        mp_process *p = mp_test_start(lw_producer, NULL, 0, MP_START_FORK);
        char buf[16];
        double t0 = mp_test_now();
        ck_assert_int_eq(mp_queue_get(lw_q, buf, sizeof buf, MP_T(10.0)), 5);
        ck_assert_msg(mp_test_now() - t0 < MP_T(5.0), "woken late");
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), -SIGKILL);
        mp_queue_free(lw_q);
    }
}

static __thread int cr_is_producer;

static void cr_hook(int step)
{
    if (cr_is_producer && step == MP__QP_LOCKED)
        mp_test_sleep(MP_T(0.2)); /* a producer descheduled inside its put */
}

static mp_queue *cr_q;
static volatile int cr_put = 99;

static void *cr_producer(void *arg)
{
    (void)arg;
    cr_is_producer = 1;
    cr_put = mp_queue_put(cr_q, "late", 4, MP_FOREVER);
    return NULL;
}

MP_TEST(put_racing_close_is_never_stranded)
{
    mp_ck_code(mp_queue_new(&cr_q, NULL), 0);
    mp__queue_fault_hook = cr_hook;
    pthread_t t;
    pthread_create(&t, NULL, cr_producer, NULL);
    mp_test_sleep(MP_T(0.05)); /* it is inside its put by then */
    mp_ck_code(mp_queue_close(cr_q), 0);
    char b[8];
    ssize_t g = mp_queue_get(cr_q, b, sizeof b, MP_T(5.0));
    pthread_join(t, NULL);
    mp__queue_fault_hook = NULL;
    /* Either the put came before the close and is delivered, or after
       it and refused: never accepted and then lost to MP_EOF. */
    if (cr_put == 0) {
        ck_assert_int_eq(g, 4);
        mp_ck_code(mp_queue_get(cr_q, b, sizeof b, 0), MP_EOF);
    } else {
        mp_ck_code(cr_put, MP_ECLOSED);
        mp_ck_code(g, MP_EOF);
    }
    ck_assert_int_eq(mp_queue_qsize(cr_q), 0);
    mp_queue_free(cr_q);
}

static mp_queue *sk_q;
static volatile int sk_put = 99;
static volatile double sk_took;
static char sk_big[4096];

static void *sk_producer(void *arg)
{
    (void)arg;
    double t0 = mp_test_now();
    sk_put = mp_queue_put(sk_q, sk_big, 2040, MP_T(5.0));
    sk_took = mp_test_now() - t0;
    return NULL;
}

MP_TEST(skipped_wrap_marker_wakes_producer)
{
    /* A 4 KiB ring: records of 2048 and 1040 bytes in and out leave the
       ends at 3088; the next 2048-byte record wraps, leaving a 1008-byte
       marker. A get that skips the marker and then fails (buffer too
       small) has made room: the sleeping producer must hear of it. */
    mp_queue_opts o = {.capacity = 4096};
    mp_ck_code(mp_queue_new(&sk_q, &o), 0);
    mp_ck_code(mp_queue_put(sk_q, sk_big, 2040, 0), 0);
    mp_ck_code(mp_queue_put(sk_q, sk_big, 1032, 0), 0);
    ck_assert_int_eq(mp_queue_get(sk_q, sk_big, sizeof sk_big, 0), 2040);
    ck_assert_int_eq(mp_queue_get(sk_q, sk_big, sizeof sk_big, 0), 1032);
    mp_ck_code(mp_queue_put(sk_q, sk_big, 2040, 0), 0);
    pthread_t t;
    pthread_create(&t, NULL, sk_producer, NULL);
    mp_test_sleep(MP_T(0.3)); /* past its spin: asleep for room */
    char one[1];
    mp_ck_code(mp_queue_get(sk_q, one, 1, 0), MP_EMSGSIZE);
    pthread_join(t, NULL);
    mp_ck_code(sk_put, 0);
    ck_assert_msg(sk_took < MP_T(2.0), "producer woke after %.2f s", sk_took);
    mp_queue_free(sk_q);
}
