/* connection.c - Pipe and Connection: framed byte messages over AF_UNIX
   stream socket pairs, one system call per message on each side, with
   exact deadlines. */
#include "../core/core.h"
#include "../platform/platform.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* The wire format: a frame is an 8-byte little-endian payload length,
   the payload, and zero padding up to FRAME bytes when shorter. Every
   frame being at least FRAME bytes long, a receiver at a message
   boundary can ask for FRAME bytes in one read without ever taking a
   byte of the next message: a message of up to BODY bytes comes whole in
   that read, a longer one in one more read of the rest.

   Never reading ahead matters: a fork child that inherits the connection
   between two messages, or processes that share an end and take turns
   under a lock, share nothing but the descriptor. What a call has read of
   an unfinished message stays in the connection for the next call: the
   frame's first bytes in head, a longer payload in msg.

   Both kinds of pipe are socket pairs (a one-way pipe simply never sends
   on its receiving end): MSG_NOSIGNAL keeps SIGPIPE away within the one
   send, where a pipe would need the signal mask changed and restored
   around every write; measured on a 2-core VM, that made a pipe's round
   trip 1.31-1.47x, a socket pair's is 1.12-1.16x.

   The descriptions are blocking and each call chooses. A call without a
   time limit waits inside its one recv or sendmsg (a duplex end may
   ppoll first: rx_poll_first). Any other wait is a ppoll against the
   call's absolute deadline followed by a call that cannot block, since
   another process sharing the end may have taken the data in between;
   a signal (EINTR) only restarts the wait. */

/* HDR - bytes of the length prefix. */
#define HDR 8

/* FRAME - the least bytes of a frame. Measured on a 2-core VM: 64-byte
   frames round-trip as fast as 16-byte ones; a larger FRAME would take
   more messages in one read but make more small-buffer receives read
   their header first (see rx_head). */
#define FRAME 64

/* BODY - the payload bytes that come with the header in the first read. */
#define BODY (FRAME - HDR)

/* SNDBUF_MAX - how far a connection grows its send buffer (as the kernel
   counts it, overheads included) for large messages: a message up to
   about this size goes in one send when the peer has read what came
   before. */
#define SNDBUF_MAX ((size_t)4 << 20)

struct mp_conn {
    int fd;
    int readable;   /* recv allowed: duplex, or a one-way pipe's reader */
    int writable;   /* send allowed: duplex, or a one-way pipe's writer */
    int duplex;     /* both ways on one socket */
    int broken;     /* a send failed part-way: writing is shut down */
    int rx_lost;    /* received bytes could not be kept: the stream lost
                       its place, every recv says MP_EIO */
    size_t sndbuf;  /* the send buffer's size once asked, else 0 */
    int rx_polling; /* duplex: waits ppoll before recv (rx_poll_first) */
    int rx_probe;   /* waits since the last probe */
    /* The message being received. */
    size_t head_got;           /* bytes of head read; >= HDR: len is known */
    size_t len;                /* payload length */
    unsigned char *msg;        /* a payload over BODY begun past head (malloc:
                                  len bytes, the first BODY copied from head) */
    size_t msg_got;            /* payload bytes in msg (0 when msg is NULL) */
    unsigned char head[FRAME]; /* the frame's first FRAME bytes */
};

/* ---- creation and closing -----------------------------------------------
 */

/* A connection object around fd, or NULL when out of memory. */
static mp_conn *conn_new(int fd, int readable, int writable, int duplex)
{
    mp_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->readable = readable;
    c->writable = writable;
    c->duplex = duplex;
    return c;
}

int mp_pipe_new(mp_conn **a, mp_conn **b, int duplex)
{
    if (a == NULL || b == NULL)
        return MP_EINVAL;
    *a = *b = NULL;
    int fds[2];
    int r = mp__stream_pair(fds);
    if (r < 0)
        return r;
    /* One-way: (reader, writer), Python's order. The unused direction is
       not shut down: that would make the writer's descriptor readable
       for poll(2) at once, where a pipe's write end (and this one) is
       ready only when the reader is gone. */
    mp_conn *x = conn_new(fds[0], 1, duplex, duplex);
    mp_conn *y = conn_new(fds[1], duplex, 1, duplex);
    if (x == NULL || y == NULL) {
        free(x);
        free(y);
        mp__close(fds[0]);
        mp__close(fds[1]);
        return MP_ENOMEM;
    }
    *a = x;
    *b = y;
    return 0;
}

int mp_conn_fileno(const mp_conn *c)
{
    if (c == NULL)
        return MP_EINVAL;
    return c->fd >= 0 ? c->fd : MP_EBADF;
}

int mp_conn_close(mp_conn *c)
{
    if (c == NULL)
        return 0;
    mp__close(c->fd);
    free(c->msg);
    free(c);
    return 0;
}

/* ---- sending ------------------------------------------------------------
 */

/* The padding of short frames. */
static const unsigned char zeros[BODY];

/* Store v as 8 little-endian bytes. */
static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < HDR; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Drop the first n bytes of the n_iov buffers of iov. */
static void iov_advance(struct iovec *iov, int n_iov, size_t n)
{
    for (int i = 0; i < n_iov && n > 0; i++) {
        size_t k = n < iov[i].iov_len ? n : iov[i].iov_len;
        iov[i].iov_base = (char *)iov[i].iov_base + k;
        iov[i].iov_len -= k;
        n -= k;
    }
}

/* Make room for a frame of total bytes in the send buffer, once: a frame
   larger than the buffer would otherwise go out in pieces, a wait for
   the reader between each. Grown only when such a frame is sent, and to
   at most SNDBUF_MAX; failure only costs speed. */
static void tx_room(mp_conn *c, size_t total)
{
    if (c->sndbuf >= SNDBUF_MAX)
        return;
    /* Twice the frame: the kernel counts its overheads in the size, and
       the previous message may still be there, partly read. */
    size_t want = total > SNDBUF_MAX / 2 ? SNDBUF_MAX : 2 * total;
    if (c->sndbuf >= want)
        return;
    ssize_t now = mp__sock_grow_sndbuf(c->fd, want);
    c->sndbuf = now > 0 ? (size_t)now : SNDBUF_MAX; /* failed: stop asking */
    if (c->sndbuf < want)
        c->sndbuf = SNDBUF_MAX; /* capped by the system: as good as it gets */
}

/* A send stopped part-way: the peer holds the start of a message whose
   end will never come. Shutting writing down makes the peer see the end
   of the stream (MP_EOF, dropping the torn part) instead of waiting for
   the rest or mistaking a later message for it. */
static void send_break(mp_conn *c)
{
    c->broken = 1;
    (void)mp__shutdown_wr(c->fd);
}

int mp_conn_send(mp_conn *c, const void *data, size_t len, double timeout)
{
    if (c == NULL || (data == NULL && len > 0))
        return MP_EINVAL;
    if (!c->writable)
        return MP_EBADF;
    /* A receiver returns the length as ssize_t: larger cannot arrive. */
    if (len > (size_t)SSIZE_MAX - HDR)
        return MP_EINVAL;
    uint64_t dl;
    if (mp__deadline(timeout, &dl) < 0)
        return MP_EINVAL;
    if (c->broken)
        return MP_EPIPE;

    unsigned char hdr[HDR];
    put_le64(hdr, len);
    size_t pad = len < BODY ? BODY - len : 0;
    /* The whole frame in one system call. */
    struct iovec iov[3] = {{.iov_base = hdr, .iov_len = HDR},
                           {.iov_base = (void *)data, .iov_len = len},
                           {.iov_base = (void *)zeros, .iov_len = pad}};
    size_t sent = 0, total = HDR + len + pad;
    /* Up to 64 KiB the default send buffer (208 KiB) holds the frame. */
    if (total > ((size_t)64 << 10) + FRAME)
        tx_room(c, total);
    while (sent < total) {
        ssize_t n = mp__sock_sendv(c->fd, iov, 3, dl == MP__NO_DEADLINE);
        if (n > 0) {
            sent += (size_t)n;
            iov_advance(iov, 3, (size_t)n);
            continue;
        }
        int r = (int)n;
        if (n == MP_EAGAIN) {
            r = mp__poll_out(c->fd, dl);
            if (r > 0)
                continue;
            if (r == 0)
                r = MP_ETIMEDOUT;
        } else if (n == MP_ECONNRESET) {
            r = MP_EPIPE; /* a peer that died with data unread */
        } else if (n == 0) {
            r = MP_EIO; /* sendmsg never sends nothing of a non-empty ask */
        }
        if (sent > 0)
            send_break(c);
        return r;
    }
    return 0;
}

/* ---- receiving ----------------------------------------------------------
 */

/* The 8 little-endian bytes at p. */
static uint64_t get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = HDR - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Forget the message being received (its buffer is freed or taken). */
static void rx_reset(mp_conn *c)
{
    c->head_got = 0;
    c->len = 0;
    c->msg = NULL;
    c->msg_got = 0;
}

/* The end of the stream came: a message cut in the middle (the sender
   died or broke its side part-way) can never be completed, so it is
   dropped and the caller gets MP_EOF, as at a message boundary. */
static int rx_eof(mp_conn *c)
{
    free(c->msg);
    rx_reset(c);
    return MP_EOF;
}

/* 1 if the message being received is all in the connection (only after
   mp_conn_recv_alloc had no memory for a short one): poll(2) cannot see
   it, so mp_conn_poll must. */
static int rx_complete(const mp_conn *c)
{
    if (c->head_got < FRAME)
        return 0;
    return c->len <= BODY || (c->msg != NULL && c->msg_got == c->len);
}

/* RX_PROBE - while a duplex end polls first, every RX_PROBE-th wait
   tries a receive first instead, to notice that messages now arrive
   ahead of the receiver. */
#define RX_PROBE 8

/* 1 if a duplex end's wait without limit should ppoll before its recv.
   Waiting inside recv, a duplex end is woken each time the peer reads
   what it sent (the kernel's write-space wake-up shares the socket's wait
   queue): a wasted switch per round trip, where ppoll waits for input
   only. But when messages are already there (a stream), the poll is one
   system call too many. So an end polls first after a receive found
   nothing, and tries first again once a probe finds a message. Measured
   on a 2-core VM, 8-byte round trips: waiting in recv 1.62-1.70x a
   pipe's, trying then polling 1.49-1.54x, polling first 1.41-1.45x. */
static int rx_poll_first(mp_conn *c)
{
    if (!c->rx_polling)
        return 0;
    if (++c->rx_probe < RX_PROBE)
        return 1;
    c->rx_probe = 0;
    c->rx_polling = 0; /* set again if this try finds nothing */
    return 0;
}

/* Receive some of the want bytes at dst, waiting until dl. Without a
   deadline the wait is the recv itself (or a ppoll, on a duplex end that
   polls first); with one it is a ppoll, then a recv that cannot block.
   Returns the count (> 0), MP_ETIMEDOUT, MP_EOF
   (end of stream; a socket reset by a peer that died with data unread is
   its end too), or a negative errno. */
static ssize_t rx_some(mp_conn *c, void *dst, size_t want, uint64_t dl)
{
    int block = dl == MP__NO_DEADLINE;
    if (block && c->duplex && rx_poll_first(c)) {
        int r = mp__sock_poll_in(c->fd, dl);
        if (r < 0)
            return r;
        block = 0;
    }
    for (;;) {
        ssize_t n = mp__sock_recv(c->fd, dst, want, block && !c->duplex);
        if (n > 0)
            return n;
        if (n == 0 || n == MP_ECONNRESET)
            return MP_EOF;
        if (n != MP_EAGAIN)
            return n;
        if (block && c->duplex)
            c->rx_polling = 1; /* nothing there: poll first from now */
        /* Tried first, wait only when empty: a timeout of 0 still takes
           what is already there. (MP_EAGAIN while blocking: another
           process took the data after our poll, or someone made the
           description non-blocking; poll again.) */
        int r = mp__sock_poll_in(c->fd, dl);
        if (r == 0)
            return MP_ETIMEDOUT;
        if (r < 0)
            return r;
    }
}

/* Read until *got == want bytes are at dst, waiting until dl. Returns 0
   or the codes of rx_some; *got counts what was read in any case. */
static int read_into(mp_conn *c, void *dst, size_t want, size_t *got,
                     uint64_t dl)
{
    while (*got < want) {
        ssize_t n = rx_some(c, (char *)dst + *got, want - *got, dl);
        if (n < 0)
            return (int)n;
        *got += (size_t)n;
    }
    return 0;
}

/* Read the next frame's first FRAME bytes into c->head, for a caller
   taking at most cap payload bytes. Returns 0, MP_EMSGSIZE (as soon as
   the length is known to exceed cap: the rest stays in the descriptor),
   MP_EIO (a length no sender of ours wrote), or the codes of rx_some (a
   partial head stays in c->head). */
static int rx_head(mp_conn *c, size_t cap, uint64_t dl)
{
    if (c->rx_lost)
        return MP_EIO;
    for (;;) {
        if (c->head_got >= HDR && c->len > cap)
            return MP_EMSGSIZE;
        if (c->head_got == FRAME)
            return 0;
        /* With room for less than BODY bytes, the header comes alone
           first: a message too long for the buffer must stay in the
           descriptor, where poll(2) and mp_wait see it, and a short one
           taken whole would be held here, out of their sight. */
        size_t want = c->head_got < HDR && cap < BODY ? HDR : FRAME;
        ssize_t n = rx_some(c, c->head + c->head_got, want - c->head_got, dl);
        if (n == MP_EOF)
            return rx_eof(c);
        if (n < 0)
            return (int)n;
        size_t before = c->head_got;
        c->head_got += (size_t)n;
        if (before < HDR && c->head_got >= HDR) {
            uint64_t len = get_le64(c->head);
            if (len > (uint64_t)SSIZE_MAX - HDR) {
                c->rx_lost = 1; /* no sender of ours wrote this */
                return MP_EIO;
            }
            c->len = (size_t)len;
        }
    }
}

/* Read the rest of the payload into c->msg (len bytes), making c->msg
   from the head first if no earlier call did. Returns 0, MP_ENOMEM (nothing
   read: the message stays), or the codes of read_into. */
static int rx_buffered(mp_conn *c, uint64_t dl)
{
    if (c->msg == NULL) {
        c->msg = malloc(c->len > 0 ? c->len : 1);
        if (c->msg == NULL)
            return MP_ENOMEM;
        c->msg_got = c->len < BODY ? c->len : BODY;
        memcpy(c->msg, c->head + HDR, c->msg_got);
    }
    int r = read_into(c, c->msg, c->len, &c->msg_got, dl);
    return r == MP_EOF ? rx_eof(c) : r;
}

/* Read the rest of a payload over BODY straight into the caller's buf
   (it fits): no copy for the common case. If the call ends part-way,
   what came is moved into c->msg, since the next call may bring another
   buffer. */
static ssize_t rx_direct(mp_conn *c, unsigned char *buf, uint64_t dl)
{
    size_t got = BODY, len = c->len;
    memcpy(buf, c->head + HDR, BODY);
    int r = read_into(c, buf, len, &got, dl);
    if (r == 0) {
        rx_reset(c);
        return (ssize_t)len;
    }
    if (r == MP_EOF)
        return rx_eof(c);
    if (got > BODY) {
        c->msg = malloc(len);
        if (c->msg == NULL) {
            c->rx_lost = 1; /* bytes consumed and nowhere to keep them */
            return MP_ENOMEM;
        }
        memcpy(c->msg, buf, got);
        c->msg_got = got;
    }
    return r;
}

/* The checks every receiving call starts with; computes the deadline. */
static int rx_check(const mp_conn *c, int bad_arg, double timeout, uint64_t *dl)
{
    if (c == NULL || bad_arg)
        return MP_EINVAL;
    if (!c->readable)
        return MP_EBADF;
    return mp__deadline(timeout, dl) < 0 ? MP_EINVAL : 0;
}

ssize_t mp_conn_recv(mp_conn *c, void *buf, size_t cap, double timeout)
{
    uint64_t dl;
    int r = rx_check(c, buf == NULL && cap > 0, timeout, &dl);
    if (r == 0)
        r = rx_head(c, cap, dl);
    if (r < 0)
        return r;
    size_t len = c->len;
    if (len <= BODY) {
        /* The common case: the message came with its header. Copied from
           the head, so buf past len is never written. */
        if (len > 0)
            memcpy(buf, c->head + HDR, len);
        rx_reset(c);
        return (ssize_t)len;
    }
    if (c->msg == NULL)
        return rx_direct(c, buf, dl);
    r = rx_buffered(c, dl); /* a payload begun by an earlier call */
    if (r < 0)
        return r;
    memcpy(buf, c->msg, len);
    free(c->msg);
    rx_reset(c);
    return (ssize_t)len;
}

ssize_t mp_conn_recv_alloc(mp_conn *c, void **out, double timeout)
{
    uint64_t dl;
    int r = rx_check(c, out == NULL, timeout, &dl);
    if (r < 0)
        return r;
    *out = NULL;
    r = rx_head(c, SIZE_MAX, dl);
    if (r == 0)
        r = rx_buffered(c, dl);
    if (r < 0)
        return r;
    size_t len = c->len;
    *out = c->msg; /* the caller owns it now */
    rx_reset(c);
    return (ssize_t)len;
}

int mp_conn_poll(const mp_conn *c, double timeout)
{
    uint64_t dl;
    int r = rx_check(c, 0, timeout, &dl);
    if (r < 0)
        return r;
    if (c->rx_lost || rx_complete(c))
        return 1; /* recv answers at once (MP_EIO, or the message) */
    /* Otherwise what is missing is in the descriptor, or yet to come. */
    return mp__sock_poll_in(c->fd, dl);
}

/* ---- waiting on many ----------------------------------------------------
 */

int mp_wait(const int *fds, size_t n, int *ready, double timeout)
{
    if (fds == NULL && n > 0)
        return MP_EINVAL;
    /* poll(2) takes no more than the descriptor limit; an absurd n must
       be refused before fds is read that far. */
    if (n > mp__fd_limit())
        return MP_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (fds[i] < 0)
            return MP_EINVAL;
    uint64_t dl;
    if (mp__deadline(timeout, &dl) < 0)
        return MP_EINVAL;
    return mp__poll_many(fds, n, ready, dl);
}
