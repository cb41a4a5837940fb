/* bench_conn.c - Pipe and Connection between two processes: the 8-byte
   round trip and the 64 KiB throughput of mp_conn over a duplex pipe (a
   socket pair) and over one-way pipes; "raw" does the same over the kernel
   channels themselves, one message per system call: two pipes (impl raw),
   an AF_UNIX socket pair (raw_socketpair), POSIX message queues (raw_mq).
   Usage: bench_conn multiproc|raw [scale [figure-prefix]] (only the
   figures whose names start with the prefix). */
#include "bench_util.h"

#include <multiproc.h>

#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* kind - the channel under test. */
enum kind {
    DUPLEX, /* mp_pipe_new(duplex = 1): one mp_conn each side */
    ONEWAY, /* two mp_pipe_new(duplex = 0), one per direction */
    PIPE,   /* two pipe(2)s */
    SOCKET, /* socketpair(AF_UNIX, SOCK_STREAM) */
    MQ      /* two POSIX message queues */
};

/* chan - both directions: down (parent to child) and up (child to
   parent); the [0] ends read, the [1] ends write. */
struct chan {
    enum kind kind;
    mp_conn *down[2], *up[2];
    int down_fd[2], up_fd[2];
    mqd_t down_q, up_q;
    size_t mq_size; /* MQ: bytes per mq message (a bigger send is split) */
};

/* job - what the child does: echo count messages of size bytes, or
   receive them and answer once (ack). */
struct job {
    struct chan *c;
    long count;
    size_t size;
    int ack;
};

static void fail(const char *what)
{
    fprintf(stderr, "bench_conn: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A queue name of this process alone; it is unlinked once open. */
static mqd_t mq_new(long maxmsg, size_t msgsize)
{
    static int seq;
    char name[64];
    snprintf(name, sizeof name, "/mp_bench_conn.%d.%d", (int)getpid(), seq++);
    struct mq_attr a = {.mq_maxmsg = maxmsg, .mq_msgsize = (long)msgsize};
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &a);
    if (q != (mqd_t)-1)
        mq_unlink(name);
    return q;
}

static long read_limit(const char *path, long dflt)
{
    FILE *f = fopen(path, "r");
    long v = dflt;
    if (f != NULL) {
        if (fscanf(f, "%ld", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}

/* Two queues of messages up to size bytes: size itself when the kernel
   takes it (a privileged process may pass fs.mqueue.msgsize_max), else
   the largest allowed, msgsize_max; the note line says which. */
static void mq_pair(struct chan *c, size_t size)
{
    long maxmsg = read_limit("/proc/sys/fs/mqueue/msg_max", 10);
    if (maxmsg > 10)
        maxmsg = 10;
    size_t msgsize = size;
    for (;;) {
        c->down_q = mq_new(maxmsg, msgsize);
        if (c->down_q != (mqd_t)-1) {
            c->up_q = mq_new(maxmsg, msgsize);
            if (c->up_q != (mqd_t)-1)
                break;
            int e = errno;
            mq_close(c->down_q);
            errno = e;
        }
        long max = read_limit("/proc/sys/fs/mqueue/msgsize_max", 8192);
        if (errno == EINVAL && msgsize > (size_t)max && max > 0)
            msgsize = (size_t)max; /* over msgsize_max */
        else if (errno == EMFILE && maxmsg > 1)
            maxmsg /= 2; /* over RLIMIT_MSGQUEUE */
        else
            fail("mq_open");
    }
    c->mq_size = msgsize;
    static int said;
    if (msgsize < size && !said++) {
        printf("# note: raw_mq: mq messages of at most %zu bytes "
               "(fs.mqueue.msgsize_max; %zu refused): a %zu-byte message "
               "is sent as %zu mq messages\n",
               msgsize, size, size, (size + msgsize - 1) / msgsize);
        fflush(stdout); /* before the fork */
    }
}

static void chan_open(struct chan *c, enum kind kind, size_t size)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    int sv[2];
    switch (kind) {
    case DUPLEX:
        if (mp_pipe_new(&c->down[1], &c->down[0], 1) != 0)
            fail("mp_pipe_new");
        c->up[0] = c->down[1]; /* the parent's end */
        c->up[1] = c->down[0]; /* the child's */
        break;
    case ONEWAY:
        if (mp_pipe_new(&c->down[0], &c->down[1], 0) != 0 ||
            mp_pipe_new(&c->up[0], &c->up[1], 0) != 0)
            fail("mp_pipe_new");
        break;
    case PIPE:
        if (pipe(c->down_fd) != 0 || pipe(c->up_fd) != 0)
            fail("pipe");
        break;
    case SOCKET:
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
            fail("socketpair");
        c->down_fd[1] = c->up_fd[0] = sv[0]; /* the parent's end */
        c->down_fd[0] = c->up_fd[1] = sv[1]; /* the child's */
        break;
    case MQ:
        mq_pair(c, size);
        break;
    }
}

static void chan_close(struct chan *c)
{
    switch (c->kind) {
    case DUPLEX:
        mp_conn_close(c->down[0]);
        mp_conn_close(c->down[1]);
        break;
    case ONEWAY:
        mp_conn_close(c->down[0]);
        mp_conn_close(c->down[1]);
        mp_conn_close(c->up[0]);
        mp_conn_close(c->up[1]);
        break;
    case PIPE:
        close(c->up_fd[0]);
        close(c->up_fd[1]);
        /* fall through */
    case SOCKET:
        close(c->down_fd[0]);
        close(c->down_fd[1]);
        break;
    case MQ:
        mq_close(c->down_q);
        mq_close(c->up_q);
        break;
    }
}

/* Send n bytes as one message (MQ: in mq_size pieces); 0 or -1. */
static int chan_send(struct chan *c, int up, const void *buf, size_t n)
{
    mqd_t q = up ? c->up_q : c->down_q;
    switch (c->kind) {
    case DUPLEX:
    case ONEWAY:
        return mp_conn_send(up ? c->up[1] : c->down[1], buf, n, MP_FOREVER);
    case MQ:
        for (size_t off = 0; off < n; off += c->mq_size) {
            size_t k = n - off < c->mq_size ? n - off : c->mq_size;
            if (mq_send(q, (const char *)buf + off, k, 0) != 0)
                return -1;
        }
        return 0;
    default:
        return bench_write_full(up ? c->up_fd[1] : c->down_fd[1], buf, n);
    }
}

/* Receive an n-byte message into buf, which has room for n + mq_size
   bytes (mq_receive wants room for a whole mq message); 0 or -1. */
static int chan_recv(struct chan *c, int up, void *buf, size_t n)
{
    mqd_t q = up ? c->up_q : c->down_q;
    switch (c->kind) {
    case DUPLEX:
    case ONEWAY:
        return mp_conn_recv(up ? c->up[0] : c->down[0], buf, n, MP_FOREVER) ==
                       (ssize_t)n
                   ? 0
                   : -1;
    case MQ:
        for (size_t off = 0; off < n;) {
            ssize_t r = mq_receive(q, (char *)buf + off, c->mq_size, NULL);
            if (r <= 0)
                return -1;
            off += (size_t)r;
        }
        return 0;
    default:
        return bench_read_full(up ? c->up_fd[0] : c->down_fd[0], buf, n);
    }
}

static char *buffer(const struct chan *c, size_t n)
{
    char *b = calloc(1, n + c->mq_size + 8);
    if (b == NULL)
        fail("malloc");
    return b;
}

/* The child: echo each message, or take them all and answer once. */
static int child(void *arg)
{
    struct job *j = arg;
    char *b = buffer(j->c, j->size);
    for (long i = 0; i < j->count; i++) {
        if (chan_recv(j->c, 0, b, j->size) != 0)
            return 1;
        if (!j->ack && chan_send(j->c, 1, b, j->size) != 0)
            return 1;
    }
    if (j->ack && chan_send(j->c, 1, b, 8) != 0)
        return 1;
    free(b);
    return 0;
}

/* Median round trip of n 8-byte messages, in microseconds. */
static double round_trip(enum kind kind, long n)
{
    struct chan c;
    chan_open(&c, kind, 8);
    struct job *j = mp_shared_alloc(sizeof *j);
    *j = (struct job){.c = &c, .count = n, .size = 8};
    mp_process *p = bench_start(child, j);
    double *v = malloc(sizeof(double) * (size_t)n);
    char *m = buffer(&c, 8);
    for (long i = 0; i < n; i++) {
        double t0 = bench_now();
        memcpy(m, &i, sizeof i);
        if (chan_send(&c, 0, m, 8) != 0 || chan_recv(&c, 1, m, 8) != 0)
            fail("round trip");
        v[i] = (bench_now() - t0) * 1e6;
        long back;
        memcpy(&back, m, sizeof back);
        if (back != i) {
            fprintf(stderr, "bench_conn: got %ld back for %ld\n", back, i);
            exit(1);
        }
    }
    bench_finish(p, "bench_conn");
    double med = bench_median(v, (size_t)n);
    free(v);
    free(m);
    mp_shared_free(j);
    chan_close(&c);
    return med;
}

/* GB/s of n messages of size bytes, until the child answers that it has
   them all. */
static double throughput(enum kind kind, long n, size_t size)
{
    struct chan c;
    chan_open(&c, kind, size);
    struct job *j = mp_shared_alloc(sizeof *j);
    *j = (struct job){.c = &c, .count = n, .size = size, .ack = 1};
    mp_process *p = bench_start(child, j);
    char *m = buffer(&c, size);
    memset(m, 1, size);
    double t0 = bench_now();
    for (long i = 0; i < n; i++)
        if (chan_send(&c, 0, m, size) != 0)
            fail("send");
    if (chan_recv(&c, 1, m, 8) != 0)
        fail("ack");
    double t = bench_now() - t0;
    bench_finish(p, "bench_conn");
    free(m);
    mp_shared_free(j);
    chan_close(&c);
    return (double)n * (double)size / t / 1e9;
}

/* One figure of one channel kind: round trips, or the median of 3
   throughput runs. */
static void figure(const char *name, const char *impl, enum kind kind,
                   double scale)
{
    if (!bench_want(name))
        return;
    if (strncmp(name, "conn.round_trip", 15) == 0) {
        bench_report(name, impl, round_trip(kind, (long)(scale * 100000)),
                     "us");
        return;
    }
    double v[3];
    for (int i = 0; i < 3; i++)
        v[i] = throughput(kind, (long)(scale * 20000), 65536);
    bench_report(name, impl, bench_median(v, 3), "GB/s");
}

int main(int argc, char **argv)
{
    double scale;
    const char *impl = bench_init(&argc, &argv, 1, &scale);
    if (strcmp(impl, "raw") == 0) {
        /* One figure name per measure; the kernel channel is the impl. */
        const char *rt = "conn.round_trip_8B", *tp = "conn.throughput_64KiB";
        figure(rt, "raw", PIPE, scale);
        figure(rt, "raw_socketpair", SOCKET, scale);
        figure(rt, "raw_mq", MQ, scale);
        figure(tp, "raw", PIPE, scale);
        figure(tp, "raw_socketpair", SOCKET, scale);
        figure(tp, "raw_mq", MQ, scale);
        return 0;
    }
    figure("conn.round_trip_8B.duplex", impl, DUPLEX, scale);
    figure("conn.round_trip_8B.oneway", impl, ONEWAY, scale);
    figure("conn.throughput_64KiB.duplex", impl, DUPLEX, scale);
    figure("conn.throughput_64KiB.oneway", impl, ONEWAY, scale);
    return 0;
}
