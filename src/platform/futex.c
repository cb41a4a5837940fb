/* futex.c - futex waits and wakes, thread ids, and the kernel robust list
   head of the calling thread. */
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__thread pid_t mp__tls_tid MP__TLS;
__thread struct mp__robust_head *mp__tls_rhead MP__TLS;

/* pid_cache - this process's id; 0 until first asked, reset in fork
   children (glibc no longer caches it: getpid() is a system call). */
static pid_t pid_cache;

static void reset_after_fork(void)
{
    mp__tls_tid = 0;
    pid_cache = 0;
    /* glibc keeps the head at the same address (the thread's TCB) and
       re-registers it in the child, so the cached head stays valid. */
}

__attribute__((constructor)) static void futex_register_atfork(void)
{
    mp__on_fork(NULL, NULL, reset_after_fork);
}

int mp__futex_wait(uint32_t *addr, uint32_t val, uint64_t deadline_ns)
{
    struct timespec ts = mp__timespec(deadline_ns);
    struct timespec *tsp = deadline_ns != UINT64_MAX ? &ts : NULL;
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so an
       EINTR retry by the caller needs no recomputation. */
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, val, tsp, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    if (r == 0)
        return 0;
    switch (errno) {
    case EAGAIN:
        return 0;
    case ETIMEDOUT:
        return -ETIMEDOUT;
    case EINTR:
        return -EINTR;
    default:
        return -errno;
    }
}

int mp__futex_wake(uint32_t *addr, int n)
{
    long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
    return r < 0 ? -errno : (int)r;
}

int mp__futex_waitv(uint32_t *const *addrs, const uint32_t *vals, int n,
                    uint64_t deadline_ns)
{
    if (n < 1 || n > MP__WAITV_MAX)
        return -EINVAL;
    struct futex_waitv w[MP__WAITV_MAX];
    for (int i = 0; i < n; i++) {
        w[i].val = vals[i];
        w[i].uaddr = (uint64_t)(uintptr_t)addrs[i];
        w[i].flags = FUTEX_32; /* shared: the words are in shared memory */
        w[i].__reserved = 0;
    }
    struct timespec ts = mp__timespec(deadline_ns);
    struct timespec *tsp = deadline_ns != UINT64_MAX ? &ts : NULL;
    long r = syscall(SYS_futex_waitv, w, (unsigned)n, 0u, tsp, CLOCK_MONOTONIC);
    if (r >= 0 || errno == EAGAIN)
        return 0;
    return -errno;
}

pid_t mp__gettid_slow(void)
{
    pid_t t = (pid_t)syscall(SYS_gettid);
    mp__tls_tid = t;
    return t;
}

pid_t mp__getpid(void)
{
    pid_t p = __atomic_load_n(&pid_cache, __ATOMIC_RELAXED);
    if (__builtin_expect(p == 0, 0)) {
        p = getpid();
        __atomic_store_n(&pid_cache, p, __ATOMIC_RELAXED);
    }
    return p;
}

int mp__tid_alive(pid_t tid)
{
    if (tid <= 0)
        return 0;
    /* kill() accepts any thread id and checks the thread's existence. */
    return kill(tid, 0) == 0 || errno == EPERM;
}

/* glibc's node: {prev, next}; the list links point at the next field. */
#define MP__EXPECTED_FUTEX_OFFSET (-32L)

struct mp__robust_head *mp__robust_head_slow(void)
{
    struct mp__robust_head *h = NULL;
    size_t len = 0;
    if (syscall(SYS_get_robust_list, 0, &h, &len) == 0 && h != NULL &&
        len == sizeof(struct mp__robust_head) &&
        h->futex_offset == MP__EXPECTED_FUTEX_OFFSET) {
        mp__tls_rhead = h;
        return h;
    }
    mp__tls_rhead = MP__NO_ROBUST_HEAD;
    return NULL;
}
