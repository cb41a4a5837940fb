/* sys.c - clocks, timed mutex locks, fork and exit hooks, CPU affinity
   and reading small files of /proc and /sys. */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t mp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void mp__sleep_ns(uint64_t ns)
{
    struct timespec ts = mp__timespec(ns);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int mp__mutex_lock_until(pthread_mutex_t *mu, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX) {
        pthread_mutex_lock(mu);
        return 1;
    }
    /* mp__now_ns is CLOCK_MONOTONIC, which clocklock takes as is. */
    struct timespec ts = mp__timespec(deadline_ns);
    return pthread_mutex_clocklock(mu, CLOCK_MONOTONIC, &ts) == 0;
}

int mp__on_fork(void (*prepare)(void), void (*parent)(void),
                void (*child)(void))
{
    return pthread_atfork(prepare, parent, child) == 0 ? 0 : -ENOMEM;
}

int mp__on_exit(void (*fn)(void))
{
    return atexit(fn) == 0 ? 0 : -ENOMEM;
}

int mp__affinity_cpus(void)
{
    /* Large enough for any machine: grow until the kernel accepts. */
    for (size_t ncpu = 1024; ncpu <= (1u << 20); ncpu *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL)
            return -ENOMEM;
        size_t sz = CPU_ALLOC_SIZE(ncpu);
        if (sched_getaffinity(0, sz, set) == 0) {
            int n = CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return n;
        }
        int e = errno;
        CPU_FREE(set);
        if (e != EINVAL)
            return -e;
    }
    return -EINVAL;
}

ssize_t mp__read_file(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got + 1 < len) {
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return -e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

int mp__self_cmdline(char ***argvp)
{
    size_t cap = 4096;
    char *buf = NULL;
    ssize_t n;
    for (;;) {
        char *nb = realloc(buf, cap);
        if (nb == NULL) {
            free(buf);
            return -ENOMEM;
        }
        buf = nb;
        n = mp__read_file("/proc/self/cmdline", buf, cap);
        if (n < 0) {
            free(buf);
            return (int)n;
        }
        if ((size_t)n + 1 < cap)
            break;
        cap *= 2;
    }
    size_t argc = 0;
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            argc++;
    /* One block: the pointer vector, then the strings. */
    size_t vec = (argc + 1) * sizeof(char *);
    char **argv = malloc(vec + (size_t)n + 1);
    if (argv == NULL) {
        free(buf);
        return -ENOMEM;
    }
    char *s = (char *)argv + vec;
    memcpy(s, buf, (size_t)n + 1);
    free(buf);
    size_t k = 0;
    for (ssize_t i = 0; i < n && k < argc; k++) {
        argv[k] = s + i;
        i += (ssize_t)strlen(s + i) + 1;
    }
    argv[k] = NULL;
    *argvp = argv;
    return 0;
}
