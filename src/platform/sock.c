/* sock.c - stream socket pairs for connections: creation, receives that
   block or not per call, sends that never block or raise SIGPIPE, send
   buffer growth, shutdown and deadline-bounded polls. */
#include "platform.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int mp__stream_pair(int fds[2])
{
    /* Blocking descriptions: a call that may wait without limit waits
       inside recv or sendmsg, one system call; every other call passes
       MSG_DONTWAIT. */
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0
               ? 0
               : -errno;
}

ssize_t mp__sock_recv(int fd, void *buf, size_t len, int wait)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, wait ? 0 : MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

ssize_t mp__sock_sendv(int fd, const struct iovec *iov, int iovcnt, int wait)
{
    /* MSG_NOSIGNAL turns a gone peer into EPIPE without SIGPIPE: no
       signal mask to change around the call, so a send is one system
       call. */
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | (wait ? 0 : MSG_DONTWAIT));
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* The kernel's SO_SNDBUF of fd (the bytes it lets wait unread, counted
   with its overheads), or a negative errno. */
static ssize_t sndbuf_get(int fd)
{
    int v;
    socklen_t l = sizeof v;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &l) < 0)
        return -errno;
    return v;
}

ssize_t mp__sock_grow_sndbuf(int fd, size_t want)
{
    ssize_t cur = sndbuf_get(fd);
    if (cur < 0 || (size_t)cur >= want)
        return cur;
    /* The kernel doubles what it is given (its bookkeeping) and clamps
       it to net.core.wmem_max; asking half keeps the doubled size near
       want. Only ever grown: cur is at least the default here. */
    size_t half = want / 2 + 1;
    int v = half > (size_t)0x3fffffff ? 0x3fffffff : (int)half;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v) < 0)
        return -errno;
    return sndbuf_get(fd);
}

int mp__shutdown_wr(int fd)
{
    return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
}

/* ppoll until something is ready or deadline_ns passes (UINT64_MAX:
   never), recomputing the time left after EINTR. ppoll takes
   nanoseconds, so the deadline is exact, not rounded to milliseconds. */
static int poll_until(struct pollfd *p, nfds_t n, uint64_t deadline_ns)
{
    for (;;) {
        struct timespec ts, *tsp = NULL;
        uint64_t now = 0;
        if (deadline_ns != UINT64_MAX) {
            now = mp__now_ns();
            uint64_t left = now >= deadline_ns ? 0 : deadline_ns - now;
            ts = mp__timespec(left);
            tsp = &ts;
        }
        int r = ppoll(p, n, tsp, NULL);
        if (r > 0)
            return r;
        if (r == 0) {
            if (now >= deadline_ns || mp__now_ns() >= deadline_ns)
                return 0;
            continue; /* never report a time out before the deadline */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int mp__sock_poll_in(int fd, uint64_t deadline_ns)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll_until(&p, 1, deadline_ns);
    return r > 0 ? 1 : r;
}

int mp__poll_out(int fd, uint64_t deadline_ns)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r = poll_until(&p, 1, deadline_ns);
    return r > 0 ? 1 : r;
}

int mp__poll_many(const int *fds, size_t n, int *ready, uint64_t deadline_ns)
{
    struct pollfd small[16];
    struct pollfd *p = small;
    if (n > sizeof small / sizeof small[0]) {
        p = calloc(n, sizeof *p);
        if (p == NULL)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    int r = poll_until(p, (nfds_t)n, deadline_ns);
    if (r >= 0) {
        /* Any event counts: POLLHUP and POLLERR mean a read will not
           block; POLLNVAL (not open) as Python's selectors do. */
        r = 0;
        for (size_t i = 0; i < n; i++) {
            int on = p[i].revents != 0;
            r += on;
            if (ready != NULL)
                ready[i] = on;
        }
    }
    if (p != small)
        free(p);
    return r;
}
