/* platform.h - the contract of every Linux service the rest of multiproc
   uses; only src/platform/ makes system calls. */
#ifndef MP_PLATFORM_H
#define MP_PLATFORM_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* All functions return >= 0 on success or a negative errno (an MP_E*
   code) on failure, unless their comment says otherwise. EINTR is retried
   inside, except where a deadline is involved (the caller's loop owns the
   remaining time). */

/* ---- time --------------------------------------------------------------
 */

/* mp__now_ns - CLOCK_MONOTONIC in nanoseconds. Never fails. */
uint64_t mp__now_ns(void);

/* mp__sleep_ns - sleep at least ns nanoseconds (EINTR resumed). */
void mp__sleep_ns(uint64_t ns);

/* mp__timespec - ns nanoseconds (a duration, or a CLOCK_MONOTONIC time)
   as the struct timespec the kernel takes. */
static inline struct timespec mp__timespec(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    return ts;
}

/* mp__mutex_lock_until - lock a process-private mutex, giving up at the
   CLOCK_MONOTONIC time deadline_ns (UINT64_MAX: never). Returns 1 when
   locked, 0 when the deadline passed first. */
int mp__mutex_lock_until(pthread_mutex_t *mu, uint64_t deadline_ns);

/* ---- process-wide hooks ------------------------------------------------
 */

/* mp__on_fork - the one way a module hooks fork(): prepare runs in the
   forking thread before it, parent and child after it (any may be NULL).
   Hooks added later prepare first and run later in parent and child
   (pthread_atfork's order). Returns 0 or MP_ENOMEM. */
int mp__on_fork(void (*prepare)(void), void (*parent)(void),
                void (*child)(void));

/* mp__on_exit - run fn at the normal exit of the process (exit() or a
   return from main), as atexit. Returns 0 or MP_ENOMEM. */
int mp__on_exit(void (*fn)(void));

/* mp__cpu_relax - a spin-wait hint to the CPU (x86 pause). */
static inline void mp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ---- futexes (shared, not private: they live in shared memory) -------- */

/* mp__futex_wait - sleep while *addr == val, until woken or until the
   absolute CLOCK_MONOTONIC time deadline_ns (UINT64_MAX: none). Returns 0
   (woken or value changed: recheck), MP_ETIMEDOUT, MP_EINTR. */
int mp__futex_wait(uint32_t *addr, uint32_t val, uint64_t deadline_ns);

/* mp__futex_wake - wake up to n waiters on addr. Returns the number woken
   or a negative errno. */
int mp__futex_wake(uint32_t *addr, int n);

/* MP__WAITV_MAX - the most words mp__futex_waitv takes (the kernel's). */
#define MP__WAITV_MAX 128

/* mp__futex_waitv - sleep until any of the n words addrs[i] is woken or
   differs from vals[i], or until the absolute CLOCK_MONOTONIC deadline
   (UINT64_MAX: none). Returns 0 (woken or a value differed: recheck),
   MP_ETIMEDOUT, MP_EINTR, MP_ENOSYS (kernel older than 5.16: the caller
   waits in slices instead), MP_EINVAL (n over MP__WAITV_MAX). */
int mp__futex_waitv(uint32_t *const *addrs, const uint32_t *vals, int n,
                    uint64_t deadline_ns);

/* mp__robust_head - the kernel robust-futex list head that glibc
   registered for the calling thread, cached per thread. The layout is the
   kernel's struct robust_list_head. NULL when the kernel or libc does not
   provide one with the layout multiproc expects (futex_offset -32, glibc's
   doubly linked nodes); the caller then falls back to liveness checks. */
struct mp__robust_head {
    void *list;            /* first node (points to its next field) */
    long futex_offset;     /* futex word address minus node address */
    void *list_op_pending; /* node being locked or unlocked */
};

/* MP__TLS - the thread-local model of the caches below: initial-exec, so
   that the shared library reads them without calling __tls_get_addr. */
#define MP__TLS __attribute__((tls_model("initial-exec")))

/* mp__tls_tid, mp__tls_rhead - per-thread caches of mp__gettid and
   mp__robust_head: 0 / NULL until looked up; MP__NO_ROBUST_HEAD when the
   head is unusable. The tid is reset in fork children. */
extern __thread pid_t mp__tls_tid MP__TLS;
extern __thread struct mp__robust_head *mp__tls_rhead MP__TLS;
#define MP__NO_ROBUST_HEAD ((struct mp__robust_head *)(uintptr_t)1)

/* mp__gettid_slow, mp__robust_head_slow - fill the caches. */
pid_t mp__gettid_slow(void);
struct mp__robust_head *mp__robust_head_slow(void);

static inline struct mp__robust_head *mp__robust_head(void)
{
    struct mp__robust_head *h = mp__tls_rhead;
    if (__builtin_expect(h == NULL, 0))
        return mp__robust_head_slow();
    return h == MP__NO_ROBUST_HEAD ? NULL : h;
}

/* mp__gettid - the calling thread's id, cached per thread (the cache is
   reset in fork children). Never fails. */
static inline pid_t mp__gettid(void)
{
    pid_t t = mp__tls_tid;
    return __builtin_expect(t != 0, 1) ? t : mp__gettid_slow();
}

/* mp__tid_alive - 1 if a thread with id tid exists (it may be a zombie),
   0 if not. Used only when robust futex lists are unavailable. */
int mp__tid_alive(pid_t tid);

/* ---- memory ------------------------------------------------------------
 */

/* mp__memfd_new - an anonymous shared-memory file of size bytes (sparse,
   close-on-exec). Returns the fd or a negative errno (MP_EFBIG: size is
   over the file-size limit, RLIMIT_FSIZE). */
int mp__memfd_new(const char *name, size_t size);

/* mp__map_fd - map size bytes of fd shared and read-write. With addr
   non-zero, exactly at addr and only if the range is free (MP_EEXIST
   otherwise); with addr zero, where the kernel likes. Returns the address
   in *out, 0 or a negative errno. */
int mp__map_fd(int fd, size_t size, uintptr_t addr, void **out);

/* mp__unmap - unmap a range mapped by mp__map_fd. */
int mp__unmap(void *addr, size_t size);

/* mp__release_pages - give the pages of [addr, addr+len) of a shared
   mapping back to the system; they read as zero afterwards. addr and len
   must be page aligned. */
int mp__release_pages(void *addr, size_t len);

/* mp__page_size - the system page size. */
size_t mp__page_size(void);

/* ---- file descriptors --------------------------------------------------
 */

/* mp__close - close fd, ignoring EINTR (Linux always closes). */
void mp__close(int fd);

/* mp__pipe - a close-on-exec pipe. */
int mp__pipe(int fds[2]);

/* mp__seqpacket_pair - a close-on-exec AF_UNIX SOCK_SEQPACKET pair. */
int mp__seqpacket_pair(int fds[2]);

/* mp__send_msg - send len bytes and, if fd >= 0, that descriptor
   (SCM_RIGHTS) as one packet. Returns 0 or a negative errno (MP_EPIPE when
   the peer is gone). */
int mp__send_msg(int sock, const void *buf, size_t len, int fd);

/* mp__recv_msg - receive one packet of at most len bytes and at most one
   descriptor (*fd, -1 if none; may be NULL to refuse descriptors).
   Returns the length, 0 at end of file, or a negative errno. */
ssize_t mp__recv_msg(int sock, void *buf, size_t len, int *fd);

/* mp__poll_in - wait until fd is readable or hung up, at most until
   deadline_ns (UINT64_MAX: forever; 0: do not wait). Returns 1 (ready),
   0 (timed out), or a negative errno. EINTR is retried. */
int mp__poll_in(int fd, uint64_t deadline_ns);

/* mp__poll_in2 - wait until a or b is readable or hung up, at most ms
   milliseconds (-1: forever). Returns a mask (1: a, 2: b; 0: the time
   passed) or a negative errno. EINTR is retried (with the whole ms). */
int mp__poll_in2(int a, int b, int ms);

/* mp__fd_count - the number of open descriptors of this process, or a
   negative errno. */
int mp__fd_count(void);

/* mp__fd_move - put descriptor fd at number at (closing what was there,
   atomically, close-on-exec) and close fd. Returns at or a negative errno
   (fd is closed either way). */
int mp__fd_move(int fd, int at);

/* mp__reopen_fd - a new open file description for the pipe or file behind
   fd (through /proc/self/fd), close-on-exec, with the given open flags. */
int mp__reopen_fd(int fd, int flags);

/* mp__pread - read up to len bytes at offset off of fd, without moving
   its offset. Returns the count (0 at end of file) or a negative errno.
   EINTR is retried. */
ssize_t mp__pread(int fd, void *buf, size_t len, uint64_t off);

/* mp__fd_limit - the most descriptors this process may have open (its
   RLIMIT_NOFILE soft limit; 1024 when it cannot be read). */
size_t mp__fd_limit(void);

/* mp__fd_type - the file type bits (S_IFMT of st_mode: S_IFIFO,
   S_IFSOCK, S_IFREG ...) of open descriptor fd, or a negative errno
   (MP_EBADF: not open). */
int mp__fd_type(int fd);

/* mp__fd_is_memfd - 1 if fd is a memfd made with mp__memfd_new(name, ...)
   (its /proc link reads "/memfd:NAME (deleted)") of exactly size bytes,
   else 0. */
int mp__fd_is_memfd(int fd, const char *name, size_t size);

/* mp__secure_exec - 1 if this program runs with privileges its user does
   not have (setuid, setgid, file capabilities: AT_SECURE), else 0.
   Nothing from its environment may then steer the library. */
int mp__secure_exec(void);

/* mp__set_cloexec - set or clear FD_CLOEXEC on fd. */
int mp__set_cloexec(int fd, int on);

/* ---- processes ---------------------------------------------------------
 */

/* mp__fork - fork(2) after flushing every stdio stream, so buffered output
   is not written twice. Returns the pid (0 in the child) or a negative
   errno. */
pid_t mp__fork(void);

/* MP__SPAWN_FD0 - where a child of mp__spawn_self finds its first kept
   descriptor. */
#define MP__SPAWN_FD0 3

/* mp__spawn_self - execute this program (/proc/self/exe) as a new child
   with argv and envp, through vfork-style posix_spawn, with an empty
   signal mask. The child has standard input, output and error, and
   keep[i] at descriptor MP__SPAWN_FD0 + i (not close-on-exec): no other
   descriptor. Returns the pid or a negative errno (exec failures
   included). */
pid_t mp__spawn_self(char *const argv[], char *const envp[], const int *keep,
                     int nkeep);

/* mp__pidfd_open - a close-on-exec pidfd for pid. */
int mp__pidfd_open(pid_t pid);

/* mp__pidfd_signal - send sig through a pidfd. A process that already
   ended (zombie or reaped) is not an error: returns 0. */
int mp__pidfd_signal(int pidfd, int sig);

/* mp__pidfd_reap - reap our child behind pidfd if it ended: returns 1 and
   stores its exit code in *code (status, or -signal), 0 if it still runs
   (only with nohang), or a negative errno (MP_ECHILD: not our child or
   already reaped). With nohang 0 it blocks until the child ends. */
int mp__pidfd_reap(int pidfd, int nohang, int *code);

/* mp__reap_pid - wait for our child pid to end and reap it: 1 with
 *code, or a negative errno. For children that have no pidfd. */
int mp__reap_pid(pid_t pid, int *code);

/* mp__reap_any - reap any ended child without blocking: returns its pid
   with *code set, 0 if none ended, MP_ECHILD if there are no children. */
pid_t mp__reap_any(int *code);

/* mp__kill_pid - send sig to pid (0 checks existence). */
int mp__kill_pid(pid_t pid, int sig);

/* mp__getpid, mp__getppid - the obvious; never fail. The pid is cached
   (and the cache reset in fork children by an atfork handler). */
pid_t mp__getpid(void);
pid_t mp__getppid(void);

/* mp__ended_fd - a descriptor that polls readable (hung up) forever:
   the sentinel of a child that ended before it could be watched. Returns
   it or a negative errno. */
int mp__ended_fd(void);

/* mp__set_pdeathsig - ask the kernel to send sig to this process when the
   thread that created it exits. */
int mp__set_pdeathsig(int sig);

/* mp__lifeline_private - a new open file description (close-on-exec,
   non-blocking) of the pipe whose read end is rfd, through /proc, set to
   raise SIGKILL at the hang-up for an owner still to be named: what a
   child arms (mp__arm_lifeline). Returns the descriptor or a negative
   errno. */
int mp__lifeline_private(int rfd);

/* mp__arm_lifeline - make this process receive SIGKILL when every write
   end of the pipe whose read end is fd is closed, i.e. when the parent
   process (the only holder of the write end) is gone, whichever thread
   started us. fd must be this process's private open file description
   (mp__lifeline_private): the signal's target is kept per description.
   Returns 0, MP_EPIPE (the writer is already gone) or a negative errno;
   fd stays open either way (closing it disarms). */
int mp__arm_lifeline(int fd);

/* mp__prebind_child_calls - call, harmlessly, the C library functions a
   fork child calls first (arming its lifeline, naming itself) on the
   lifeline descriptor fd, so that their lazy binding happens once in the
   parent: bound in a child, each costs symbol look-ups and copy-on-write
   faults in every child. */
void mp__prebind_child_calls(int fd);

/* mp__set_comm - set the kernel's short name of the calling thread (the
   first 15 bytes of name). Best effort. */
void mp__set_comm(const char *name);

/* mp__signalfd_chld - block SIGCHLD in the calling thread and return a
   close-on-exec, non-blocking signalfd for it. */
int mp__signalfd_chld(void);

/* mp__signalfd_drain - read and discard what is pending on a signalfd. */
void mp__signalfd_drain(int sfd);

/* mp__sigint_ignored - with on, ignore SIGINT from now on, remembering
   how it was handled; with 0, put back what was remembered. For the
   forkserver, which a terminal's Ctrl-C must not kill, and its children,
   which must see SIGINT as their starter did. */
void mp__sigint_ignored(int on);

/* mp__unblock_all_signals - empty the calling thread's signal mask. */
void mp__unblock_all_signals(void);

/* mp__exit_now - leave the process at once with status (no atexit
   handlers, no stdio flush): the exit of fork children. */
_Noreturn void mp__exit_now(int status);

/* ---- the machine -------------------------------------------------------
 */

/* mp__affinity_cpus - the number of CPUs in this process's affinity mask,
   or a negative errno. */
int mp__affinity_cpus(void);

/* mp__read_file - read up to len-1 bytes of path into buf, NUL-terminated.
   Returns the length or a negative errno. */
ssize_t mp__read_file(const char *path, char *buf, size_t len);

/* mp__self_cmdline - this process's argv read from /proc/self/cmdline:
   a NULL-terminated malloc'd vector (one allocation; free() it). Returns
   0 or a negative errno. */
int mp__self_cmdline(char ***argv);

/* ---- stream sockets and pipes for connections (sock.c) ------------------
 */

/* mp__stream_pair - a connected AF_UNIX SOCK_STREAM pair, close-on-exec
   and blocking: each receive and send says whether it may wait
   (mp__sock_recv, mp__sock_sendv). Returns 0 or a negative errno
   (MP_EMFILE...). */
int mp__stream_pair(int fds[2]);

/* mp__sock_recv - receive up to len bytes from a stream socket. wait: 1
   blocks until something comes (on a blocking description: one system
   call for the whole wait), 0 never waits (MSG_DONTWAIT). Returns the
   count (> 0), 0 at end of stream, MP_EAGAIN (nothing now, or the
   description was made non-blocking by someone), MP_ECONNRESET (the peer
   closed with data of ours unread: its end), or a negative errno. EINTR
   is retried. */
ssize_t mp__sock_recv(int fd, void *buf, size_t len, int wait);

struct iovec;

/* mp__sock_sendv - send the iovcnt buffers of iov on a stream socket,
   never raising SIGPIPE (MSG_NOSIGNAL). wait: 1 blocks until all is sent
   (or a signal comes after part of it), 0 sends what fits now
   (MSG_DONTWAIT). Returns the bytes sent (> 0), MP_EAGAIN (no room),
   MP_EPIPE or MP_ECONNRESET (the peer is gone), or a negative errno.
   EINTR before anything was sent is retried. */
ssize_t mp__sock_sendv(int fd, const struct iovec *iov, int iovcnt, int wait);

/* mp__sock_grow_sndbuf - make fd's send buffer (SO_SNDBUF, as the kernel
   counts it: payload plus its overheads) at least want bytes where the
   system allows (net.core.wmem_max caps it); never shrinks it. Returns
   the size now, or a negative errno. */
ssize_t mp__sock_grow_sndbuf(int fd, size_t want);

/* mp__shutdown_wr - stop writing on socket fd for every process sharing
   it: the peer reads end of stream after the data sent before. Returns 0
   or a negative errno. */
int mp__shutdown_wr(int fd);

/* mp__sock_poll_in - wait until fd is readable, hung up or in error, at
   most until deadline_ns (UINT64_MAX: forever; 0: do not wait). Returns 1
   (ready), 0 (timed out), or a negative errno. EINTR is retried with the
   time left; the deadline is kept to the nanosecond (ppoll). */
int mp__sock_poll_in(int fd, uint64_t deadline_ns);

/* mp__poll_out - wait until fd is writable, in error or hung up, at most
   until deadline_ns, like mp__sock_poll_in. Returns 1 (ready), 0 (timed
   out), or a negative errno. */
int mp__poll_out(int fd, uint64_t deadline_ns);

/* mp__poll_many - wait until at least one of fds[0..n) is readable, hung
   up, in error or not open, at most until deadline_ns, like mp__poll_out.
   ready[i] (when ready is not NULL) is set to 1 or 0. Returns the number
   ready, 0 (timed out), or a negative errno (MP_ENOMEM, MP_EINVAL: n over
   the descriptor limit). */
int mp__poll_many(const int *fds, size_t n, int *ready, uint64_t deadline_ns);

#endif /* MP_PLATFORM_H */
