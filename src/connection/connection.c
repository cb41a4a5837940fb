/* connection.c - Pipe and Connection: length-prefixed byte messages over a
   non-blocking socket pair (duplex) or pipe (one-way), with exact
   deadlines. */
#include "../core/core.h"
#include "../platform/platform.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

/* The wire format: each message is an 8-byte little-endian length, then
   that many payload bytes. Descriptors are non-blocking and every wait is
   a poll against the call's absolute deadline, so a timeout never cuts a
   read or write short by more than the time left, and a signal (EINTR)
   only restarts the poll.

   The receiver reads exactly one message at a time (never ahead), so a
   fork child that inherits the connection between two messages shares
   nothing but the descriptor. What a call has read of an unfinished
   message stays in the connection for the next call: the header bytes in
   hdr, the payload bytes in msg. A message longer than the caller's
   buffer is left unread past its header, in the descriptor, where
   poll(2) and mp_wait still see it (a copy held here would hide it). */

/* HDR - bytes of the length prefix. */
#define HDR 8

struct mp_conn {
    int fd;
    int readable; /* recv allowed: duplex, or the read end of a pipe */
    int writable; /* send allowed: duplex, or the write end of a pipe */
    int sock;     /* fd is a socket (duplex), else a pipe */
    int broken;   /* a send failed part-way: writing is shut down */
    int rx_lost;  /* received bytes could not be kept: the stream lost
                     its place, every recv says MP_EIO */
    /* The message being received. */
    unsigned char hdr[HDR];
    size_t hdr_got;     /* header bytes read; HDR: len is known */
    size_t len;         /* payload length */
    unsigned char *msg; /* payload kept here (malloc), or NULL */
    size_t msg_got;     /* payload bytes in msg (0 when msg is NULL) */
};

/* ---- creation and closing -----------------------------------------------
 */

/* A connection object around fd, or NULL when out of memory. */
static mp_conn *conn_new(int fd, int readable, int writable, int sock)
{
    mp_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fd = fd;
    c->readable = readable;
    c->writable = writable;
    c->sock = sock;
    return c;
}

int mp_pipe_new(mp_conn **a, mp_conn **b, int duplex)
{
    if (a == NULL || b == NULL)
        return MP_EINVAL;
    *a = *b = NULL;
    int fds[2];
    int r = duplex ? mp__stream_pair(fds) : mp__pipe_nb(fds);
    if (r < 0)
        return r;
    /* pipe2 gives (read end, write end): Python's (reader, writer). */
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

/* Store v as 8 little-endian bytes. */
static void put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < HDR; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Drop the first n bytes of the two buffers of iov (header, payload). */
static void iov_advance(struct iovec iov[2], size_t n)
{
    for (int i = 0; i < 2 && n > 0; i++) {
        size_t k = n < iov[i].iov_len ? n : iov[i].iov_len;
        iov[i].iov_base = (char *)iov[i].iov_base + k;
        iov[i].iov_len -= k;
        n -= k;
    }
}

/* A send stopped part-way: the peer holds the start of a message whose
   end will never come. Shutting writing down makes the peer see the end
   of the stream (MP_EOF, dropping the torn part) instead of waiting for
   the rest or mistaking a later message for it. */
static void send_break(mp_conn *c)
{
    c->broken = 1;
    (void)mp__shutdown_wr(c->fd, c->sock);
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
    /* Header and payload in one system call: one packet for small ones. */
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = HDR},
                           {.iov_base = (void *)data, .iov_len = len}};
    size_t sent = 0, total = HDR + len;
    while (sent < total) {
        ssize_t n = mp__writev_nb(c->fd, c->sock, iov, 2);
        if (n > 0) {
            sent += (size_t)n;
            iov_advance(iov, (size_t)n);
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
            r = MP_EPIPE; /* a socket peer that died with data unread */
        } else if (n == 0) {
            r = MP_EIO; /* writev never writes nothing of a non-empty ask */
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
    c->hdr_got = 0;
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

/* Read until *got == want bytes are at dst, waiting until dl. Returns 0,
   MP_ETIMEDOUT, MP_EOF (end of stream; a socket reset by a peer that died
   with data unread is its end too), or a negative errno. *got counts
   what was read in any case. */
static int read_into(mp_conn *c, void *dst, size_t want, size_t *got,
                     uint64_t dl)
{
    while (*got < want) {
        ssize_t n = mp__read_nb(c->fd, (char *)dst + *got, want - *got);
        if (n > 0) {
            *got += (size_t)n;
            continue;
        }
        if (n == 0 || n == MP_ECONNRESET)
            return MP_EOF;
        if (n != MP_EAGAIN)
            return (int)n;
        /* Try first, wait only when empty: a timeout of 0 still takes
           what is already there. */
        int r = mp__poll_in(c->fd, dl);
        if (r == 0)
            return MP_ETIMEDOUT;
        if (r < 0)
            return r;
    }
    return 0;
}

/* Make the next message's length known (c->len). Returns 0 or the codes
   of read_into (a partial header stays in c->hdr). */
static int rx_header(mp_conn *c, uint64_t dl)
{
    if (c->rx_lost)
        return MP_EIO;
    if (c->hdr_got == HDR)
        return 0;
    int r = read_into(c, c->hdr, HDR, &c->hdr_got, dl);
    if (r == MP_EOF)
        return rx_eof(c);
    if (r < 0)
        return r;
    uint64_t len = get_le64(c->hdr);
    if (len > (uint64_t)SSIZE_MAX - HDR) {
        c->rx_lost = 1; /* no sender of ours wrote this */
        return MP_EIO;
    }
    c->len = (size_t)len;
    return 0;
}

/* Read the rest of the payload into c->msg, allocating it first if no
   earlier call began it. Returns 0, MP_ENOMEM (nothing read: the message
   stays), or the codes of read_into. */
static int rx_buffered(mp_conn *c, uint64_t dl)
{
    if (c->msg == NULL) {
        c->msg = malloc(c->len > 0 ? c->len : 1);
        if (c->msg == NULL)
            return MP_ENOMEM;
    }
    int r = read_into(c, c->msg, c->len, &c->msg_got, dl);
    return r == MP_EOF ? rx_eof(c) : r;
}

/* Read the payload straight into the caller's buf (it fits): no copy for
   the common case. If the call ends part-way, what came is moved into
   c->msg, since the next call may bring another buffer. */
static ssize_t rx_direct(mp_conn *c, void *buf, uint64_t dl)
{
    size_t got = 0, len = c->len;
    int r = read_into(c, buf, len, &got, dl);
    if (r == 0) {
        rx_reset(c);
        return (ssize_t)len;
    }
    if (r == MP_EOF)
        return rx_eof(c);
    if (got > 0) {
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
        r = rx_header(c, dl);
    if (r < 0)
        return r;
    /* Too long: the message stays where it is, its header here and its
       payload still in the descriptor (or partly in c->msg), so that a
       later call with more room, or mp_conn_recv_alloc, takes it, and
       poll(2) or mp_wait on the descriptor still sees it. */
    if (c->len > cap)
        return MP_EMSGSIZE;
    if (c->msg == NULL)
        return rx_direct(c, buf, dl);
    r = rx_buffered(c, dl); /* a payload begun by an earlier call */
    if (r < 0)
        return r;
    size_t len = c->len;
    if (len > 0)
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
    r = rx_header(c, dl);
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
    /* No complete message ever waits in the connection (one is kept
       only while its payload is unfinished), so the descriptor tells. */
    if (c->rx_lost)
        return 1; /* recv answers MP_EIO at once */
    return mp__poll_in(c->fd, dl);
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
