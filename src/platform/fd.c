/* fd.c - file descriptors: pipes, socket pairs, descriptor passing and
   readiness waits. */
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

void mp__close(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}

ssize_t mp__pread(int fd, void *buf, size_t len, uint64_t off)
{
    for (;;) {
        ssize_t n = pread(fd, buf, len, (off_t)off);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

size_t mp__fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    return rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)rl.rlim_cur;
}

int mp__fd_type(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    return (int)(st.st_mode & S_IFMT);
}

/* "/proc/self/fd/<fd>" into path (32 bytes). Not snprintf: a spawned
   child checks its descriptors with it at every start, and printf's first
   use costs page faults and symbol binding there. */
static void proc_fd_path(char path[32], int fd)
{
    static const char pre[] = "/proc/self/fd/";
    char digits[12];
    int n = 0;
    unsigned v = (unsigned)fd;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    memcpy(path, pre, sizeof pre - 1);
    char *p = path + sizeof pre - 1;
    while (n > 0)
        *p++ = digits[--n];
    *p = '\0';
}

int mp__fd_is_memfd(int fd, const char *name, size_t size)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != (uint64_t)size)
        return 0;
    char path[32], link[256];
    proc_fd_path(path, fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0)
        return 0;
    link[n] = '\0';
    /* "/memfd:<name> (deleted)" */
    size_t k = strlen(name);
    return n > 7 && strncmp(link, "/memfd:", 7) == 0 &&
           strncmp(link + 7, name, k) == 0 &&
           strcmp(link + 7 + k, " (deleted)") == 0;
}

int mp__secure_exec(void)
{
    return getauxval(AT_SECURE) != 0;
}

int mp__pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno;
}

int mp__seqpacket_pair(int fds[2])
{
    return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) == 0
               ? 0
               : -errno;
}

int mp__send_msg(int sock, const void *buf, size_t len, int fd)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&ctl, 0, sizeof ctl);
        msg.msg_control = ctl.space;
        msg.msg_controllen = sizeof ctl.space;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

ssize_t mp__recv_msg(int sock, void *buf, size_t len, int *fd)
{
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        struct cmsghdr h;
        char space[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd != NULL) {
        *fd = -1;
        msg.msg_control = ctl.space;
        msg.msg_controllen = sizeof ctl.space;
    }
    ssize_t n;
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (fd != NULL) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
             c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                c->cmsg_len >= CMSG_LEN(sizeof(int)))
                memcpy(fd, CMSG_DATA(c), sizeof(int));
        }
    }
    return n;
}

int mp__poll_in(int fd, uint64_t deadline_ns)
{
    for (;;) {
        int ms;
        if (deadline_ns == UINT64_MAX) {
            ms = -1;
        } else {
            uint64_t now = mp__now_ns();
            if (now >= deadline_ns) {
                ms = 0;
            } else {
                uint64_t left = (deadline_ns - now + 999999u) / 1000000u;
                ms = left > INT_MAX ? INT_MAX : (int)left;
            }
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, ms);
        if (r > 0)
            return 1;
        if (r == 0) {
            if (ms == 0 || mp__now_ns() >= deadline_ns)
                return 0;
            continue; /* poll rounds to ms: wait out the remainder */
        }
        if (errno != EINTR)
            return -errno;
    }
}

int mp__poll_in2(int a, int b, int ms)
{
    struct pollfd p[2] = {{.fd = a, .events = POLLIN},
                          {.fd = b, .events = POLLIN}};
    for (;;) {
        int r = poll(p, 2, ms);
        if (r >= 0)
            return (p[0].revents ? 1 : 0) | (p[1].revents ? 2 : 0);
        if (errno != EINTR)
            return -errno;
    }
}

int mp__fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

int mp__fd_move(int fd, int at)
{
    int r = dup3(fd, at, O_CLOEXEC) < 0 ? -errno : at;
    close(fd);
    return r;
}

int mp__reopen_fd(int fd, int flags)
{
    char path[32];
    proc_fd_path(path, fd);
    int nfd = open(path, flags | O_CLOEXEC);
    return nfd < 0 ? -errno : nfd;
}

int mp__set_cloexec(int fd, int on)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0)
        return -errno;
    fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
    return fcntl(fd, F_SETFD, fl) == 0 ? 0 : -errno;
}
