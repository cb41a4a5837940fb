/* multiproc.h - the one public header of multiproc, Python's
   multiprocessing in C for Linux.

   The rules every declaration below follows (docs/design.md, "The
   header's rules"):
   - Results. A call returns >= 0 on success (0, or a count, length,
     index or flag its comment names) or a negative MP_E* code; its
     comment lists every code it can return. Calls returning void or a
     pointer say what they do on bad input.
   - Out-parameters. A constructor (_new, _init_at, mp_pipe_new) takes
     the object it makes first (&out) and writes it only on success.
     Every other call takes the object it acts on first and its
     out-parameters last, before a timeout if it has one.
   - Timeouts. A double, in seconds, like Python's. 0 never blocks
     (looks once); MP_FOREVER, or any negative value, waits without
     limit; NaN is MP_EINVAL. Deadlines are on CLOCK_MONOTONIC.
   - Not ready in time. A wait for a state (join, acquire, wait) returns
     MP_ETIMEDOUT. A queue says MP_EFULL (put) or MP_EEMPTY (get), as
     Python's Full and Empty. A wait for a pool result (mp_async_wait,
     mp_async_get, mp_imap_next) returns MP_EBUSY, because MP_ETIMEDOUT
     is a task's outcome there (it ran past task_timeout).
   - const. A pointer parameter is const only when the call changes
     nothing that can be observed through it.
   - Names. Accessors are mp_<object>_<attribute>(obj) (mp_process_pid,
     mp_queue_qsize, mp_pool_stats); no get_ prefix. _free(NULL) is a
     no-op.
   - Threads. Each object's comment says what may be shared between
     threads; processes of the family may use every arena object
     (locks, queues, ...) at once, that is what they are for. */
#ifndef MULTIPROC_H
#define MULTIPROC_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* MP_API - marks the library's exported functions. */
#if defined(__GNUC__)
#define MP_API __attribute__((visibility("default")))
#else
#define MP_API
#endif

/* MP_VERSION_MAJOR, _MINOR, _PATCH - the version of this header: the one
   place it is written (the build and mp_version() read it here). */
#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0

/* MP_FOREVER - a timeout that blocks until the awaited thing happens. Any
   negative timeout means the same; 0 never blocks; NaN is MP_EINVAL. */
#define MP_FOREVER (-1.0)

/* ------------------------------------------------------------------------
   Errors. Every call returns >= 0 on success or a negative MP_E* code.
   Codes backed by errno are -errno; library codes sit at -1000 and below.
   This list is the single source of mp_strerror and mp_err_name.
   ------------------------------------------------------------------------ */

/* MP_ERROR_LIST - X(NAME, value, message) for every code of the library:
   the errno codes by errno number, then the library's own from -1001
   down. No call returns MP_EINTR (interrupted system calls are restarted),
   MP_ECONNRESET (a reset peer is MP_EOF or MP_EPIPE), MP_ENOSPC or
   MP_ENOTRECOVERABLE today; they stay, since codes are ABI. A call may
   pass on a rare errno of a system call that is not listed here
   (mp_err_name then says "MP_E?"). */
#define MP_ERROR_LIST(X)                                                       \
    X(MP_EPERM, -EPERM, "operation not permitted")                             \
    X(MP_ENOENT, -ENOENT, "no such file or name")                              \
    X(MP_ESRCH, -ESRCH, "no such process")                                     \
    X(MP_EINTR, -EINTR, "interrupted by a signal")                             \
    X(MP_EIO, -EIO, "input/output error")                                      \
    X(MP_E2BIG, -E2BIG, "argument list too long")                              \
    X(MP_ENOEXEC, -ENOEXEC, "exec format error")                               \
    X(MP_EBADF, -EBADF, "bad file descriptor")                                 \
    X(MP_ECHILD, -ECHILD, "not a child of this process")                       \
    X(MP_EAGAIN, -EAGAIN, "resource temporarily unavailable")                  \
    X(MP_ENOMEM, -ENOMEM, "out of memory")                                     \
    X(MP_EACCES, -EACCES, "permission denied")                                 \
    X(MP_EFAULT, -EFAULT, "bad address")                                       \
    X(MP_EBUSY, -EBUSY, "still running or in use")                             \
    X(MP_EEXIST, -EEXIST, "already exists")                                    \
    X(MP_EINVAL, -EINVAL, "invalid argument")                                  \
    X(MP_ENFILE, -ENFILE, "too many open files in the system")                 \
    X(MP_EMFILE, -EMFILE, "too many open files")                               \
    X(MP_ETXTBSY, -ETXTBSY, "text file busy")                                  \
    X(MP_EFBIG, -EFBIG, "over the file-size limit (ulimit -f)")                \
    X(MP_ENOSPC, -ENOSPC, "no space left")                                     \
    X(MP_EPIPE, -EPIPE, "broken pipe: the peer is gone")                       \
    X(MP_ERANGE, -ERANGE, "value out of range")                                \
    X(MP_EDEADLK, -EDEADLK, "would deadlock")                                  \
    X(MP_ENAMETOOLONG, -ENAMETOOLONG, "name too long")                         \
    X(MP_ENOSYS, -ENOSYS, "not supported by this kernel")                      \
    X(MP_EOVERFLOW, -EOVERFLOW, "value too large")                             \
    X(MP_EMSGSIZE, -EMSGSIZE, "message does not fit the buffer")               \
    X(MP_ENOTSUP, -ENOTSUP, "operation not supported")                         \
    X(MP_ECONNRESET, -ECONNRESET, "connection reset by peer")                  \
    X(MP_ENOBUFS, -ENOBUFS, "no buffer space available")                       \
    X(MP_ETIMEDOUT, -ETIMEDOUT, "timed out")                                   \
    X(MP_EALREADY, -EALREADY, "already done")                                  \
    X(MP_EOWNERDEAD, -EOWNERDEAD, "acquired; the previous owner died")         \
    X(MP_ENOTRECOVERABLE, -ENOTRECOVERABLE, "state not recoverable")           \
    X(MP_EOF, -1001, "end of file: closed and drained, or peer gone")          \
    X(MP_ECLOSED, -1002, "closed")                                             \
    X(MP_EFULL, -1003, "full")                                                 \
    X(MP_EEMPTY, -1004, "empty")                                               \
    X(MP_EBROKEN, -1005, "broken: a participant aborted or died")              \
    X(MP_EWORKERDIED, -1006, "the worker running the task died")               \
    X(MP_ETASK, -1007, "the task function reported an error")                  \
    X(MP_ENOINIT, -1008, "mp_init() was not called first in main()")           \
    X(MP_ESTATE, -1009, "wrong state for this call")

#define MP__ERROR_ENUM(name, value, text) name = (value),
/* mp_error - the codes of MP_ERROR_LIST as an enum; MP_OK is 0. */
enum mp_error { MP_OK = 0, MP_ERROR_LIST(MP__ERROR_ENUM) };
#undef MP__ERROR_ENUM

/* MP_CHECK - for examples and small programs: evaluate expr, a call that
   returns an int code; if it is negative, print the file, line, the call
   and its code's name and message on standard error, and exit(1). The
   program must include <stdio.h> and <stdlib.h>. (A map's failing item:
   give mp_map_opts.error and print it before checking.) */
#define MP_CHECK(expr)                                                         \
    do {                                                                       \
        int mp_check_r_ = (int)(expr);                                         \
        if (mp_check_r_ < 0) {                                                 \
            fprintf(stderr, "%s:%d: %s: %s (%s)\n", __FILE__, __LINE__, #expr, \
                    mp_err_name(mp_check_r_), mp_strerror(mp_check_r_));       \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

/* mp_strerror - a static English message for err ("unknown error" for a
   code not in MP_ERROR_LIST, "success" for 0 or any positive value). */
MP_API const char *mp_strerror(int err);

/* mp_err_name - the symbolic name of err, e.g. "MP_ETIMEDOUT"; "MP_OK" for
   0 or positive values; "MP_E?" for a code not in MP_ERROR_LIST. */
MP_API const char *mp_err_name(int err);

/* ------------------------------------------------------------------------
   Library set-up.
   ------------------------------------------------------------------------ */

/* mp_start_method - how a child process is created. */
typedef enum {
    MP_START_DEFAULT = 0, /* the config's method; the config default: fork */
    MP_START_FORK,        /* copy of the parent, like os.fork() */
    MP_START_SPAWN,       /* fresh exec of this program, target resolved */
    MP_START_FORKSERVER   /* forked by a small single-threaded server */
} mp_start_method;

/* mp_config - options of mp_init; all zero (or a NULL pointer) means
   defaults. The environment variable MP_START_METHOD ("fork", "spawn" or
   "forkserver") overrides a start of MP_START_DEFAULT. */
typedef struct mp_config {
    mp_start_method start; /* default start method */
    size_t arena_size;     /* bytes of family shared memory; 0: 4 GiB
                              (virtual: pages cost memory only when used) */
    int forkserver_spares; /* forkserver children forked ahead of starts
                              (docs/process.md, "Starts"): 0: the server
                              keeps one, a start costs a round trip to it
                              and a wake-up; n > 0 (at most 64): n are
                              lent to this process, a start costs a
                              wake-up (the warm start; n descriptors);
                              negative: none, every start forks */
} mp_config;

/* mp_init - first call in main(). In the parent it creates the family
   arena and returns 0. In a child started by spawn or forkserver it never
   returns: it runs the target and exits with its status. argc and argv
   may be NULL (the command line is then read from /proc/self/cmdline when
   a spawn needs it). Call it once, from the main thread before any other
   thread exists: it takes no lock.
   Returns 0, MP_EALREADY (called before, also in a fork child of a
   process that called it), MP_EINVAL (a bad start method in cfg or in
   MP_START_METHOD, an arena_size under 16 pages, forkserver_spares over
   64), MP_EFBIG (arena_size
   over the file-size limit, ulimit -f), MP_EEXIST (no free address range
   for the arena), MP_ENOMEM or MP_EAGAIN (the arena cannot be mapped:
   RLIMIT_AS, overcommit, mlockall), MP_EMFILE, MP_ENFILE. */
MP_API int mp_init(int *argc, char ***argv, const mp_config *cfg);

/* mp_version - the version of the library linked in, "MAJOR.MINOR.PATCH"
   (compare with the header's MP_VERSION_*). A static string; never
   fails. */
MP_API const char *mp_version(void);

/* mp_cpu_count - the number of CPUs this process may use: the CPUs of its
   affinity mask, capped by the cgroup CPU quota (v2 cpu.max, v1 cfs quota)
   rounded up; the environment variable MP_CPU_COUNT (a positive integer)
   overrides both. Always >= 1; safe from any thread. */
MP_API int mp_cpu_count(void);

/* ------------------------------------------------------------------------
   Processes. The calls that reap a child (join, is_alive, exitcode,
   close) use waitid(P_PIDFD), which Linux has since 5.4: on 5.3 they
   return MP_EINVAL for fork and spawn children.
   ------------------------------------------------------------------------ */

/* mp_process - a child process, or (from mp_current_process) this one.

   Threads: start p before another thread uses it. Then join, is_alive,
   exitcode, terminate, kill and the accessors may run in several threads
   at once; while one thread joins, the others see the child running
   until the joiner has reaped it (is_alive 1, exitcode and close
   MP_EBUSY). close and free must not overlap any other call on p.
   Processes: p is private to the process that made it. A fork child may
   read its parent's children (pid, name, daemon, an exit code already
   known) and free them; other calls on them return MP_ECHILD. */
typedef struct mp_process mp_process;

/* mp_target_fn - what a child runs; its return value is the exit status
   (only the low 8 bits reach the parent, as with exit()). */
typedef int (*mp_target_fn)(void *arg);

/* mp_process_opts - options of mp_process_new; zero or NULL: defaults. */
typedef struct mp_process_opts {
    const char *name;      /* NULL: "Process-N" (Python's numbering) */
    mp_start_method start; /* MP_START_DEFAULT: the config's */
    int daemon;            /* terminated when the parent exits */
    size_t arg_size;       /* bytes of *arg copied to the child;
                              0: the pointer is passed as is */
} mp_process_opts;

/* mp_process_new - prepare a child that will run fn(arg). Under spawn and
   forkserver, arg must be NULL, point into the family arena, or come with
   arg_size (checked at start). Nothing runs until mp_process_start.
   Returns 0, MP_EINVAL (NULL out or fn, bad start method),
   MP_ENAMETOOLONG (name over 255 bytes), MP_ENOMEM, MP_ENOINIT. */
MP_API int mp_process_new(mp_process **out, mp_target_fn fn, void *arg,
                          const mp_process_opts *opts);

/* mp_process_start - start the child. It dies when this process dies, by
   any means (see docs/process.md).
   Returns 0, MP_EINVAL (NULL or the current process; for spawn and
   forkserver: arg not transferable, fn outside any loaded object),
   MP_ESTATE (already started), MP_ENOINIT (mp_init was not called),
   MP_ECHILD (SIGCHLD is ignored or has SA_NOCLDWAIT: no exit code could
   be learnt), MP_EPERM (spawn or forkserver in a privileged program:
   set-user-ID, set-group-ID or file capabilities; only fork is allowed
   there), MP_ENAMETOOLONG (spawn, forkserver: fn lives in an object whose
   path is 1024 bytes or longer), MP_ENOMEM (memory or arena exhausted),
   MP_EAGAIN (process limit), MP_EMFILE, MP_ENFILE, MP_ENOBUFS
   (descriptors, socket buffers), MP_ENOSYS (a kernel before 5.3, without
   pidfd_open), MP_ESRCH (another wait in this process, as a waitpid(-1)
   in another thread, reaped the new child first); for spawn and
   forkserver also MP_EBADF (a descriptor to pass on is too close to
   RLIMIT_NOFILE) and the errors of executing /proc/self/exe: MP_ENOENT
   (no /proc), MP_EACCES (noexec mount), MP_E2BIG, MP_ENOEXEC,
   MP_ETXTBSY; for forkserver also MP_EPIPE (the server died, twice in a
   row) and MP_EIO (a short reply from it). */
MP_API int mp_process_start(mp_process *p);

/* mp_process_join - wait until the child ends (and reap it), at most
   timeout seconds. A child that another wait in this process reaped (a
   SIGCHLD handler's waitpid(-1)) counts as ended. Returns 0,
   MP_ETIMEDOUT (also while another thread's join holds the child past
   the timeout), MP_EINVAL (NULL, NaN timeout), MP_ESTATE (not started),
   MP_EDEADLK (p is the current process), MP_ECHILD (p was started by
   another process). */
MP_API int mp_process_join(mp_process *p, double timeout);

/* mp_process_is_alive - 1 while started and not ended (and for the
   current process), else 0 (also before start); MP_EINVAL for NULL,
   MP_ECHILD for a child started by another process. Reaps an ended
   child. Does not wait, but for a forkserver child that just ended it
   may take up to 50 ms to learn its exit code from the server. */
MP_API int mp_process_is_alive(mp_process *p);

/* mp_process_terminate - send SIGTERM. A child that already ended is not
   an error (0). Returns 0, MP_EINVAL (NULL or the current process),
   MP_ESTATE (not started), MP_ECHILD (started by another process),
   MP_EPERM (the child changed its credentials, as by running a
   set-user-ID program, and this process may not signal it). */
MP_API int mp_process_terminate(mp_process *p);

/* mp_process_kill - send SIGKILL; the codes of mp_process_terminate. */
MP_API int mp_process_kill(mp_process *p);

/* mp_process_exitcode - the exit code once the child ended: its exit
   status, or -signal when a signal ended it (like Python). A finished
   child is reaped by this call (see mp_process_is_alive for forkserver
   children). Returns 0 with *code set, MP_EBUSY (still running, or the
   current process), MP_ESTATE (not started), MP_EINVAL (NULL),
   MP_ECHILD (running and started by another process; or ended, but
   another wait in this process, as a SIGCHLD handler's waitpid(-1),
   reaped it and its code is lost). */
MP_API int mp_process_exitcode(mp_process *p, int *code);

/* mp_process_pid - the child's pid once started (this process's pid for
   mp_current_process()); 0 before start; MP_EINVAL for NULL. */
MP_API pid_t mp_process_pid(const mp_process *p);

/* mp_process_name - the process name; "MainProcess" for the main process;
   NULL for NULL. The string lives as long as p. */
MP_API const char *mp_process_name(const mp_process *p);

/* mp_process_daemon - 1 if p is a daemon, 0 if not; MP_EINVAL for NULL. */
MP_API int mp_process_daemon(const mp_process *p);

/* mp_process_sentinel - a file descriptor (a pidfd) that polls readable
   when the child has ended, for poll(2) or mp_wait. Owned by p: do not
   close it. Returns the fd, MP_EINVAL (NULL), MP_ESTATE (not started, or
   the current process), MP_ECHILD (started by another process: a fork
   child does not inherit its parent's sentinels). */
MP_API int mp_process_sentinel(const mp_process *p);

/* mp_process_close - free p if the child is not running (Python's
   Process.close); a child reaped by another wait counts as ended.
   Returns 0, MP_EBUSY (still running, or another thread is joining it:
   nothing freed), MP_EINVAL (NULL or the current process). */
MP_API int mp_process_close(mp_process *p);

/* mp_process_free - release p. A child that is still running is detached,
   not killed: it is reaped when it ends, and joined (terminated if daemon)
   when this process exits, as Python does with a dropped Process. NULL and
   mp_current_process() are no-ops. */
MP_API void mp_process_free(mp_process *p);

/* mp_current_process - this process: name "MainProcess" in the main
   program, the child's name in a child. Never NULL after mp_init (NULL
   before). Do not free it. */
MP_API mp_process *mp_current_process(void);

/* mp_parent_pid - in a child started by multiproc, the pid of the process
   that started it (also for forkserver children); 0 in the main process. */
MP_API pid_t mp_parent_pid(void);

/* mp_active_children - the live children started by this process and not
   freed: up to cap of them are stored in out (out may be NULL when cap is
   0). Ended children are reaped as a side effect, like Python; a child
   another wait reaped counts as ended, one another thread is joining as
   live. Returns their total count (may exceed cap), or MP_EINVAL (out
   NULL with cap > 0). */
MP_API int mp_active_children(mp_process **out, size_t cap);

/* ------------------------------------------------------------------------
   The family arena: shared memory at the same address in every process.
   ------------------------------------------------------------------------ */

/* mp_shared_alloc - size bytes of zero-filled memory, 16-byte aligned, in
   the family arena: the pointer is valid in every process of the family
   (fork, spawn and forkserver children) and may travel between them as
   plain bytes. NULL when size is 0, before mp_init, when the arena is
   exhausted, or when the calling thread is inside the allocator already
   (a signal handler). Safe from any process and thread; it waits for the
   arena's lock without a limit. A process killed inside the allocator
   does not wedge or corrupt it for the others. Not async-signal-safe. */
MP_API void *mp_shared_alloc(size_t size);

/* mp_shared_free - return memory from mp_shared_alloc, from any process and
   thread of the family. Never blocks: while another thread or process
   holds the arena's lock, the block is left for that lock's next holder
   to free. NULL, pointers not from the arena and double frees are
   detected and ignored. Not async-signal-safe. */
MP_API void mp_shared_free(void *ptr);

/* mp_shared_contains - 1 if ptr points into the family arena, else 0. */
MP_API int mp_shared_contains(const void *ptr);

/* ------------------------------------------------------------------------
   Synchronization: Lock, RLock, Semaphore, Condition, Event, Barrier.
   Every object lives in shared memory and is a plain pointer valid in
   every process of the family. _new allocates it in the arena; _init_at
   places it in memory the caller provides (at least _size() bytes,
   8-byte aligned), e.g. a named shared-memory segment used by unrelated
   processes; the object then holds no pointer, only offsets, so each
   process may map that memory at a different address. _free of a placed
   object only invalidates it. Calls on a freed or non-object pointer give
   MP_EINVAL when the memory still says so (not guaranteed).
   ------------------------------------------------------------------------ */

/* mp_lock - a non-recursive lock owned by the thread that acquired it.

   Threads and processes: any number may use it at once. Free it only
   when no thread waits for it. */
typedef struct mp_lock mp_lock;

/* mp_lock_new - a new unlocked lock in the arena. Returns 0, MP_EINVAL
   (NULL out), MP_ENOINIT, MP_ENOMEM. */
MP_API int mp_lock_new(mp_lock **out);

/* mp_lock_acquire - take the lock, waiting at most timeout seconds.
   Returns 0, MP_ETIMEDOUT, MP_EOWNERDEAD (acquired; the previous holder
   died holding it: what it guarded may be half-updated), MP_EDEADLK (the
   calling thread holds it already: waiting would never end), MP_EINVAL
   (NULL, not a lock, NaN timeout). */
MP_API int mp_lock_acquire(mp_lock *l, double timeout);

/* mp_lock_release - release the lock. Returns 0, MP_EPERM (the calling
   thread does not hold it), MP_EINVAL. */
MP_API int mp_lock_release(mp_lock *l);

/* mp_lock_locked - 1 if some thread holds the lock, 0 if not, MP_EINVAL. */
MP_API int mp_lock_locked(const mp_lock *l);

/* mp_lock_free - free a lock (NULL: no-op). One the caller holds is
   released first. One another thread holds is not freed but left as it
   is (its memory leaks): that thread's kernel robust list points into
   it, and reused memory would be corrupted at its exit. The same holds
   for every free of this section: a Condition's own lock, a Barrier
   with a thread still waiting. */
MP_API void mp_lock_free(mp_lock *l);

/* mp_lock_size, mp_lock_init_at - the bytes a lock needs, and a lock
   placed in mem. _init_at returns 0 or MP_EINVAL (NULL out or mem, too
   small, misaligned). */
MP_API size_t mp_lock_size(void);
MP_API int mp_lock_init_at(mp_lock **out, void *mem, size_t size);

/* mp_rlock - a recursive lock: its owner may acquire it again; it is
   free once released as many times as acquired.

   Threads and processes: as for mp_lock; the depth belongs to the
   owning thread. */
typedef struct mp_rlock mp_rlock;

/* mp_rlock_new, _acquire, _release, _free, _size, _init_at - as for
   mp_lock, except that acquiring a lock one holds succeeds (depth + 1).
   _acquire returns 0, MP_ETIMEDOUT, MP_EOWNERDEAD (a dead holder's lock
   goes to the next acquirer, at depth 1), MP_EOVERFLOW (the caller holds
   it already at depth UINT32_MAX), MP_EINVAL (NULL, not an rlock, NaN
   timeout); never MP_EDEADLK. _release returns 0, MP_EPERM (the caller
   does not hold it), MP_EINVAL; the lock is unlocked at depth 0. */
MP_API int mp_rlock_new(mp_rlock **out);
MP_API int mp_rlock_acquire(mp_rlock *l, double timeout);
MP_API int mp_rlock_release(mp_rlock *l);
MP_API void mp_rlock_free(mp_rlock *l);
MP_API size_t mp_rlock_size(void);
MP_API int mp_rlock_init_at(mp_rlock **out, void *mem, size_t size);

/* mp_semaphore - a counter; acquire waits while it is 0.

   Threads and processes: any number may use it at once. Free it only
   when no thread waits in it. */
typedef struct mp_semaphore mp_semaphore;

/* mp_semaphore_new - a semaphore with the given value; bound > 0 makes it
   bounded (BoundedSemaphore): release past bound fails. Returns 0,
   MP_EINVAL (NULL out, value > bound, value or bound over INT_MAX),
   MP_ENOINIT, MP_ENOMEM. */
MP_API int mp_semaphore_new(mp_semaphore **out, unsigned value, unsigned bound);

/* mp_semaphore_acquire - decrement, waiting at most timeout seconds while
   the value is 0. Returns 0, MP_ETIMEDOUT, MP_EINVAL. */
MP_API int mp_semaphore_acquire(mp_semaphore *s, double timeout);

/* mp_semaphore_release - increment and wake a waiter. Returns 0,
   MP_EOVERFLOW (bounded and already at its bound, or at INT_MAX),
   MP_EINVAL. */
MP_API int mp_semaphore_release(mp_semaphore *s);

/* mp_semaphore_value - the current value, or MP_EINVAL. */
MP_API int mp_semaphore_value(const mp_semaphore *s);

/* mp_semaphore_free, _size, _init_at - free s (NULL: no-op); the bytes a
   semaphore needs; a semaphore placed in mem, with value and bound as
   for mp_semaphore_new. _init_at returns 0 or MP_EINVAL (NULL out or
   mem, too small, misaligned, bad value or bound). */
MP_API void mp_semaphore_free(mp_semaphore *s);
MP_API size_t mp_semaphore_size(void);
MP_API int mp_semaphore_init_at(mp_semaphore **out, void *mem, size_t size,
                                unsigned value, unsigned bound);

/* mp_condition - waiting for a state guarded by a lock to change.

   Threads and processes: any number may use it at once, holding the lock
   where a call needs it. Free it only when no thread waits in it. */
typedef struct mp_condition mp_condition;

/* mp_condition_new - a condition on lock, or on rlock, or (both NULL) on
   a recursive lock of its own, as Python's Condition(lock=None). Given
   locks must outlive the condition (and, with _init_at, sit in the same
   memory region). Returns 0, MP_EINVAL (both given, not a lock),
   MP_ENOINIT, MP_ENOMEM. */
MP_API int mp_condition_new(mp_condition **out, mp_lock *lock, mp_rlock *rlock);

/* mp_condition_acquire, mp_condition_release - acquire and release the
   underlying lock. They return what mp_lock_acquire and mp_lock_release
   return, or mp_rlock_acquire and mp_rlock_release for a recursive lock
   (the condition's own included); MP_EINVAL for a non-condition. */
MP_API int mp_condition_acquire(mp_condition *c, double timeout);
MP_API int mp_condition_release(mp_condition *c);

/* mp_condition_wait - release the lock (fully, for a recursive lock),
   wait for a notify at most timeout seconds, take the lock back (always,
   without a timeout, like Python). Returns 0 (notified), MP_ETIMEDOUT,
   MP_EOWNERDEAD (the lock was taken back from a dead holder: check the
   state), MP_EPERM (the caller does not hold the lock), MP_EINVAL. */
MP_API int mp_condition_wait(mp_condition *c, double timeout);

/* mp_predicate_fn - a condition's predicate: nonzero when satisfied. */
typedef int (*mp_predicate_fn)(void *arg);

/* mp_condition_wait_for - wait until pred(arg) is nonzero, at most
   timeout seconds in all, checking it first and after every wake-up.
   Returns 1 (satisfied), 0 (timed out, still false), or MP_EPERM,
   MP_EOWNERDEAD, MP_EINVAL as mp_condition_wait. */
MP_API int mp_condition_wait_for(mp_condition *c, mp_predicate_fn pred,
                                 void *arg, double timeout);

/* mp_condition_notify - make up to n waits return, no more than threads
   wait now (none is saved for later waiters; which ones return is not
   ordered: wait in a predicate loop). Returns 0, MP_EPERM (lock not
   held), MP_EINVAL (n < 0). */
MP_API int mp_condition_notify(mp_condition *c, int n);

/* mp_condition_notify_all - wake every thread waiting now. Returns 0,
   MP_EPERM, MP_EINVAL. */
MP_API int mp_condition_notify_all(mp_condition *c);

/* mp_condition_free, _size, _init_at - free c (NULL: no-op; see
   mp_lock_free for one whose own lock another thread holds); the bytes a
   condition needs; a condition placed in mem, on lock, rlock or a lock of
   its own as for mp_condition_new. _init_at returns 0 or MP_EINVAL (NULL
   out or mem, too small, misaligned, both locks given, not a lock). */
MP_API void mp_condition_free(mp_condition *c);
MP_API size_t mp_condition_size(void);
MP_API int mp_condition_init_at(mp_condition **out, void *mem, size_t size,
                                mp_lock *lock, mp_rlock *rlock);

/* mp_event - a flag that threads can wait to be set.

   Threads and processes: any number may use it at once. Free it only
   when no thread waits in it. */
typedef struct mp_event mp_event;

/* mp_event_new, _set, _clear, _is_set - a new event (not set) in the
   arena; set the flag, waking every waiter; clear it; read it (1 or 0).
   They return 0 (_is_set: 1 or 0) or MP_EINVAL (NULL, not an event);
   _new also MP_ENOINIT, MP_ENOMEM. */
MP_API int mp_event_new(mp_event **out);
MP_API int mp_event_set(mp_event *e);
MP_API int mp_event_clear(mp_event *e);
MP_API int mp_event_is_set(const mp_event *e);

/* mp_event_wait - wait until the flag is set, at most timeout seconds.
   Returns 1 (set: now, or at some moment since the call began), 0 (timed
   out), MP_EINVAL. */
MP_API int mp_event_wait(mp_event *e, double timeout);

/* mp_event_free, _size, _init_at - free e (NULL: no-op); the bytes an
   event needs; an event (not set) placed in mem. _init_at returns 0 or
   MP_EINVAL (NULL out or mem, too small, misaligned). */
MP_API void mp_event_free(mp_event *e);
MP_API size_t mp_event_size(void);
MP_API int mp_event_init_at(mp_event **out, void *mem, size_t size);

/* mp_barrier - parties threads wait for each other, cycle after cycle.

   Threads and processes: any number may use it at once; mp_barrier_free
   leaves it alone while a thread still waits in it. */
typedef struct mp_barrier mp_barrier;

/* mp_barrier_opts - options of a barrier; zero or NULL: defaults. */
typedef struct mp_barrier_opts {
    int (*action)(void *arg); /* run by one participant per cycle, before
                                 the others are released; nonzero return
                                 breaks the barrier. Any function, as for
                                 process targets: resolved per process. */
    void *action_arg;         /* passed as is (arena memory or NULL) */
    double timeout;           /* the timeout of mp_barrier_wait_default;
                                 <= 0: none (wait forever) */
} mp_barrier_opts;

/* mp_barrier_new - a barrier for parties participants (>= 1). Returns 0,
   MP_EINVAL (NULL out, parties 0 or over INT_MAX / 2, NaN opts->timeout,
   an action outside any loaded object), MP_ENAMETOOLONG (the action
   lives in an object whose path is 1024 bytes or longer), MP_ENOINIT,
   MP_ENOMEM. */
MP_API int mp_barrier_new(mp_barrier **out, unsigned parties,
                          const mp_barrier_opts *opts);

/* mp_barrier_wait - arrive and wait for the other parties, at most
   timeout seconds (negative: forever, as everywhere). Returns the
   arrival index, 0 .. parties-1 (each once per cycle), or MP_EBROKEN
   (the barrier is or became broken: aborted, reset while waiting, its
   action failed, another participant timed out or died while waiting),
   MP_ETIMEDOUT (this call's timeout expired; the barrier is now broken),
   MP_EINVAL (NULL, not a barrier, NaN timeout), MP_EDEADLK (called from
   the barrier's own action). */
MP_API int mp_barrier_wait(mp_barrier *b, double timeout);

/* mp_barrier_wait_default - mp_barrier_wait with the barrier's own
   timeout (opts.timeout; forever when it had none): Python's b.wait().
   The codes of mp_barrier_wait. */
MP_API int mp_barrier_wait_default(mp_barrier *b);

/* mp_barrier_abort - break the barrier: current and future waits return
   MP_EBROKEN until mp_barrier_reset. Returns 0, MP_EINVAL, MP_EDEADLK
   (called from the barrier's own action). */
MP_API int mp_barrier_abort(mp_barrier *b);

/* mp_barrier_reset - back to the empty, unbroken state; threads waiting
   now get MP_EBROKEN. Returns 0, MP_EINVAL, MP_EDEADLK (called from the
   barrier's own action). */
MP_API int mp_barrier_reset(mp_barrier *b);

/* mp_barrier_n_waiting - participants waiting in the current cycle (0
   when broken), or MP_EINVAL. */
MP_API int mp_barrier_n_waiting(const mp_barrier *b);

/* mp_barrier_broken - 1 if broken, 0 if not, MP_EINVAL. */
MP_API int mp_barrier_broken(const mp_barrier *b);

/* mp_barrier_parties - the number of parties, or MP_EINVAL. */
MP_API int mp_barrier_parties(const mp_barrier *b);

/* mp_barrier_free, _size, _init_at - free b (NULL: no-op; left alone
   while a thread still waits in it, see mp_lock_free); the bytes a
   barrier for parties needs (0 for parties 0 or over INT_MAX / 2); a
   barrier placed in mem, with opts as for mp_barrier_new. _init_at
   returns 0, MP_EINVAL (NULL out or mem, too small, misaligned, bad
   parties or opts), MP_ENAMETOOLONG (as for mp_barrier_new). */
MP_API void mp_barrier_free(mp_barrier *b);
MP_API size_t mp_barrier_size(unsigned parties);
MP_API int mp_barrier_init_at(mp_barrier **out, void *mem, size_t size,
                              unsigned parties, const mp_barrier_opts *opts);

/* ------------------------------------------------------------------------
   Queues: Queue, JoinableQueue and SimpleQueue in one type. A ring in the
   family arena carries variable-size byte messages between any number of
   producers and consumers; no system call per message while the other
   side is awake; a process killed in the middle of a call never tears,
   loses (once put returned) or duplicates a message (docs/queue.md).
   ------------------------------------------------------------------------ */

/* mp_queue - a multi-producer, multi-consumer message queue.

   Threads and processes: any number of producers and consumers at once.
   mp_queue_free only once nobody uses the queue any more. */
typedef struct mp_queue mp_queue;

/* mp_queue_opts - options of mp_queue_new; zero or NULL: defaults. */
typedef struct mp_queue_opts {
    size_t maxsize;  /* messages; 0: bounded only by capacity */
    size_t capacity; /* bytes of ring, and the most the queue holds,
                        by-reference blocks included; 0: default */
    int joinable;    /* task_done / join enabled */
} mp_queue_opts;

/* mp_queue_new - a queue in the arena. capacity is rounded up to a power
   of two, at least 4 KiB (default 1 MiB, at most 1 GiB). Returns 0,
   MP_EINVAL (NULL out, capacity over 1 GiB, maxsize over 2^26 - 1),
   MP_ENOINIT, MP_ENOMEM. */
MP_API int mp_queue_new(mp_queue **out, const mp_queue_opts *opts);

/* mp_queue_put - copy len bytes into the queue, waiting at most timeout
   seconds for room. A message longer than half the capacity is copied
   into its own arena block and travels by reference; its bytes count
   against the capacity all the same, so one such message at most is in
   the queue at a time. Returns 0 once the message is in shared memory (a
   consumer will get it even if this process dies next), MP_EMSGSIZE (len
   over the capacity less 24 bytes: it could never fit; checked before
   any wait), MP_EFULL (no room in time, or the producers' lock or the
   arena's lock held by another thread or process, stopped or slow, until
   the deadline: with timeout 0, held at all), MP_ECLOSED, MP_ENOMEM
   (arena full, for a large message), MP_EINVAL (NULL q, NULL data with
   len > 0, NaN timeout). */
MP_API int mp_queue_put(mp_queue *q, const void *data, size_t len,
                        double timeout);

/* mp_queue_get - take the oldest message into buf (cap bytes), waiting at
   most timeout seconds for one. Returns its length, MP_EEMPTY (none in
   time, or the consumers' lock held by another thread or process until
   the deadline: with timeout 0, held at all), MP_EMSGSIZE (longer than
   cap: it stays queued; mp_queue_get_ex says its length), MP_EOF (closed
   and drained), MP_EINVAL (NULL q, NULL buf with cap > 0, NaN
   timeout). */
MP_API ssize_t mp_queue_get(mp_queue *q, void *buf, size_t cap, double timeout);

/* mp_queue_get_ex - mp_queue_get that also stores the length of the
   message it found (when need is not NULL), in particular with
   MP_EMSGSIZE. The codes of mp_queue_get. */
MP_API ssize_t mp_queue_get_ex(mp_queue *q, void *buf, size_t cap, size_t *need,
                               double timeout);

/* mp_queue_get_alloc - take the oldest message into a malloc'd buffer
   (*out; free() it; a zero-length message gives a 1-byte buffer). Returns
   its length, MP_EEMPTY, MP_EOF as mp_queue_get, MP_ENOMEM (no private
   memory: the message stays queued), MP_EINVAL (NULL q or out, NaN
   timeout). */
MP_API ssize_t mp_queue_get_alloc(mp_queue *q, void **out, double timeout);

/* mp_queue_put_ref - hand over an arena block (from mp_shared_alloc)
   holding len bytes, without copying: the queue owns it from then on, and
   len bytes count against its capacity. Returns 0, MP_EMSGSIZE,
   MP_EFULL, MP_ECLOSED as mp_queue_put, or MP_EINVAL (NULL q, block not
   the start of a live arena block or shorter than len, NaN timeout); on
   failure the block stays the caller's. */
MP_API int mp_queue_put_ref(mp_queue *q, void *block, size_t len,
                            double timeout);

/* mp_queue_get_ref - take the oldest message as an arena block (*block;
   the caller frees it with mp_shared_free): without copying when it was
   put by reference or is large; a small message is copied into a new
   block. Returns its length, MP_EEMPTY, MP_EOF as mp_queue_get,
   MP_ENOMEM (arena full for the copy: the message stays queued),
   MP_EINVAL (NULL q or block, NaN timeout). */
MP_API ssize_t mp_queue_get_ref(mp_queue *q, void **block, double timeout);

/* mp_queue_qsize - the number of messages in the queue (a snapshot:
   exact unless puts and gets land while it reads), or MP_EINVAL. */
MP_API int mp_queue_qsize(const mp_queue *q);

/* mp_queue_empty, mp_queue_full - 1 or 0 (full: maxsize messages in it,
   or less than 16 bytes of capacity left, by-reference blocks counted),
   or MP_EINVAL. */
MP_API int mp_queue_empty(const mp_queue *q);
MP_API int mp_queue_full(const mp_queue *q);

/* mp_queue_close - no more puts (they return MP_ECLOSED); gets drain what
   is left, then return MP_EOF. Waits for a put under way to end, then
   wakes every waiter. Returns 0 or MP_EINVAL. */
MP_API int mp_queue_close(mp_queue *q);

/* mp_queue_task_done - a message taken from a joinable queue has been
   processed. Returns 0, MP_ERANGE (more calls than messages put),
   MP_ENOTSUP (not joinable), MP_EINVAL. */
MP_API int mp_queue_task_done(mp_queue *q);

/* mp_queue_join - wait until every message put has been task_done'd, at
   most timeout seconds. Returns 0, MP_ETIMEDOUT, MP_ENOTSUP (not
   joinable), MP_EINVAL. */
MP_API int mp_queue_join(mp_queue *q, double timeout);

/* mp_queue_free - free the queue and the messages left in it (NULL:
   no-op). No process may use it any more. */
MP_API void mp_queue_free(mp_queue *q);

/* ------------------------------------------------------------------------
   Pipes and connections: Python's Pipe(duplex) and Connection, carrying
   byte messages over an AF_UNIX stream socket pair (a one-way pipe never
   sends on its receiving end). A connection is a per-process object
   around a file descriptor: fork children inherit it; use a queue to
   reach spawn and forkserver children.
   ------------------------------------------------------------------------ */

/* mp_conn - one end of a pipe.

   Threads: one receiver and one sender at a time per end; not two
   receivers or two senders. mp_conn_close must not overlap another call
   on the end. Processes: the same holds across the processes that share
   its descriptor (fork children). */
typedef struct mp_conn mp_conn;

/* mp_pipe_new - a connected pair. duplex: both ends send and receive;
   otherwise *a only receives and *b only sends (Python's Pipe(False)
   returns (reader, writer) in that order). Returns 0, MP_EINVAL (NULL),
   MP_EMFILE, MP_ENFILE, MP_ENOMEM, MP_ENOBUFS. */
MP_API int mp_pipe_new(mp_conn **a, mp_conn **b, int duplex);

/* mp_conn_send - send len bytes as one message, waiting at most timeout
   seconds for room. Returns 0, MP_ETIMEDOUT (no room in time), MP_EPIPE
   (the peer is gone, or the connection is broken), MP_EBADF (a
   receive-only end), MP_EINVAL (NULL c, NULL data with len > 0, len over
   SSIZE_MAX - 8, NaN timeout), MP_ENOMEM or MP_ENOBUFS (kernel memory),
   MP_EFAULT (data not readable). A send that fails after part of the
   message went out, MP_ETIMEDOUT included, breaks the connection, so
   that the peer never sees a torn message: the peer gets MP_EOF once it
   has read what came before, and every later send on c returns
   MP_EPIPE. */
MP_API int mp_conn_send(mp_conn *c, const void *data, size_t len,
                        double timeout);

/* mp_conn_recv - receive the next message into buf (cap bytes), waiting
   at most timeout seconds. Returns its length, MP_ETIMEDOUT (a message
   half-received is kept for the next call), MP_EMSGSIZE (longer than cap:
   it stays for the next call; mp_conn_recv_alloc takes it), MP_EOF (the
   peer closed or died: no more messages; one it left unfinished is
   dropped), MP_EIO (the stream lost its place: a length no sender of
   this library wrote, as when two processes read one end, or an earlier
   MP_ENOMEM; every later recv returns MP_EIO too), MP_ENOMEM (a call
   that stopped part-way through a message could not keep the bytes it
   had read: the stream is lost), MP_EBADF (a send-only end), MP_EINVAL
   (NULL c, NULL buf with cap > 0, NaN timeout), MP_EFAULT (buf not
   writable). */
MP_API ssize_t mp_conn_recv(mp_conn *c, void *buf, size_t cap, double timeout);

/* mp_conn_recv_alloc - receive the next message into a malloc'd buffer
   (*out; free() it). Returns its length, or the codes of mp_conn_recv
   but MP_EMSGSIZE and MP_EFAULT (MP_EINVAL: NULL out); its MP_ENOMEM (no
   memory for the message) leaves the message for a later call. */
MP_API ssize_t mp_conn_recv_alloc(mp_conn *c, void **out, double timeout);

/* mp_conn_poll - 1 if a message (or the peer's end) can be received now
   or within timeout seconds, 0 if not; MP_EBADF (a send-only end),
   MP_EINVAL (NULL, NaN timeout). Also 1 once the stream is lost
   (mp_conn_recv then returns MP_EIO). */
MP_API int mp_conn_poll(const mp_conn *c, double timeout);

/* mp_conn_fileno - the descriptor to poll(2) or give to mp_wait;
   MP_EINVAL for NULL. It is blocking (each call chooses whether to
   wait): read and write it only through the mp_conn_ calls. (After
   mp_conn_close, c is gone.) */
MP_API int mp_conn_fileno(const mp_conn *c);

/* mp_conn_close - close this end and free c (NULL: no-op). The peer
   receives MP_EOF once it has read what was sent before. Returns 0. */
MP_API int mp_conn_close(mp_conn *c);

/* mp_wait - like multiprocessing.connection.wait: wait until at least one
   of n descriptors (from mp_conn_fileno or mp_process_sentinel) is ready
   (a connection: a message or its end can be received; a sentinel: the
   process ended; a descriptor that is not open counts as ready, as with
   Python's selectors), at most timeout seconds. ready[i] is set to 1 or 0
   when ready is not NULL. Safe from any thread. Returns the number ready (0
   on time out), MP_EINVAL (NULL fds with n > 0, a negative descriptor,
   NaN timeout, n over RLIMIT_NOFILE), MP_ENOMEM. */
MP_API int mp_wait(const int *fds, size_t n, int *ready, double timeout);

/* ------------------------------------------------------------------------
   Pool: worker processes for map, apply and imap. A worker that dies fails
   only the task (item) it was running, with MP_EWORKERDIED, and is
   replaced; a task past the pool's task_timeout has its worker killed and
   fails with MP_ETIMEDOUT. Everything else completes (docs/pool.md).
   ------------------------------------------------------------------------ */

/* mp_pool - a pool of worker processes.

   Threads: calls on a pool and on its handles may run in several threads
   at once (each takes the pool's lock), but mp_pool_free must not
   overlap any other call on the pool or its handles and iterators:
   terminate, let the other calls return, then free. Processes: only the
   process that made the pool may use it, not a fork child. */
typedef struct mp_pool mp_pool;

/* mp_map_fn - a map function: read one item at in, write one result at
   out. 0: success; any other value is the item's error. */
typedef int (*mp_map_fn)(const void *in, void *out);

/* mp_pool_opts - options of mp_pool_new; zero or NULL: defaults. */
typedef struct mp_pool_opts {
    int processes;                 /* 0: mp_cpu_count() */
    mp_start_method start;         /* MP_START_DEFAULT: the config's */
    int (*initializer)(void *arg); /* nonzero return: mp_pool_new fails */
    void *initarg;
    size_t initarg_size;          /* bytes of *initarg copied to the workers */
    unsigned max_tasks_per_child; /* 0: unlimited */
    double task_timeout;          /* seconds; <= 0: none */
    const void *ctx;              /* the pool's context: what ctx and
                                     range functions get when a call
                                     gives none (see mp_map_opts) */
    size_t ctx_size;              /* bytes of *ctx copied to the workers
                                     once; 0: ctx passed as is */
} mp_pool_opts;

/* mp_task_error - which item failed and how: filled by the calls given
   one (mp_map_opts.error). */
typedef struct mp_task_error {
    size_t index; /* the failing item of lowest index (a range map: its
                     number i, not i - start); SIZE_MAX when none failed */
    int code;     /* its outcome: 0 (none failed), MP_ETASK, MP_EWORKERDIED,
                     MP_ETIMEDOUT, MP_EBROKEN, MP_ENOENT */
    int error;    /* MP_ETASK: the value the function returned */
    int signal;   /* the signal that ended the call's first worker to die
                     (MP_EWORKERDIED; SIGKILL for MP_ETIMEDOUT); 0: none */
} mp_task_error;

/* mp_map_opts - options of one map; zero or NULL: defaults. */
typedef struct mp_map_opts {
    size_t chunksize;     /* 0: automatic */
    int *status;          /* optional, n entries: 0, the item's
                             error, MP_EWORKERDIED, MP_ETIMEDOUT,
                             MP_EBROKEN (not run: the pool was
                             terminated or broke), MP_ENOENT (the
                             worker could not find fn) */
    const void *ctx;      /* the context of mp_pool_map_ctx and _range: given to
                             every call of the function, in every worker, under
                             every start method. NULL: the pool's (opts.ctx) */
    size_t ctx_size;      /* bytes of *ctx copied once for this call (read-only
                             in the workers); 0: the pointer is passed as is
                             (an arena pointer, or memory fork children see) */
    mp_task_error *error; /* optional: filled with the failing item, its
                             outcome, error value and signal (index
                             SIZE_MAX and code 0 when all succeeded) */
} mp_map_opts;

/* mp_pool_new - start a pool and run the initializer in every worker.
   Returns 0; MP_ETASK (an initializer returned nonzero), MP_EWORKERDIED
   (a worker died in it), MP_ETIMEDOUT (initializers still running after
   60 s): then no process is left behind; MP_EINVAL (NULL out, processes
   < 0 or over 1024, NaN task_timeout, a bad start method, an initializer
   outside any loaded object), MP_ENAMETOOLONG (the initializer lives in
   an object whose path is 1024 bytes or longer), MP_ENOINIT, MP_ENOMEM,
   or a code of mp_process_start. */
MP_API int mp_pool_new(mp_pool **out, const mp_pool_opts *opts);

/* mp_pool_map - out[i] = fn(in[i]) for the n items of in_size bytes
   (results of out_size bytes), in parallel, in chunks of mopts->chunksize
   items (0: automatic, guided: large chunks first, smaller ones at the
   end). Arrays in the arena are used in place; others are copied through
   shared memory. Returns 0 when every item succeeded; else, for the failing
   item of lowest index, MP_ETASK (its function returned nonzero, or the
   worker could not find fn), MP_EWORKERDIED, MP_ETIMEDOUT or MP_EBROKEN
   (not run: another thread terminated the pool, or it broke); or an
   error of the call itself: MP_EINVAL (NULL pool or fn, NULL in or out
   with n > 0 and a size, n times a size over SIZE_MAX, fn outside any
   loaded object), MP_ECLOSED (pool closed), MP_EBROKEN (workers keep
   dying before doing any work), MP_ENAMETOOLONG (fn lives in an object
   whose path is 1024 bytes or longer), MP_ENOMEM (memory, arena, or a
   65th distinct function: a pool takes 64 at most). */
MP_API int mp_pool_map(mp_pool *pool, mp_map_fn fn, const void *in,
                       size_t in_size, void *out, size_t out_size, size_t n,
                       const mp_map_opts *mopts);

/* mp_result - where an apply or byte-string map function leaves its
   result.

   Threads: valid only in the function it is given to, in the worker,
   while that function runs. */
typedef struct mp_result mp_result;

/* mp_result_set - in an apply or byte-string map function: the len bytes
   at data are its result (copied; a later call replaces it). Returns 0,
   MP_ENOMEM, MP_EINVAL. */
MP_API int mp_result_set(mp_result *res, const void *data, size_t len);

/* mp_map_ctx_fn - a map function that also gets the call's context (see
   mp_map_opts.ctx; NULL when there is none). 0: success; any other value
   is the item's error. */
typedef int (*mp_map_ctx_fn)(const void *ctx, const void *in, void *out);

/* mp_pool_map_ctx - mp_pool_map with a context: out[i] = fn(ctx, in[i])
   for the n items, ctx from mopts->ctx (copied once when ctx_size > 0) or
   the pool's. The codes of mp_pool_map. */
MP_API int mp_pool_map_ctx(mp_pool *pool, mp_map_ctx_fn fn, const void *in,
                           size_t in_size, void *out, size_t out_size, size_t n,
                           const mp_map_opts *mopts);

/* mp_range_fn - a function over an index range: item i of the range
   writes its result (out_size bytes) at out. 0: success; any other value
   is the item's error. */
typedef int (*mp_range_fn)(const void *ctx, size_t i, void *out);

/* mp_pool_map_range - Python's map over range(start, start + n) with no
   input array: out[k] = fn(ctx, start + k) for k < n, chunked and failing
   per item like mp_pool_map (status[k] is item start + k). out may be
   NULL with out_size 0 (functions that write elsewhere, e.g. into arena
   memory through ctx). The codes of mp_pool_map; MP_EINVAL also when
   start + n overflows. */
MP_API int mp_pool_map_range(mp_pool *pool, mp_range_fn fn, size_t start,
                             size_t n, void *out, size_t out_size,
                             const mp_map_opts *mopts);

/* mp_bytes - a byte string: len bytes at data. */
typedef struct mp_bytes {
    const void *data;
    size_t len;
} mp_bytes;

/* mp_bytes_fn - a map function over byte strings: the item's len bytes at
   in (read-only), the call's context, and where to put its result
   (mp_result_set; none set: an empty result). 0: success; any other value
   is the item's error. */
typedef int (*mp_bytes_fn)(const void *ctx, const void *in, size_t len,
                           mp_result *res);

/* mp_pool_map_bytes - a map over n byte strings of any sizes: item i is
   in[i], its result a byte string of any size. Strings already in the
   arena are read where they are (no copy); others are copied into the
   arena once. *out is n mp_bytes, in order, pointing at the results where
   the workers left them (in the arena: no copy); mp_bytes_free(*out)
   frees them all at once. A failed item's is {NULL, 0}, with its status
   and error report as mp_pool_map's. Returns the codes of mp_pool_map
   (MP_ENOMEM also for the results' array; *out is then NULL); MP_EINVAL
   also for NULL out or a NULL data with len > 0. */
MP_API int mp_pool_map_bytes(mp_pool *pool, mp_bytes_fn fn, const mp_bytes *in,
                             size_t n, mp_bytes **out,
                             const mp_map_opts *mopts);

/* mp_bytes_free - free the results of mp_pool_map_bytes, all of them
   (NULL: no-op; any other pointer is ignored). */
MP_API void mp_bytes_free(mp_bytes *out);

/* mp_async - the handle of an asynchronous map or apply.

   Threads: one thread at a time per handle (two in mp_async_get could
   both take one result); different handles of a pool may be used in
   different threads at once. */
typedef struct mp_async mp_async;

/* mp_pool_map_async - mp_pool_map without waiting: in, out and
   mopts->status must stay valid until the handle is ready; out (and
   status) are filled when the result is collected by mp_async_wait or
   mp_async_get. Returns 0 and *out_async, or the call errors of
   mp_pool_map. */
MP_API int mp_pool_map_async(mp_pool *pool, mp_map_fn fn, const void *in,
                             size_t in_size, void *out, size_t out_size,
                             size_t n, const mp_map_opts *mopts,
                             mp_async **out_async);

/* mp_apply_fn - an apply function: its argument bytes, and where to put
   its result. 0: success; other values: its error. */
typedef int (*mp_apply_fn)(const void *arg, size_t len, mp_result *res);

/* mp_apply_ctx_fn - an apply function that also gets a context (NULL
   when there is none). 0: success; other values: its error. */
typedef int (*mp_apply_ctx_fn)(const void *ctx, const void *arg, size_t len,
                               mp_result *res);

/* mp_apply_opts - options of mp_pool_apply_ctx; zero or NULL: defaults. */
typedef struct mp_apply_opts {
    const void *ctx;      /* the context; NULL: the pool's (opts.ctx) */
    size_t ctx_size;      /* bytes of *ctx copied for the call; 0: the
                             pointer passed as is */
    mp_task_error *error; /* optional: how the task failed (index 0) */
} mp_apply_opts;

/* mp_pool_apply_ctx, mp_pool_apply_ctx_async - mp_pool_apply and
   mp_pool_apply_async for a function with a context; the synchronous one
   also fills opts->error. The codes of mp_pool_apply and
   mp_pool_apply_async; MP_EINVAL also for ctx_size > 0 with a NULL ctx. */
MP_API int mp_pool_apply_ctx(mp_pool *pool, mp_apply_ctx_fn fn, const void *arg,
                             size_t len, void **result, size_t *result_len,
                             const mp_apply_opts *opts);
MP_API int mp_pool_apply_ctx_async(mp_pool *pool, mp_apply_ctx_fn fn,
                                   const void *arg, size_t len,
                                   const mp_apply_opts *opts, mp_async **out);

/* mp_async_task_error - how the task (or map) of a ready handle failed:
   the failing item's index, code, own error value (a map's needs its
   statuses or error report asked for) and signal; index SIZE_MAX and
   code 0 when it succeeded. Returns 0, MP_ESTATE (not ready), MP_EINVAL
   (NULL). */
MP_API int mp_async_task_error(mp_async *a, mp_task_error *e);

/* mp_pool_apply_async - run fn on a copy of the len bytes at arg in some
   worker. Returns 0 and *out, MP_EINVAL (NULL pool, fn or out, NULL arg
   with len > 0, fn outside any loaded object), MP_ECLOSED, MP_EBROKEN,
   MP_ENAMETOOLONG, MP_ENOMEM (as for mp_pool_map). */
MP_API int mp_pool_apply_async(mp_pool *pool, mp_apply_fn fn, const void *arg,
                               size_t len, mp_async **out);

/* mp_pool_apply - apply_async and get: *result is a malloc'd copy of the
   result (free() it; NULL when empty), *result_len its length (both may
   be NULL). Returns the codes of mp_pool_apply_async, or the outcome as
   mp_async_get gives it: 0, MP_ETASK, MP_EWORKERDIED, MP_ETIMEDOUT,
   MP_EBROKEN, MP_ENOMEM (never MP_EBUSY: it waits for the end). */
MP_API int mp_pool_apply(mp_pool *pool, mp_apply_fn fn, const void *arg,
                         size_t len, void **result, size_t *result_len);

/* mp_async_wait - wait until ready, at most timeout seconds. Returns 0
   (ready), MP_EBUSY (not ready in time; MP_ETIMEDOUT is a task's outcome
   here), MP_EINVAL. */
MP_API int mp_async_wait(mp_async *a, double timeout);

/* mp_async_ready - 1 if ready, 0 if not, MP_EINVAL. */
MP_API int mp_async_ready(mp_async *a);

/* mp_async_successful - 1 if ready and successful, 0 if ready and failed,
   MP_ESTATE if not ready (Python raises ValueError), MP_EINVAL. */
MP_API int mp_async_successful(mp_async *a);

/* mp_async_get - wait at most timeout seconds, then the outcome: 0 (the
   result, for an apply: a malloc'd copy in *result, its length in *len;
   both may be NULL), MP_EBUSY (not ready in time: nothing is lost, ask
   again), MP_ETASK (the function returned nonzero: mp_async_error says
   what), MP_EWORKERDIED (mp_async_signal says which signal),
   MP_ETIMEDOUT (the task ran past task_timeout and was killed),
   MP_EBROKEN (the pool was terminated or broke first), MP_ENOMEM (no
   memory for the copy of the result, which is lost), MP_EINVAL (not a
   handle, NaN timeout). For a map_async: MP_EBUSY, MP_EINVAL, or the
   outcome that mp_pool_map would return. */
MP_API int mp_async_get(mp_async *a, void **result, size_t *len,
                        double timeout);

/* mp_async_error - for an apply, the value the task function returned
   (nonzero when mp_async_get says MP_ETASK), or MP_ENOENT when the worker
   could not find the function; 0 otherwise, before ready, and for a map
   (its status array tells); MP_EINVAL. */
MP_API int mp_async_error(mp_async *a);

/* mp_async_signal - the signal that ended the worker of a task that
   failed with MP_EWORKERDIED (SIGKILL with MP_ETIMEDOUT; for a map, of
   the first such death seen), 0 if none (also for a worker that exited
   without a signal); MP_EINVAL. */
MP_API int mp_async_signal(mp_async *a);

/* mp_async_free - release the handle. A task not yet done goes on; its
   result is dropped when it ends. NULL: no-op. */
MP_API void mp_async_free(mp_async *a);

/* mp_progress_fn - told how many items of the current map are done. */
typedef void (*mp_progress_fn)(size_t done, size_t total, void *arg);

/* mp_pool_set_progress - call fn(done, total, arg) from the thread that
   waits for a map, at most every interval seconds and once at the end
   (fn NULL: no calls). Returns 0 or MP_EINVAL. */
MP_API int mp_pool_set_progress(mp_pool *pool, mp_progress_fn fn, void *arg,
                                double interval);

/* mp_gen_fn - an imap input generator: write the next item at item and
   return 1, or return 0 at the end (or a negative error: the end too). */
typedef int (*mp_gen_fn)(void *ctx, void *item);

/* mp_imap_opts - options of mp_pool_imap; zero or NULL: defaults. */
typedef struct mp_imap_opts {
    int ordered;      /* 1: results in input order (imap); 0: as they
                         complete (imap_unordered) */
    size_t chunksize; /* items per task; 0: 1 */
    size_t window;    /* items in flight at most; 0: 4 x processes x
                         chunksize. Bounds memory, and how much of the
                         input is read ahead */
    mp_gen_fn gen;    /* input from a generator instead of in[] */
    void *gen_ctx;
    const void *ctx; /* mp_pool_imap_ctx's context (as mp_map_opts.ctx;
                        copied with each chunk when ctx_size > 0) */
    size_t ctx_size;
} mp_imap_opts;

/* mp_imap - an iterator over the results of an imap.

   Threads: one thread at a time per iterator (the generator runs in the
   thread that calls mp_pool_imap or mp_imap_next); different iterators
   may be used in different threads at once. */
typedef struct mp_imap mp_imap;

/* mp_pool_imap - lazy map over n items of in (or, with opts->gen, over
   what the generator yields; n is then ignored): items are read and
   dispatched as results are taken, never more than the window at once.
   Returns 0 and *it, MP_EINVAL (NULL pool, fn or it, NULL in without a
   generator and n > 0, chunksize or window too large, fn outside any
   loaded object), MP_ECLOSED, MP_EBROKEN, MP_ENAMETOOLONG, MP_ENOMEM (as
   for mp_pool_map). */
MP_API int mp_pool_imap(mp_pool *pool, mp_map_fn fn, const void *in,
                        size_t in_size, size_t out_size, size_t n,
                        const mp_imap_opts *opts, mp_imap **it);

/* mp_pool_imap_ctx - mp_pool_imap for a function with a context
   (opts->ctx, or the pool's). The codes of mp_pool_imap. */
MP_API int mp_pool_imap_ctx(mp_pool *pool, mp_map_ctx_fn fn, const void *in,
                            size_t in_size, size_t out_size, size_t n,
                            const mp_imap_opts *opts, mp_imap **it);

/* mp_imap_next - the next result into out (out_size bytes) and its input
   index into *index (may be NULL), waiting at most timeout seconds.
   Returns 0; MP_EOF (no more); MP_EBUSY (none ready in time); an item's
   failure (MP_ETASK: its function returned nonzero or could not be
   found; MP_EWORKERDIED, MP_ETIMEDOUT, MP_EBROKEN: the pool was
   terminated; an item function that itself returns one of these three
   is reported as it), with *index set and out untouched; once, after the
   last result, why the input stopped early (MP_ECLOSED: the pool was
   closed, MP_EBROKEN: freed or broken, MP_ENOMEM); MP_EINVAL (not an
   iterator, NaN timeout). */
MP_API int mp_imap_next(mp_imap *it, void *out, size_t *index, double timeout);

/* mp_imap_task_error - the last failure mp_imap_next returned: the
   item's index, its code, its function's own error value (MP_ETASK) and
   the signal of a worker death; index SIZE_MAX and code 0 before any.
   Returns 0 or MP_EINVAL. */
MP_API int mp_imap_task_error(mp_imap *it, mp_task_error *e);

/* mp_imap_free - stop: items not yet taken are dropped (NULL: no-op). */
MP_API void mp_imap_free(mp_imap *it);

/* mp_pool_close - no more tasks (submissions return MP_ECLOSED); the
   workers exit once the work already given is done. Returns 0, MP_EINVAL. */
MP_API int mp_pool_close(mp_pool *pool);

/* mp_pool_terminate - kill the workers now and reap them; tasks not done
   fail with MP_EBROKEN. Returns 0, MP_EINVAL. */
MP_API int mp_pool_terminate(mp_pool *pool);

/* mp_pool_join - after close or terminate, wait at most timeout seconds
   for every worker to exit (and reap it). Returns 0, MP_ETIMEDOUT,
   MP_ESTATE (neither closed nor terminated), MP_EINVAL. */
MP_API int mp_pool_join(mp_pool *pool, double timeout);

/* mp_pool_free - terminate if still running, reap, release (NULL:
   no-op). It must not overlap any other call on the pool or its handles
   (see mp_pool); handles and iterators kept after it are ready, their
   work not done failed with MP_EBROKEN. */
MP_API void mp_pool_free(mp_pool *pool);

/* mp_pool_stats - counters of a pool, filled by the call of the same
   name (a struct and its call share a name, as stat(2) does). */
struct mp_pool_stats {
    size_t processes; /* workers it keeps */
    size_t started;   /* worker processes started, replacements included */
    size_t died;      /* workers that died in a task (or were killed) */
    size_t timed_out; /* tasks killed past task_timeout */
    size_t retired;   /* workers replaced after max_tasks_per_child */
};

/* mp_pool_stats - fill *st with the pool's counters. Returns 0 or
   MP_EINVAL (NULL). */
MP_API int mp_pool_stats(mp_pool *pool, struct mp_pool_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* MULTIPROC_H */
