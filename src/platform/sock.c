/* sock.c - non-blocking stream sockets and pipes for connections: creation,
   reads, SIGPIPE-safe writes, shutdown and deadline-bounded polls. */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int mp__stream_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                      fds) == 0
               ? 0
               : -errno;
}

int mp__pipe_nb(int fds[2])
{
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0 ? 0 : -errno;
}

ssize_t mp__read_nb(int fd, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* A socket write: MSG_NOSIGNAL turns a gone peer into EPIPE. */
static ssize_t sock_writev(int fd, const struct iovec *iov, int iovcnt)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)iovcnt};
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* A pipe write. Pipes have no MSG_NOSIGNAL, and changing the process's
   SIGPIPE disposition would change the application's. The kernel sends
   the SIGPIPE of a write to a reader-less pipe to the writing thread, so
   it is blocked in this thread around the write and, if the write raised
   it (it was not already pending), consumed with sigtimedwait before the
   old mask comes back: the way libuv and OpenSSL-based code do it. */
static ssize_t pipe_writev(int fd, const struct iovec *iov, int iovcnt)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    ssize_t n;
    do
        n = writev(fd, iov, iovcnt);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : 0;
    if (err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return n < 0 ? -err : n;
}

ssize_t mp__writev_nb(int fd, int sock, const struct iovec *iov, int iovcnt)
{
    return sock ? sock_writev(fd, iov, iovcnt) : pipe_writev(fd, iov, iovcnt);
}

int mp__shutdown_wr(int fd, int sock)
{
    if (sock)
        return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
    /* A pipe has no shutdown: put /dev/null in place of the write end, so
       the descriptor number stays valid until its owner closes it. */
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (nul < 0)
        return -errno;
    int r = dup3(nul, fd, O_CLOEXEC) < 0 ? -errno : 0;
    close(nul);
    return r;
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
