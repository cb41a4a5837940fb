/* test_connection.c - Pipe, Connection and mp_wait: messages both ways,
   one-way direction, order of many messages through a child, large
   messages, timeouts, partial messages, MP_EMSGSIZE, poll, end of stream,
   dead peers, full buffers, signals, waiting on many; after CPython's
   _TestConnection. */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)

/* ---- helpers ------------------------------------------------------------
 */

/* A new pipe; fails the test on error. */
static void new_pipe(mp_conn **a, mp_conn **b, int duplex)
{
    mp_ck_code(mp_pipe_new(a, b, duplex), 0);
    ck_assert_ptr_nonnull(*a);
    ck_assert_ptr_nonnull(*b);
}

/* Close every connection of v[0..n) except keep (may be NULL): what a
   fork child does with the ends it inherited and does not use. */
static void close_others(mp_conn **v, int n, const mp_conn *keep)
{
    for (int i = 0; i < n; i++)
        if (v[i] != keep)
            mp_conn_close(v[i]);
}

/* Pseudo-random bytes of stream seed: every message of a test differs. */
static void fill(unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        p[i] = (unsigned char)(x >> 16);
    }
}

/* 1 if p holds the n bytes fill(seed) writes. */
static int filled(const unsigned char *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        if (p[i] != (unsigned char)(x >> 16))
            return 0;
    }
    return 1;
}

/* Send a string (without its NUL); fails the test on error. */
static void send_str(mp_conn *c, const char *s)
{
    mp_ck_code(mp_conn_send(c, s, strlen(s), MP_T(5)), 0);
}

/* Receive a message and compare it with s; fails the test otherwise. */
static void recv_str(mp_conn *c, const char *s)
{
    char buf[256];
    ssize_t n = mp_conn_recv(c, buf, sizeof buf, MP_T(5));
    ck_assert_int_eq(n, (ssize_t)strlen(s));
    ck_assert_int_eq(memcmp(buf, s, (size_t)n), 0);
}

/* Write raw bytes to a descriptor, as a sender would: for tests of what
   the receiver does with part of a message. */
static void raw_write(int fd, const void *p, size_t n)
{
    ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
}

/* The 8-byte little-endian length of the wire format. */
static void le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* WIRE_FRAME - the least bytes of a frame on the wire (docs/connection.md):
   header and payload, zero-padded up to it. */
#define WIRE_FRAME 64

/* WIRE_BODY - the payload bytes a frame's first read brings. */
#define WIRE_BODY (WIRE_FRAME - 8)

/* Write the padding that follows a payload of len bytes, as a sender
   would: the zeros up to WIRE_FRAME. */
static void raw_pad(int fd, size_t len)
{
    static const unsigned char zeros[WIRE_BODY];
    if (len < WIRE_BODY)
        raw_write(fd, zeros, WIRE_BODY - len);
}

/* SIGALRM's count, for the tests of waits that signals interrupt. */
static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* ---- both ways, one way -------------------------------------------------
 */

/* A child that echoes every message on c[1] until the end of the stream:
   CPython's _echo. Exit 0 when it ended at a message boundary. */
static int child_echo(void *arg)
{
    mp_conn **c = arg;
    mp_conn_close(c[0]);
    for (;;) {
        void *m;
        ssize_t n = mp_conn_recv_alloc(c[1], &m, MP_T(30));
        if (n == MP_EOF)
            break;
        if (n < 0)
            return 10;
        int r = mp_conn_send(c[1], m, (size_t)n, MP_T(30));
        free(m);
        if (r != 0)
            return 11;
    }
    mp_conn_close(c[1]);
    return 0;
}

MP_TEST(duplex_both_ways)
{
    mp_conn *c[2];
    new_pipe(&c[0], &c[1], 1);
    /* In one process: each end sends and receives. */
    send_str(c[0], "hello");
    send_str(c[1], "world");
    recv_str(c[1], "hello");
    recv_str(c[0], "world");
    mp_ck_code(mp_conn_send(c[0], "", 0, 0), 0);
    mp_ck_code(mp_conn_send(c[0], NULL, 0, 0), 0);
    char buf[8];
    ck_assert_int_eq(mp_conn_recv(c[1], buf, sizeof buf, MP_T(1)), 0);
    ck_assert_int_eq(mp_conn_recv(c[1], NULL, 0, MP_T(1)), 0);

    /* Through a fork child that echoes, as test_connection. */
    mp_process *p = mp_test_start(child_echo, c, 0, MP_START_FORK);
    mp_conn_close(c[1]);
    const char *msgs[] = {"a", "", "some longer message \x01\x02\x00x", "last"};
    for (int i = 0; i < 4; i++) {
        mp_ck_code(mp_conn_send(c[0], msgs[i], strlen(msgs[i]), MP_T(5)), 0);
        recv_str(c[0], msgs[i]);
    }
    /* Pipelined: several in flight, echoed in order. */
    for (int i = 0; i < 4; i++)
        send_str(c[0], msgs[i]);
    for (int i = 0; i < 4; i++)
        recv_str(c[0], msgs[i]);
    mp_conn_close(c[0]);
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
}

/* A child that sends "late" on c[1] after 0.2 s, then closes it. */
static int child_late(void *arg)
{
    mp_conn **c = arg;
    mp_conn_close(c[0]);
    mp_test_sleep(MP_T(0.2)); /* the parent waits for it by then */
    int r = mp_conn_send(c[1], "late", 4, MP_T(10));
    mp_conn_close(c[1]);
    return r == 0 ? 0 : 40;
}

MP_TEST(one_way_direction)
{
    mp_conn *r, *w;
    new_pipe(&r, &w, 0);
    char buf[16];
    void *m = (void *)&buf;
    /* Python's Pipe(False): (reader, writer). */
    mp_ck_code(mp_conn_send(r, "x", 1, 0), MP_EBADF);
    mp_ck_code(mp_conn_recv(w, buf, sizeof buf, 0), MP_EBADF);
    mp_ck_code(mp_conn_recv_alloc(w, &m, 0), MP_EBADF);
    mp_ck_code(mp_conn_poll(w, 0), MP_EBADF);
    send_str(w, "one way");
    recv_str(r, "one way");
    mp_ck_code(mp_conn_recv(r, buf, sizeof buf, 0), MP_ETIMEDOUT);

    /* Across a fork: the child writes, the parent reads, then sees the
       end of the stream once every writer is gone. */
    mp_conn *c[2] = {r, w};
    mp_process *p = mp_test_start(child_late, c, 0, MP_START_FORK);
    mp_conn_close(w);
    recv_str(r, "late");
    mp_ck_code(mp_conn_recv(r, buf, sizeof buf, MP_T(5)), MP_EOF);
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    mp_conn_close(r);
}

/* ---- order of many messages ---------------------------------------------
 */

#define FIFO_N     10000
#define FIFO_MAX   65536
#define FIFO_EXTRA 4096

/* The bytes messages are cut from, shared by parent and child (fork). */
static unsigned char fifo_pool[FIFO_MAX + FIFO_EXTRA];

/* The length of message i: many small ones, empty ones, 64 KiB ones. */
static size_t fifo_len(uint32_t i)
{
    uint32_t x = i * 2654435761u;
    x ^= x >> 15;
    if (i % 1000 == 0)
        return 0;
    if (i % 1000 == 1)
        return FIFO_MAX;
    if (i % 3 == 0)
        return x % 64;
    return x % (FIFO_MAX + 1);
}

/* Message i: a slice of the pool at an offset of its own, its index in
   the first 4 bytes when it has room. */
static void fifo_make(unsigned char *p, uint32_t i)
{
    size_t n = fifo_len(i);
    memcpy(p, fifo_pool + (i * 97u) % FIFO_EXTRA, n);
    if (n >= 4)
        memcpy(p, &i, 4);
}

/* 1 if p (n bytes) is message i. */
static int fifo_ok(const unsigned char *p, size_t n, uint32_t i)
{
    if (n != fifo_len(i))
        return 0;
    const unsigned char *src = fifo_pool + (i * 97u) % FIFO_EXTRA;
    if (n < 4)
        return memcmp(p, src, n) == 0;
    uint32_t idx;
    memcpy(&idx, p, 4);
    return idx == i && memcmp(p + 4, src + 4, n - 4) == 0;
}

/* A checksum of a message's identity (index and length), chained. */
static uint64_t fifo_sum(uint64_t h, uint32_t i, size_t n)
{
    uint64_t v[2] = {i, n};
    const unsigned char *b = (const unsigned char *)v;
    for (size_t k = 0; k < sizeof v; k++)
        h = (h ^ b[k]) * 1099511628211u;
    return h;
}

/* fifo - the ends of the order test: c[0] parent->child, c[1] child's
   receiving end, c[2] child's sending end, c[3] parent's receiving end.
   With a duplex pipe c[0] == c[3] and c[1] == c[2]. */
struct fifo {
    mp_conn *c[4];
    int duplex;
};

/* The child: check and echo FIFO_N messages, send the count and the
   checksum of what it saw, expect the end of the stream (one-way: the
   parent's sender closes after the last message). */
static int child_fifo(void *arg)
{
    struct fifo *f = arg;
    mp_conn *in = f->c[1], *out = f->c[2];
    mp_conn_close(f->c[0]);
    if (!f->duplex)
        mp_conn_close(f->c[3]);
    unsigned char *buf = malloc(FIFO_MAX);
    uint64_t summary[2] = {0, 14695981039346656037u};
    int bad = 0;
    for (uint32_t k = 0; k < FIFO_N; k++) {
        ssize_t n = mp_conn_recv(in, buf, FIFO_MAX, MP_T(30));
        if (n < 0)
            return 20;
        uint32_t i = (uint32_t)summary[0]++;
        bad += !fifo_ok(buf, (size_t)n, i);
        summary[1] = fifo_sum(summary[1], i, (size_t)n);
        if (mp_conn_send(out, buf, (size_t)n, MP_T(30)) != 0)
            return 21;
    }
    if (mp_conn_send(out, summary, sizeof summary, MP_T(30)) != 0)
        return 22;
    if (!f->duplex && mp_conn_recv(in, buf, FIFO_MAX, MP_T(30)) != MP_EOF)
        return 24;
    free(buf);
    mp_conn_close(in);
    if (!f->duplex)
        mp_conn_close(out);
    return bad ? 23 : 0;
}

/* The parent's sender thread (one-way case): all messages, then the end
   of the stream, while the main thread receives the echoes. */
static void *fifo_sender(void *arg)
{
    mp_conn *c = arg;
    unsigned char *buf = malloc(FIFO_MAX);
    intptr_t failed = 0;
    for (uint32_t i = 0; i < FIFO_N && !failed; i++) {
        fifo_make(buf, i);
        failed = mp_conn_send(c, buf, fifo_len(i), MP_T(30)) != 0;
    }
    free(buf);
    mp_conn_close(c);
    return (void *)failed;
}

/* Receive and check echo i; 1 if it is right. */
static int fifo_take(mp_conn *c, unsigned char *buf, uint32_t i, uint64_t *sum)
{
    ssize_t n = mp_conn_recv(c, buf, FIFO_MAX, MP_T(30));
    if (n < 0)
        return 0;
    *sum = fifo_sum(*sum, i, (size_t)n);
    return fifo_ok(buf, (size_t)n, i);
}

MP_TEST(fifo_order_through_child)
{
    fill(fifo_pool, sizeof fifo_pool, 99);
    unsigned char *buf = malloc(FIFO_MAX);
    for (int duplex = 0; duplex <= 1; duplex++) {
        struct fifo f = {.duplex = duplex};
        if (duplex) {
            new_pipe(&f.c[0], &f.c[1], 1);
            f.c[2] = f.c[1];
            f.c[3] = f.c[0];
        } else {
            new_pipe(&f.c[1], &f.c[0], 0);
            new_pipe(&f.c[3], &f.c[2], 0);
        }
        mp_process *p = mp_test_start(child_fifo, &f, 0, MP_START_FORK);
        mp_conn_close(f.c[1]);
        if (!duplex)
            mp_conn_close(f.c[2]);
        uint64_t sum = 14695981039346656037u;
        int bad = 0;
        if (duplex) {
            /* One object per thread: ping-pong from this one. */
            for (uint32_t i = 0; i < FIFO_N; i++) {
                fifo_make(buf, i);
                if (mp_conn_send(f.c[0], buf, fifo_len(i), MP_T(30)) != 0)
                    bad++;
                bad += !fifo_take(f.c[3], buf, i, &sum);
            }
        } else {
            /* Pipelined: a thread sends while this one receives. */
            pthread_t t;
            ck_assert_int_eq(pthread_create(&t, NULL, fifo_sender, f.c[0]), 0);
            for (uint32_t i = 0; i < FIFO_N; i++)
                bad += !fifo_take(f.c[3], buf, i, &sum);
            void *failed;
            pthread_join(t, &failed);
            ck_assert_ptr_null(failed);
        }
        ck_assert_int_eq(bad, 0);
        uint64_t summary[2];
        ck_assert_int_eq(
            mp_conn_recv(f.c[3], summary, sizeof summary, MP_T(30)),
            sizeof summary);
        ck_assert_uint_eq(summary[0], FIFO_N);
        ck_assert(summary[1] == sum);
        /* The child closed its ends: the end of the stream. */
        mp_ck_code(mp_conn_recv(f.c[3], buf, FIFO_MAX, MP_T(30)), MP_EOF);
        if (!duplex)
            mp_conn_close(f.c[3]);
        else
            mp_conn_close(f.c[0]);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    }
    free(buf);
}

/* ---- a large message ----------------------------------------------------
 */

#define BIG (16 * MIB)

/* big - c[0], c[1]: parent->child; c[2], c[3]: child->parent (the same
   pair when duplex). */
struct big {
    mp_conn *c[4];
    int duplex;
};

/* The child: take the parent's 16 MiB message with recv_alloc, check it,
   send it back. */
static int child_big(void *arg)
{
    struct big *b = arg;
    mp_conn_close(b->c[0]);
    if (!b->duplex)
        mp_conn_close(b->c[3]);
    void *m;
    ssize_t n = mp_conn_recv_alloc(b->c[1], &m, MP_T(60));
    if (n != (ssize_t)BIG)
        return 30;
    if (!filled(m, BIG, 16))
        return 31;
    if (mp_conn_send(b->c[2], m, BIG, MP_T(60)) != 0)
        return 32;
    free(m);
    mp_conn_close(b->c[1]);
    if (!b->duplex)
        mp_conn_close(b->c[2]);
    return 0;
}

MP_TEST(message_of_16_mib)
{
    unsigned char *out = malloc(BIG), *in = malloc(BIG);
    fill(out, BIG, 16);
    for (int duplex = 0; duplex <= 1; duplex++) {
        struct big b = {.duplex = duplex};
        if (duplex) {
            new_pipe(&b.c[0], &b.c[1], 1);
            b.c[2] = b.c[1];
            b.c[3] = b.c[0];
        } else {
            new_pipe(&b.c[1], &b.c[0], 0);
            new_pipe(&b.c[3], &b.c[2], 0);
        }
        mp_process *p = mp_test_start(child_big, &b, 0, MP_START_FORK);
        mp_conn_close(b.c[1]);
        if (!duplex)
            mp_conn_close(b.c[2]);
        /* Far more than a socket or pipe holds: partial writes. */
        mp_ck_code(mp_conn_send(b.c[0], out, BIG, MP_T(60)), 0);
        memset(in, 0, BIG);
        ck_assert_int_eq(mp_conn_recv(b.c[3], in, BIG, MP_T(60)), (ssize_t)BIG);
        ck_assert_int_eq(memcmp(in, out, BIG), 0);
        ck_assert_int_eq(mp_test_finish(p, MP_T(60)), 0);
        mp_ck_code(mp_conn_recv(b.c[3], in, BIG, MP_T(5)), MP_EOF);
        mp_conn_close(b.c[0]);
        if (!duplex)
            mp_conn_close(b.c[3]);
    }
    free(out);
    free(in);
}

/* ---- timeouts, partial messages, MP_EMSGSIZE ----------------------------
 */

MP_TEST(recv_timeout_honoured)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        char buf[16];
        void *m = NULL;
        double t0 = mp_test_now();
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0), MP_ETIMEDOUT);
        mp_ck_code(mp_conn_recv_alloc(a, &m, 0), MP_ETIMEDOUT);
        ck_assert_ptr_null(m);
        ck_assert(mp_test_now() - t0 < MP_T(0.05));
        t0 = mp_test_now();
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.2), MP_ETIMEDOUT);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "recv(0.2) took %.3f s", el);
        t0 = mp_test_now();
        mp_ck_code(mp_conn_recv_alloc(a, &m, 0.2), MP_ETIMEDOUT);
        el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "recv_alloc(0.2) took %.3f",
                      el);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, NAN), MP_EINVAL);
        /* A message already there is taken even with a timeout of 0. */
        send_str(b, "now");
        ck_assert_int_eq(mp_conn_recv(a, buf, sizeof buf, 0), 3);
        mp_conn_close(a);
        mp_conn_close(b);
    }
}

MP_TEST(partial_message_kept)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        int fd = mp_conn_fileno(b);
        unsigned char hdr[8], buf[64], other[64];
        void *m;
        le64(hdr, 10);

        /* A header in two pieces, the payload in two pieces, then the
           padding: each call that times out keeps what it read. */
        raw_write(fd, hdr, 3);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        ck_assert_int_eq(mp_conn_poll(a, 0), 0);
        raw_write(fd, hdr + 3, 5);
        raw_write(fd, "0123", 4);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        raw_write(fd, "456789", 6);
        /* The payload is complete, the frame is not yet. */
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        raw_pad(fd, 10);
        memset(other, 0, sizeof other);
        ck_assert_int_eq(mp_conn_recv(a, other, sizeof other, MP_T(1)), 10);
        ck_assert_int_eq(memcmp(other, "0123456789", 10), 0);

        /* A partial payload, then a buffer too small: MP_EMSGSIZE keeps
           it; recv_alloc finishes it. */
        raw_write(fd, hdr, 8);
        raw_write(fd, "abcd", 4);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        mp_ck_code(mp_conn_recv(a, buf, 5, 0.05), MP_EMSGSIZE);
        mp_ck_code(mp_conn_recv_alloc(a, &m, 0.05), MP_ETIMEDOUT);
        raw_write(fd, "efghij", 6);
        raw_pad(fd, 10);
        ck_assert_int_eq(mp_conn_recv_alloc(a, &m, MP_T(1)), 10);
        ck_assert_int_eq(memcmp(m, "abcdefghij", 10), 0);
        free(m);
        /* The stream is in step again. */
        send_str(b, "next");
        recv_str(a, "next");

        /* A payload longer than the first read, cut after it: kept across
           calls with other buffers, in the connection. */
        unsigned char big[100], in[128];
        fill(big, sizeof big, 5);
        le64(hdr, sizeof big);
        raw_write(fd, hdr, 8);
        raw_write(fd, big, 60);
        mp_ck_code(mp_conn_recv(a, in, sizeof in, 0.05), MP_ETIMEDOUT);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0), MP_EMSGSIZE);
        raw_write(fd, big + 60, 20);
        mp_ck_code(mp_conn_recv(a, in, sizeof in, 0.05), MP_ETIMEDOUT);
        raw_write(fd, big + 80, 20);
        memset(in, 0, sizeof in);
        ck_assert_int_eq(mp_conn_recv(a, in, sizeof in, MP_T(1)), 100);
        ck_assert_int_eq(memcmp(in, big, sizeof big), 0);
        ck_assert_int_eq(mp_conn_poll(a, 0), 0);

        /* The end of the stream inside a message: MP_EOF, the torn
           message dropped. */
        le64(hdr, 100);
        raw_write(fd, hdr, 8);
        raw_write(fd, "0123456789", 10);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_EMSGSIZE);
        mp_ck_code(mp_conn_recv(a, other, sizeof other, 0.05), MP_EMSGSIZE);
        void *part;
        mp_ck_code(mp_conn_recv_alloc(a, &part, 0.05), MP_ETIMEDOUT);
        mp_conn_close(b);
        /* Its length is known, so a small buffer still hears it is too
           long; reading it finds the end. */
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), MP_EMSGSIZE);
        mp_ck_code(mp_conn_recv_alloc(a, &part, MP_T(1)), MP_EOF);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), MP_EOF);
        mp_conn_close(a);

        /* And in the middle of a header. */
        new_pipe(&a, &b, duplex);
        raw_write(mp_conn_fileno(b), hdr, 5);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        mp_conn_close(b);
        mp_ck_code(mp_conn_recv_alloc(a, &m, MP_T(1)), MP_EOF);
        mp_conn_close(a);

        /* And in the padding of a short message. */
        new_pipe(&a, &b, duplex);
        le64(hdr, 3);
        raw_write(mp_conn_fileno(b), hdr, 8);
        raw_write(mp_conn_fileno(b), "abc", 3);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        mp_conn_close(b);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), MP_EOF);
        mp_conn_close(a);
    }
}

MP_TEST(hostile_length_is_eio)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        unsigned char hdr[8], buf[64];
        void *m = NULL;
        le64(hdr, UINT64_MAX);
        raw_write(mp_conn_fileno(b), hdr, 8);
        raw_pad(mp_conn_fileno(b), 0);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), MP_EIO);
        mp_ck_code(mp_conn_recv_alloc(a, &m, MP_T(1)), MP_EIO);
        ck_assert_ptr_null(m);
        ck_assert_int_eq(mp_conn_poll(a, 0), 1);
        mp_conn_close(a);
        mp_conn_close(b);
    }
}

MP_TEST(msgsize_leaves_message)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        unsigned char msg[100], buf[100];
        fill(msg, sizeof msg, 1);
        mp_ck_code(mp_conn_send(b, msg, sizeof msg, MP_T(1)), 0);
        mp_ck_code(mp_conn_recv(a, buf, 10, MP_T(1)), MP_EMSGSIZE);
        mp_ck_code(mp_conn_recv(a, buf, 99, MP_T(1)), MP_EMSGSIZE);
        mp_ck_code(mp_conn_recv(a, NULL, 0, MP_T(1)), MP_EMSGSIZE);
        /* Still there for poll, poll(2) and mp_wait. */
        ck_assert_int_eq(mp_conn_poll(a, 0), 1);
        int fd = mp_conn_fileno(a), ready = 0;
        ck_assert_int_eq(mp_wait(&fd, 1, &ready, 0), 1);
        ck_assert_int_eq(ready, 1);
        ck_assert_int_eq(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), 100);
        ck_assert_int_eq(memcmp(buf, msg, sizeof msg), 0);

        /* recv_alloc takes it, and order is kept. */
        mp_ck_code(mp_conn_send(b, msg, 50, MP_T(1)), 0);
        send_str(b, "small");
        mp_ck_code(mp_conn_recv(a, buf, 10, MP_T(1)), MP_EMSGSIZE);
        void *m;
        ck_assert_int_eq(mp_conn_recv_alloc(a, &m, MP_T(1)), 50);
        ck_assert_int_eq(memcmp(m, msg, 50), 0);
        free(m);
        ck_assert_int_eq(mp_conn_recv(a, buf, 10, MP_T(1)), 5);
        ck_assert_int_eq(memcmp(buf, "small", 5), 0);
        ck_assert_int_eq(mp_conn_poll(a, 0), 0);
        mp_conn_close(a);
        mp_conn_close(b);
    }
}

MP_TEST(recv_alloc_messages)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        send_str(b, "hello");
        mp_ck_code(mp_conn_send(b, NULL, 0, MP_T(1)), 0);
        void *m = NULL;
        ck_assert_int_eq(mp_conn_recv_alloc(a, &m, MP_T(1)), 5);
        ck_assert_int_eq(memcmp(m, "hello", 5), 0);
        free(m);
        m = NULL;
        ck_assert_int_eq(mp_conn_recv_alloc(a, &m, MP_T(1)), 0);
        ck_assert_ptr_nonnull(m); /* a buffer even for nothing */
        free(m);
        mp_ck_code(mp_conn_recv_alloc(a, &m, 0), MP_ETIMEDOUT);
        ck_assert_ptr_null(m);
        mp_conn_close(b);
        mp_ck_code(mp_conn_recv_alloc(a, &m, MP_T(1)), MP_EOF);
        ck_assert_ptr_null(m);
        mp_conn_close(a);
    }
}

/* ---- frame sizes, buffers, waiting without limit, sharing an end --------
 */

/* The sizes around the frame's edges, and large ones. */
static const size_t edge_sizes[] = {
    0,          1,    WIRE_BODY - 1, WIRE_BODY, WIRE_BODY + 1,
    WIRE_FRAME, 1000, 65536,         MIB};
#define N_EDGE (sizeof edge_sizes / sizeof edge_sizes[0])

/* The sender thread of frame_edges: every size, three times (one per
   way of receiving), waiting without limit. */
static void *edge_sender(void *arg)
{
    mp_conn *c = arg;
    unsigned char *msg = malloc(MIB);
    intptr_t failed = 0;
    for (int pass = 0; pass < 3 && !failed; pass++)
        for (size_t i = 0; i < N_EDGE && !failed; i++) {
            fill(msg, edge_sizes[i], (uint32_t)(pass * 100 + i));
            failed = mp_conn_send(c, msg, edge_sizes[i], MP_FOREVER) != 0;
        }
    free(msg);
    return (void *)failed;
}

MP_TEST(frame_edges)
{
    /* A receiver's buffer: the message, then bytes that must stay. */
    unsigned char *buf = malloc(2 * MIB);
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, edge_sender, b), 0);
        for (int pass = 0; pass < 3; pass++) {
            for (size_t i = 0; i < N_EDGE; i++) {
                size_t len = edge_sizes[i];
                uint32_t seed = (uint32_t)(pass * 100 + i);
                ssize_t n;
                if (pass == 2) {
                    void *m = NULL;
                    n = mp_conn_recv_alloc(a, &m, MP_FOREVER);
                    ck_assert_int_eq(n, (ssize_t)len);
                    ck_assert(filled(m, len, seed));
                    free(m);
                    continue;
                }
                /* Pass 0: a buffer of exactly the length (short ones read
                   their header first); pass 1: a large one. */
                size_t cap = pass == 0 ? len : 2 * MIB;
                memset(buf, 0xA5, 2 * MIB);
                n = mp_conn_recv(a, buf, cap, MP_FOREVER);
                ck_assert_int_eq(n, (ssize_t)len);
                ck_assert_msg(filled(buf, len, seed), "size %zu", len);
                /* Nothing written past the message, padding included. */
                for (size_t k = len; k < len + WIRE_FRAME; k++)
                    ck_assert_int_eq(buf[k], 0xA5);
            }
        }
        void *failed;
        pthread_join(t, &failed);
        ck_assert_ptr_null(failed);
        mp_ck_code(mp_conn_recv(a, buf, 2 * MIB, 0), MP_ETIMEDOUT);
        mp_conn_close(a);
        mp_conn_close(b);
    }
    free(buf);
}

MP_TEST(small_buffer_then_bigger)
{
    /* Lengths below, at and above what comes with the header; buffers
       below and above it. */
    static const size_t lens[] = {10, WIRE_BODY, WIRE_BODY + 1, 200};
    unsigned char msg[200], buf[200];
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        int fd = mp_conn_fileno(a);
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
            size_t len = lens[i];
            fill(msg, len, (uint32_t)i);
            mp_ck_code(mp_conn_send(b, msg, len, MP_T(1)), 0);
            size_t caps[] = {0, len / 2, len - 1};
            for (size_t k = 0; k < 3; k++) {
                mp_ck_code(mp_conn_recv(a, buf, caps[k], 0), MP_EMSGSIZE);
                /* Still seen by poll, poll(2) and mp_wait. */
                ck_assert_int_eq(mp_conn_poll(a, 0), 1);
                int ready = 0;
                ck_assert_int_eq(mp_wait(&fd, 1, &ready, 0), 1);
                ck_assert_int_eq(ready, 1);
            }
            memset(buf, 0, sizeof buf);
            ck_assert_int_eq(mp_conn_recv(a, buf, len, MP_T(1)), (ssize_t)len);
            ck_assert_int_eq(memcmp(buf, msg, len), 0);
            ck_assert_int_eq(mp_conn_poll(a, 0), 0);
        }
        mp_conn_close(a);
        mp_conn_close(b);
    }
}

/* A child that sends "late" on c[1] after 50 ms, then the same after
   0.3 s, then closes it. */
static int child_late_twice(void *arg)
{
    mp_conn **c = arg;
    mp_conn_close(c[0]);
    mp_test_sleep(0.05);
    int r = mp_conn_send(c[1], "late", 4, MP_FOREVER);
    mp_test_sleep(0.3);
    if (r == 0)
        r = mp_conn_send(c[1], "later", 5, MP_FOREVER);
    mp_conn_close(c[1]);
    return r == 0 ? 0 : 70;
}

MP_TEST(recv_forever_waits)
{
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    struct itimerval it = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *c[2];
        new_pipe(&c[0], &c[1], duplex);
        char buf[16];
        /* A finite wait on the empty end still ends on time. */
        double t0 = mp_test_now();
        mp_ck_code(mp_conn_recv(c[0], buf, sizeof buf, 0.05), MP_ETIMEDOUT);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.05 && el < MP_T(0.5), "recv(0.05) took %.3f", el);

        mp_process *p = mp_test_start(child_late_twice, c, 0, MP_START_FORK);
        mp_conn_close(c[1]);
        t0 = mp_test_now();
        ck_assert_int_eq(mp_conn_recv(c[0], buf, sizeof buf, MP_FOREVER), 4);
        el = mp_test_now() - t0;
        ck_assert_int_eq(memcmp(buf, "late", 4), 0);
        ck_assert_msg(el >= 0.03, "a message sent after 50 ms came in %.3f",
                      el);
        /* Signals (a handler without SA_RESTART) do not end the wait. */
        ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
        alarms = 0;
        ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
        ck_assert_int_eq(mp_conn_recv(c[0], buf, sizeof buf, MP_FOREVER), 5);
        ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
        ck_assert_int_eq(sigaction(SIGALRM, &old, NULL), 0);
        ck_assert_int_eq(memcmp(buf, "later", 5), 0);
        ck_assert_int_gt(alarms, 3);
        mp_ck_code(mp_conn_recv(c[0], buf, sizeof buf, MP_FOREVER), MP_EOF);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        mp_conn_close(c[0]);
    }
}

/* A child that echoes on c[1], waiting without limit, until the end. */
static int child_echo_forever(void *arg)
{
    mp_conn **c = arg;
    mp_conn_close(c[0]);
    unsigned char buf[4096];
    ssize_t n;
    while ((n = mp_conn_recv(c[1], buf, sizeof buf, MP_FOREVER)) >= 0)
        if (mp_conn_send(c[1], buf, (size_t)n, MP_FOREVER) != 0)
            return 71;
    mp_conn_close(c[1]);
    return n == MP_EOF ? 0 : 72;
}

MP_TEST(duplex_forever_round_trips_and_streams)
{
    /* Round trips (every receive waits: the end polls first), then
       bursts (messages wait for the receiver: it tries first again). */
    mp_conn *c[2];
    new_pipe(&c[0], &c[1], 1);
    mp_process *p = mp_test_start(child_echo_forever, c, 0, MP_START_FORK);
    mp_conn_close(c[1]);
    unsigned char msg[300], buf[300];
    for (uint32_t i = 0; i < 200; i++) {
        size_t len = i % 300;
        fill(msg, len, i);
        mp_ck_code(mp_conn_send(c[0], msg, len, MP_FOREVER), 0);
        ck_assert_int_eq(mp_conn_recv(c[0], buf, sizeof buf, MP_FOREVER),
                         (ssize_t)len);
        ck_assert(filled(buf, len, i));
    }
    for (uint32_t round = 0; round < 20; round++) {
        for (uint32_t i = 0; i < 30; i++) {
            fill(msg, 100, round * 30 + i);
            mp_ck_code(mp_conn_send(c[0], msg, 100, MP_FOREVER), 0);
        }
        for (uint32_t i = 0; i < 30; i++) {
            ck_assert_int_eq(mp_conn_recv(c[0], buf, sizeof buf, MP_FOREVER),
                             100);
            ck_assert(filled(buf, 100, round * 30 + i));
        }
    }
    mp_conn_close(c[0]);
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
}

#define SHARE_N 3000

/* share - two children take turns on one read end under a lock. */
struct share {
    mp_conn *r, *w;
    mp_lock *lock;
    unsigned char *seen; /* SHARE_N counters, in the arena */
    int *counts;         /* messages each child took */
};

/* The length of shared message i: short, at the edge, or long. */
static size_t share_len(uint32_t i)
{
    static const size_t l[] = {4, WIRE_BODY, WIRE_BODY + 1, 3000, 100};
    return l[i % 5];
}

/* A child's loop: under the lock, take one message (child 0 waits
   without limit, child 1 with short timeouts, retrying), check it, count
   it; stop at a message of index SHARE_N. */
static int share_loop(struct share *s, int me)
{
    mp_conn_close(s->w);
    unsigned char *buf = malloc(4096);
    int bad = 0;
    for (;;) {
        if (mp_lock_acquire(s->lock, MP_FOREVER) != 0)
            return 82;
        ssize_t n;
        do
            n = mp_conn_recv(s->r, buf, 4096, me == 0 ? MP_FOREVER : 0.01);
        while (n == MP_ETIMEDOUT);
        mp_lock_release(s->lock);
        if (n < 4)
            return 80;
        uint32_t i;
        memcpy(&i, buf, 4);
        if (i == SHARE_N)
            break;
        if (i > SHARE_N || (size_t)n != share_len(i) ||
            !filled(buf + 4, (size_t)n - 4, i))
            bad++;
        else
            __atomic_add_fetch(&s->seen[i], 1, __ATOMIC_SEQ_CST);
        s->counts[me]++;
    }
    free(buf);
    mp_conn_close(s->r);
    return bad ? 81 : 0;
}

static int child_share0(void *arg)
{
    return share_loop(arg, 0);
}

static int child_share1(void *arg)
{
    return share_loop(arg, 1);
}

MP_TEST(children_share_a_read_end)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        struct share s;
        new_pipe(&s.r, &s.w, duplex);
        mp_ck_code(mp_lock_new(&s.lock), 0);
        s.seen = mp_shared_alloc(SHARE_N);
        s.counts = mp_shared_alloc(3 * sizeof(int));
        ck_assert_ptr_nonnull(s.seen);
        ck_assert_ptr_nonnull(s.counts);
        mp_process *p0 = mp_test_start(child_share0, &s, 0, MP_START_FORK);
        mp_process *p1 = mp_test_start(child_share1, &s, 0, MP_START_FORK);
        mp_conn *keep_r = s.r;
        unsigned char msg[3000];
        for (uint32_t i = 0; i < SHARE_N; i++) {
            size_t len = share_len(i);
            memcpy(msg, &i, 4);
            fill(msg + 4, len - 4, i);
            mp_ck_code(mp_conn_send(s.w, msg, len, MP_T(30)), 0);
        }
        /* One stop message per child. */
        uint32_t stop = SHARE_N;
        mp_ck_code(mp_conn_send(s.w, &stop, 4, MP_T(30)), 0);
        mp_ck_code(mp_conn_send(s.w, &stop, 4, MP_T(30)), 0);
        ck_assert_int_eq(mp_test_finish(p0, MP_T(60)), 0);
        ck_assert_int_eq(mp_test_finish(p1, MP_T(60)), 0);
        /* Every message taken exactly once, by one or the other. */
        int lost = 0, twice = 0;
        for (int i = 0; i < SHARE_N; i++) {
            lost += s.seen[i] == 0;
            twice += s.seen[i] > 1;
        }
        ck_assert_int_eq(lost, 0);
        ck_assert_int_eq(twice, 0);
        ck_assert_int_eq(s.counts[0] + s.counts[1], SHARE_N);
        mp_conn_close(keep_r);
        mp_conn_close(s.w);
        mp_lock_free(s.lock);
        mp_shared_free(s.seen);
        mp_shared_free(s.counts);
    }
}

MP_TEST(large_message_to_a_later_reader)
{
    /* A 64 KiB message goes in one send while nobody reads: the socket's
       buffer holds it (or is grown to). */
    unsigned char *msg = malloc(MIB), *buf = malloc(MIB);
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        fill(msg, 65536, 1);
        mp_ck_code(mp_conn_send(b, msg, 65536, 0), 0);
        mp_ck_code(mp_conn_send(b, msg, 65536, 0), 0);
        ck_assert_int_eq(mp_conn_recv(a, buf, MIB, MP_T(1)), 65536);
        ck_assert(filled(buf, 65536, 1));
        ck_assert_int_eq(mp_conn_recv(a, buf, MIB, MP_T(1)), 65536);
        ck_assert(filled(buf, 65536, 1));
        /* 1 MiB: the buffer is grown for it where the system allows
           (net.core.wmem_max of at least 2 MiB): in one send too. */
        long wmem_max = 0;
        FILE *f = fopen("/proc/sys/net/core/wmem_max", "r");
        if (f != NULL) {
            if (fscanf(f, "%ld", &wmem_max) != 1)
                wmem_max = 0;
            fclose(f);
        }
        if (wmem_max >= 2 * (long)MIB) {
            fill(msg, MIB, 2);
            mp_ck_code(mp_conn_send(b, msg, MIB, 0), 0);
            ck_assert_int_eq(mp_conn_recv(a, buf, MIB, MP_T(1)), (ssize_t)MIB);
            ck_assert(filled(buf, MIB, 2));
        }
        mp_conn_close(a);
        mp_conn_close(b);
    }
    free(msg);
    free(buf);
}

/* ---- poll, the end of the stream, dead peers ----------------------------
 */

MP_TEST(poll_readiness)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *c[2];
        new_pipe(&c[0], &c[1], duplex);
        ck_assert_int_eq(mp_conn_poll(c[0], 0), 0);
        double t0 = mp_test_now();
        ck_assert_int_eq(mp_conn_poll(c[0], 0.1), 0);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.1 && el < MP_T(1.5), "poll(0.1) took %.3f s", el);
        mp_ck_code(mp_conn_poll(c[0], NAN), MP_EINVAL);
        send_str(c[1], "x");
        ck_assert_int_eq(mp_conn_poll(c[0], 0), 1);
        ck_assert_int_eq(mp_conn_poll(c[0], 0), 1); /* poll takes nothing */
        recv_str(c[0], "x");
        ck_assert_int_eq(mp_conn_poll(c[0], 0), 0);
        if (duplex) {
            ck_assert_int_eq(mp_conn_poll(c[1], 0), 0);
            send_str(c[0], "y");
            ck_assert_int_eq(mp_conn_poll(c[1], 0), 1);
            recv_str(c[1], "y");
        }

        /* A message that comes while poll waits, then the peer's end. */
        mp_process *p = mp_test_start(child_late, c, 0, MP_START_FORK);
        mp_conn_close(c[1]);
        ck_assert_int_eq(mp_conn_poll(c[0], MP_T(10)), 1);
        recv_str(c[0], "late");
        ck_assert_int_eq(mp_conn_poll(c[0], MP_T(10)), 1);
        char buf[8];
        mp_ck_code(mp_conn_recv(c[0], buf, sizeof buf, MP_T(1)), MP_EOF);
        ck_assert_int_eq(mp_conn_poll(c[0], 0), 1);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        mp_conn_close(c[0]);
    }
}

MP_TEST(peer_close_drains_then_eof)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        send_str(b, "one");
        send_str(b, "two");
        send_str(b, "three");
        mp_conn_close(b);
        ck_assert_int_eq(mp_conn_poll(a, 0), 1);
        recv_str(a, "one");
        recv_str(a, "two");
        recv_str(a, "three");
        char buf[8];
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, MP_T(1)), MP_EOF);
        mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0), MP_EOF);
        ck_assert_int_eq(mp_conn_poll(a, 0), 1);
        if (duplex)
            mp_ck_code(mp_conn_send(a, "x", 1, MP_T(1)), MP_EPIPE);
        mp_conn_close(a);
    }
}

MP_TEST(epipe_without_sigpipe)
{
    /* SIGPIPE at its default would kill this process. */
    signal(SIGPIPE, SIG_DFL);
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *r, *w;
        new_pipe(&r, &w, duplex);
        mp_conn_close(r);
        mp_ck_code(mp_conn_send(w, "x", 1, MP_T(1)), MP_EPIPE);
        mp_ck_code(mp_conn_send(w, "x", 1, 0), MP_EPIPE);
        mp_ck_code(mp_conn_send(w, "x", 1, MP_FOREVER), MP_EPIPE);
        sigset_t pending;
        sigpending(&pending);
        ck_assert(!sigismember(&pending, SIGPIPE));

        /* A SIGPIPE pending before the call is not taken away, and the
           caller's mask comes back. */
        sigset_t pipe_set, old, now;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        pthread_kill(pthread_self(), SIGPIPE);
        mp_ck_code(mp_conn_send(w, "x", 1, MP_T(1)), MP_EPIPE);
        sigpending(&pending);
        ck_assert(sigismember(&pending, SIGPIPE));
        pthread_sigmask(SIG_BLOCK, NULL, &now);
        ck_assert(sigismember(&now, SIGPIPE));
        struct timespec zero = {0, 0};
        ck_assert_int_eq(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        mp_conn_close(w);
    }
}

/* killed - what the killed child holds: c[0..4) with the ones it keeps
   named; a flag in the arena says its messages are sent. */
struct killed {
    mp_conn *c[4];
    mp_conn *to_parent, *from_parent;
    int *sent;
};

/* The child: send two messages, say so, sleep until killed (reading
   nothing: what the parent sends stays unread). */
static int child_send_then_hang(void *arg)
{
    struct killed *k = arg;
    for (int i = 0; i < 4; i++)
        if (k->c[i] != k->to_parent && k->c[i] != k->from_parent)
            mp_conn_close(k->c[i]);
    if (mp_conn_send(k->to_parent, "first", 5, MP_T(10)) != 0 ||
        mp_conn_send(k->to_parent, "second", 6, MP_T(10)) != 0)
        return 50;
    __atomic_store_n(k->sent, 1, __ATOMIC_SEQ_CST);
    mp_test_sleep(60);
    return 51;
}

MP_TEST(peer_killed)
{
    int *sent = mp_shared_alloc(sizeof(int));
    ck_assert_ptr_nonnull(sent);
    for (int duplex = 0; duplex <= 1; duplex++) {
        struct killed k = {.sent = sent};
        mp_conn *in, *out; /* the parent's ends */
        __atomic_store_n(sent, 0, __ATOMIC_SEQ_CST);
        if (duplex) {
            new_pipe(&k.c[0], &k.c[1], 1);
            in = out = k.c[0];
            k.to_parent = k.from_parent = k.c[1];
        } else {
            new_pipe(&k.c[0], &k.c[1], 0); /* child -> parent */
            new_pipe(&k.c[2], &k.c[3], 0); /* parent -> child */
            in = k.c[0];
            out = k.c[3];
            k.to_parent = k.c[1];
            k.from_parent = k.c[2];
        }
        mp_process *p =
            mp_test_start(child_send_then_hang, &k, 0, MP_START_FORK);
        /* As Python's docs say: close this process's copy of the child's
           ends, or their death would not be seen. */
        mp_conn_close(k.to_parent);
        if (!duplex)
            mp_conn_close(k.from_parent);
        for (int i = 0; i < 1000 && !__atomic_load_n(sent, __ATOMIC_SEQ_CST);
             i++)
            mp_test_sleep(MP_T(0.01)); /* 10 s in all, scaled */
        ck_assert_int_eq(__atomic_load_n(sent, __ATOMIC_SEQ_CST), 1);
        /* Left unread in the dead child's socket: its peer is reset. */
        send_str(out, "never read");
        mp_ck_code(mp_process_kill(p), 0);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), -SIGKILL);
        /* What it sent before dying is still delivered, then the end. */
        recv_str(in, "first");
        recv_str(in, "second");
        char buf[16];
        mp_ck_code(mp_conn_recv(in, buf, sizeof buf, MP_T(5)), MP_EOF);
        mp_ck_code(mp_conn_recv(in, buf, sizeof buf, 0), MP_EOF);
        mp_ck_code(mp_conn_send(out, "x", 1, MP_T(5)), MP_EPIPE);
        mp_ck_code(mp_conn_send(out, "x", 1, 0), MP_EPIPE);
        mp_conn_close(in);
        if (!duplex)
            mp_conn_close(out);
    }
    mp_shared_free(sent);
}

/* ---- full buffers -------------------------------------------------------
 */

MP_TEST(send_timeout_on_full_buffer)
{
    /* 1 KiB messages: each written whole or not at all (one socket
       buffer, under PIPE_BUF), so a time out sends nothing. */
    enum { SZ = 1024 };
    unsigned char msg[SZ], buf[SZ];
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *r, *w;
        new_pipe(&r, &w, duplex);
        uint32_t count = 0;
        int rc;
        memset(msg, 0, sizeof msg);
        while ((rc = mp_conn_send(w, msg, SZ, 0)) == 0 && count < 1000000) {
            count++;
            memcpy(msg, &count, sizeof count);
        }
        mp_ck_code(rc, MP_ETIMEDOUT);
        ck_assert_uint_gt(count, 0);
        double t0 = mp_test_now();
        mp_ck_code(mp_conn_send(w, msg, SZ, 0.2), MP_ETIMEDOUT);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "send(0.2) took %.3f s", el);
        /* Still usable: every message arrives whole, then nothing. */
        int bad = 0;
        for (uint32_t i = 0; i < count; i++) {
            uint32_t seq = 0;
            if (mp_conn_recv(r, buf, SZ, MP_T(1)) != SZ)
                bad++;
            memcpy(&seq, buf, sizeof seq);
            bad += seq != i;
        }
        ck_assert_int_eq(bad, 0);
        mp_ck_code(mp_conn_recv(r, buf, SZ, 0), MP_ETIMEDOUT);
        mp_ck_code(mp_conn_send(w, "after", 5, MP_T(1)), 0);
        recv_str(r, "after");
        mp_conn_close(r);
        mp_conn_close(w);
    }
}

MP_TEST(send_timeout_part_way_breaks)
{
    unsigned char *big = malloc(BIG);
    fill(big, BIG, 3);
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *r, *w;
        new_pipe(&r, &w, duplex);
        send_str(w, "first");
        double t0 = mp_test_now();
        mp_ck_code(mp_conn_send(w, big, BIG, 0.3), MP_ETIMEDOUT);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.3 && el < MP_T(1.5), "send(0.3) took %.3f s", el);
        /* Broken from now on; the descriptor stays valid till close. */
        mp_ck_code(mp_conn_send(w, "x", 1, MP_T(1)), MP_EPIPE);
        ck_assert_int_ge(mp_conn_fileno(w), 0);
        /* The reader gets what came before, then the end: never the
           torn message. */
        recv_str(r, "first");
        void *m = NULL;
        mp_ck_code(mp_conn_recv_alloc(r, &m, MP_T(5)), MP_EOF);
        ck_assert_ptr_null(m);
        mp_ck_code(mp_conn_recv(r, big, BIG, 0), MP_EOF);
        if (duplex) {
            /* Only that direction is shut. */
            send_str(r, "back");
            recv_str(w, "back");
        }
        mp_conn_close(r);
        mp_conn_close(w);
    }
    free(big);
}

/* ---- signals ------------------------------------------------------------
 */

MP_TEST(signals_do_not_cut_waits)
{
    /* A handler without SA_RESTART: every wait sees EINTR. */
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {{0, 20000}, {0, 20000}}, off = {{0, 0}, {0, 0}};
    ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);

    mp_conn *a, *b;
    new_pipe(&a, &b, 1);
    char buf[8];
    double t0 = mp_test_now();
    mp_ck_code(mp_conn_recv(a, buf, sizeof buf, 0.3), MP_ETIMEDOUT);
    double el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.3 && el < MP_T(1.5), "recv(0.3) took %.3f s", el);
    t0 = mp_test_now();
    ck_assert_int_eq(mp_conn_poll(a, 0.3), 0);
    ck_assert(mp_test_now() - t0 >= 0.3);
    int fd = mp_conn_fileno(a);
    t0 = mp_test_now();
    ck_assert_int_eq(mp_wait(&fd, 1, NULL, 0.3), 0);
    ck_assert(mp_test_now() - t0 >= 0.3);
    /* A send waiting for room. */
    static unsigned char fillbuf[4096];
    while (mp_conn_send(b, fillbuf, sizeof fillbuf, 0) == 0)
        ;
    t0 = mp_test_now();
    mp_ck_code(mp_conn_send(b, fillbuf, sizeof fillbuf, 0.3), MP_ETIMEDOUT);
    ck_assert(mp_test_now() - t0 >= 0.3);

    ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
    ck_assert_int_eq(sigaction(SIGALRM, &old, NULL), 0);
    ck_assert_int_gt(alarms, 10);
    mp_conn_close(a);
    mp_conn_close(b);
}

/* ---- mp_wait ------------------------------------------------------------
 */

/* waits - every connection of the mp_wait test; a child keeps one. */
struct waits {
    mp_conn *c[6]; /* a1 b1 a2 b2 k1a k1b */
};

/* The first child: exit when told to (a message on k1b). */
static int child_wait_go(void *arg)
{
    struct waits *w = arg;
    close_others(w->c, 6, w->c[5]);
    char buf[8];
    ssize_t n = mp_conn_recv(w->c[5], buf, sizeof buf, MP_T(60));
    mp_conn_close(w->c[5]);
    return n == 2 ? 0 : 60;
}

/* The second child: sleep until killed. */
static int child_wait_sleep(void *arg)
{
    struct waits *w = arg;
    close_others(w->c, 6, NULL);
    mp_test_sleep(60);
    return 61;
}

/* 1 if ready[0..4) is the expected pattern. */
static int ready_is(const int *ready, int r0, int r1, int r2, int r3)
{
    return ready[0] == r0 && ready[1] == r1 && ready[2] == r2 && ready[3] == r3;
}

MP_TEST(wait_connections_and_sentinels)
{
    struct waits w;
    new_pipe(&w.c[0], &w.c[1], 1);
    new_pipe(&w.c[2], &w.c[3], 0);
    new_pipe(&w.c[4], &w.c[5], 1);
    mp_process *p1 = mp_test_start(child_wait_go, &w, 0, MP_START_FORK);
    mp_process *p2 = mp_test_start(child_wait_sleep, &w, 0, MP_START_FORK);
    mp_conn_close(w.c[5]);
    int fds[4] = {mp_conn_fileno(w.c[0]), mp_conn_fileno(w.c[2]),
                  mp_process_sentinel(p1), mp_process_sentinel(p2)};
    for (int i = 0; i < 4; i++)
        ck_assert_int_ge(fds[i], 0);
    int ready[4] = {9, 9, 9, 9};

    /* Nothing ready: at once, then after the timeout. */
    ck_assert_int_eq(mp_wait(fds, 4, ready, 0), 0);
    ck_assert(ready_is(ready, 0, 0, 0, 0));
    double t0 = mp_test_now();
    ck_assert_int_eq(mp_wait(fds, 4, ready, 0.2), 0);
    double el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.2 && el < MP_T(1.5), "wait(0.2) took %.3f s", el);

    /* A message on the second connection. */
    send_str(w.c[3], "m");
    ck_assert_int_eq(mp_wait(fds, 4, ready, MP_T(10)), 1);
    ck_assert(ready_is(ready, 0, 1, 0, 0));
    recv_str(w.c[2], "m");

    /* The first child ends while mp_wait waits. */
    send_str(w.c[4], "go");
    ck_assert_int_eq(mp_wait(fds, 4, ready, MP_T(10)), 1);
    ck_assert(ready_is(ready, 0, 0, 1, 0));

    /* The first connection's peer closes: its end is ready too. */
    mp_conn_close(w.c[1]);
    ck_assert_int_eq(mp_wait(fds, 4, ready, MP_T(10)), 2);
    ck_assert(ready_is(ready, 1, 0, 1, 0));

    /* The second child is killed. */
    mp_ck_code(mp_process_kill(p2), 0);
    ck_assert_int_eq(mp_wait(fds + 3, 1, ready, MP_T(10)), 1);
    ck_assert_int_eq(ready[0], 1);
    ck_assert_int_eq(mp_wait(fds, 4, ready, MP_T(10)), 3);
    ck_assert(ready_is(ready, 1, 0, 1, 1));
    ck_assert_int_eq(mp_wait(fds, 4, NULL, 0), 3);
    ck_assert_int_eq(mp_wait(fds + 1, 1, ready, 0), 0);

    /* Bad arguments. */
    mp_ck_code(mp_wait(NULL, 1, ready, 0), MP_EINVAL);
    int neg[2] = {fds[0], -1};
    mp_ck_code(mp_wait(neg, 2, ready, 0), MP_EINVAL);
    mp_ck_code(mp_wait(fds, 4, ready, NAN), MP_EINVAL);
    t0 = mp_test_now();
    ck_assert_int_eq(mp_wait(NULL, 0, NULL, 0.1), 0);
    ck_assert(mp_test_now() - t0 >= 0.1);

    ck_assert_int_eq(mp_test_finish(p1, MP_T(30)), 0);
    ck_assert_int_eq(mp_test_finish(p2, MP_T(30)), -SIGKILL);
    mp_conn_close(w.c[0]);
    mp_conn_close(w.c[2]);
    mp_conn_close(w.c[3]);
    mp_conn_close(w.c[4]);
}

/* ---- descriptors and bad inputs -----------------------------------------
 */

MP_TEST(fileno_descriptors)
{
    for (int duplex = 0; duplex <= 1; duplex++) {
        mp_conn *a, *b;
        new_pipe(&a, &b, duplex);
        int fa = mp_conn_fileno(a), fb = mp_conn_fileno(b);
        ck_assert_int_ge(fa, 0);
        ck_assert_int_ge(fb, 0);
        ck_assert_int_ne(fa, fb);
        /* Close-on-exec: not leaked into programs a child executes. */
        ck_assert(fcntl(fa, F_GETFD) & FD_CLOEXEC);
        ck_assert(fcntl(fb, F_GETFD) & FD_CLOEXEC);
        /* Usable with poll(2). */
        struct pollfd p = {.fd = fa, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 0), 0);
        send_str(b, "ping");
        ck_assert_int_eq(poll(&p, 1, (int)(MP_T(1) * 1000)), 1);
        recv_str(a, "ping");
        mp_conn_close(a);
        mp_conn_close(b);
    }
}

MP_TEST(bad_inputs)
{
    mp_conn *a = (mp_conn *)1, *b = (mp_conn *)1;
    mp_ck_code(mp_pipe_new(NULL, &b, 1), MP_EINVAL);
    mp_ck_code(mp_pipe_new(&a, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_pipe_new(NULL, NULL, 1), MP_EINVAL);
    new_pipe(&a, &b, 1);
    char buf[8];
    void *m;
    mp_ck_code(mp_conn_send(NULL, "x", 1, 0), MP_EINVAL);
    mp_ck_code(mp_conn_send(a, NULL, 1, 0), MP_EINVAL);
    mp_ck_code(mp_conn_send(a, "x", 1, NAN), MP_EINVAL);
    mp_ck_code(mp_conn_recv(NULL, buf, sizeof buf, 0), MP_EINVAL);
    mp_ck_code(mp_conn_recv(b, NULL, 1, 0), MP_EINVAL);
    mp_ck_code(mp_conn_recv(b, buf, sizeof buf, NAN), MP_EINVAL);
    mp_ck_code(mp_conn_recv_alloc(NULL, &m, 0), MP_EINVAL);
    mp_ck_code(mp_conn_recv_alloc(b, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_conn_recv_alloc(b, &m, NAN), MP_EINVAL);
    mp_ck_code(mp_conn_poll(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_conn_fileno(NULL), MP_EINVAL);
    mp_ck_code(mp_conn_close(NULL), 0);
    mp_ck_code(mp_wait(NULL, 1, NULL, 0), MP_EINVAL);
    /* Nothing was disturbed by the refused calls. */
    send_str(a, "ok");
    recv_str(b, "ok");
    mp_ck_code(mp_conn_recv(b, NULL, 0, 0), MP_ETIMEDOUT);
    mp_ck_code(mp_conn_close(a), 0);
    mp_ck_code(mp_conn_close(b), 0);
}
