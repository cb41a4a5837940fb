/* bench_queue.c - queue throughput and latency between processes: 8-byte
   messages 1->1 and 2->2, 64 KiB messages, and the round trip over two
   queues; "raw" does the same over pipes (write/read, one message per
   system call). Usage: bench_queue multiproc|raw [scale [figure-prefix]]
   (only the figures whose names start with the prefix). */
#include "bench_util.h"

#include <multiproc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* job - what one producer or consumer process does. */
struct job {
    mp_queue *q, *back; /* multiproc: the queue (and the reply queue) */
    int fd, back_fd;    /* raw: the pipe ends */
    long count;         /* messages */
    size_t size;        /* bytes per message */
    int raw;
    volatile long sum; /* consumers: checksum of what they got */
};

static char *buffer(size_t n)
{
    char *b = malloc(n < 8 ? 8 : n);
    memset(b, 1, n < 8 ? 8 : n);
    return b;
}

static int producer(void *arg)
{
    struct job *j = arg;
    char *b = buffer(j->size);
    for (long i = 0; i < j->count; i++) {
        memcpy(b, &i, sizeof i);
        if (j->raw ? bench_write_full(j->fd, b, j->size)
                   : mp_queue_put(j->q, b, j->size, MP_FOREVER))
            return 1;
    }
    free(b);
    return 0;
}

static int consumer(void *arg)
{
    struct job *j = arg;
    char *b = buffer(j->size);
    long sum = 0;
    for (long i = 0; i < j->count; i++) {
        if (j->raw ? bench_read_full(j->fd, b, j->size)
                   : mp_queue_get(j->q, b, j->size, MP_FOREVER) < 0)
            return 1;
        long v;
        memcpy(&v, b, sizeof v);
        sum += v;
    }
    j->sum += sum;
    free(b);
    return 0;
}

/* np producers and nc consumers move count messages of size bytes in
   all; returns messages per second. */
static double flow(int raw, int np, int nc, long count, size_t size)
{
    struct job *j = mp_shared_alloc(sizeof *j);
    j->raw = raw;
    j->size = size;
    int fds[2] = {-1, -1};
    if (raw) {
        if (pipe(fds) != 0)
            exit(1);
        j->fd = fds[0];
    } else {
        mp_queue_opts o = {.capacity = size > 4096 ? 8u << 20 : 1u << 20};
        if (mp_queue_new(&j->q, &o) != 0)
            exit(1);
    }
    mp_process *ps[8];
    int n = 0;
    j->count = count / nc;
    for (int i = 0; i < nc; i++)
        ps[n++] = bench_start(consumer, j);
    struct job *pj = mp_shared_alloc(sizeof *pj);
    *pj = *j;
    pj->fd = fds[1];
    pj->count = count / np;
    double t0 = bench_now();
    for (int i = 0; i < np; i++)
        ps[n++] = bench_start(producer, pj);
    for (int i = 0; i < n; i++)
        bench_finish(ps[i], "bench_queue");
    double t = bench_now() - t0;
    if (raw) {
        close(fds[0]);
        close(fds[1]);
    } else {
        mp_queue_free(j->q);
    }
    mp_shared_free(j);
    mp_shared_free(pj);
    return (double)count / t;
}

/* The echo side of the round trip. */
static int echo(void *arg)
{
    struct job *j = arg;
    char b[8];
    for (long i = 0; i < j->count; i++) {
        if (j->raw) {
            if (bench_read_full(j->fd, b, 8) ||
                bench_write_full(j->back_fd, b, 8))
                return 1;
        } else if (mp_queue_get(j->q, b, 8, MP_FOREVER) != 8 ||
                   mp_queue_put(j->back, b, 8, MP_FOREVER) != 0) {
            return 1;
        }
    }
    return 0;
}

/* Median round trip in microseconds over n exchanges. */
static double round_trip(int raw, long n)
{
    struct job *j = mp_shared_alloc(sizeof *j);
    j->raw = raw;
    j->count = n;
    int a[2], b[2];
    if (raw) {
        if (pipe(a) != 0 || pipe(b) != 0)
            exit(1);
        j->fd = a[0];
        j->back_fd = b[1];
    } else if (mp_queue_new(&j->q, NULL) != 0 ||
               mp_queue_new(&j->back, NULL) != 0) {
        exit(1);
    }
    mp_process *p = bench_start(echo, j);
    double *v = malloc(sizeof(double) * (size_t)n);
    char m[8] = {0};
    for (long i = 0; i < n; i++) {
        double t0 = bench_now();
        if (raw) {
            if (bench_write_full(a[1], m, 8) || bench_read_full(b[0], m, 8))
                exit(1);
        } else if (mp_queue_put(j->q, m, 8, MP_FOREVER) != 0 ||
                   mp_queue_get(j->back, m, 8, MP_FOREVER) != 8) {
            exit(1);
        }
        v[i] = (bench_now() - t0) * 1e6;
    }
    bench_finish(p, "bench_queue");
    double med = bench_median(v, (size_t)n);
    free(v);
    if (raw) {
        close(a[0]);
        close(a[1]);
        close(b[0]);
        close(b[1]);
    } else {
        mp_queue_free(j->q);
        mp_queue_free(j->back);
    }
    mp_shared_free(j);
    return med;
}

int main(int argc, char **argv)
{
    double scale;
    const char *impl = bench_init(&argc, &argv, 1, &scale);
    int raw = strcmp(impl, "raw") == 0;
    long n8 = (long)(scale * (raw ? 2e6 : 20e6));
    double v[3];
    if (bench_want("queue.1to1_8B")) {
        for (int i = 0; i < 3; i++)
            v[i] = flow(raw, 1, 1, n8, 8) / 1e6;
        bench_report("queue.1to1_8B", impl, bench_median(v, 3), "Mmsg/s");
    }
    if (bench_want("queue.2to2_8B")) {
        for (int i = 0; i < 3; i++)
            v[i] = flow(raw, 2, 2, n8, 8) / 1e6;
        bench_report("queue.2to2_8B", impl, bench_median(v, 3), "Mmsg/s");
    }
    long n64 = (long)(scale * 40000);
    if (bench_want("queue.1to1_64KiB")) {
        for (int i = 0; i < 3; i++)
            v[i] = flow(raw, 1, 1, n64, 65536) * 65536 / 1e9;
        bench_report("queue.1to1_64KiB", impl, bench_median(v, 3), "GB/s");
    }
    if (bench_want("queue.round_trip"))
        bench_report("queue.round_trip", impl,
                     round_trip(raw, (long)(scale * 100000)), "us");
    return 0;
}
