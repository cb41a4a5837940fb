/* core.h - internal services of the core shared by every module: library
   state, deadlines, the robust mutex, the family arena and function
   references. */
#ifndef MP_CORE_H
#define MP_CORE_H

#include "multiproc.h"
#include "rmutex.h"

#include <limits.h>
#include <stdint.h>

/* ---- library state -----------------------------------------------------
 */

/* mp__state - what mp_init set up in this process. */
struct mp__state {
    int initialized;       /* mp_init succeeded (or a child booted) */
    mp_start_method start; /* the default start method, never DEFAULT */
    int arena_fd;          /* the family memfd, close-on-exec */
    void *arena;           /* base of the family arena mapping */
    size_t arena_size;     /* bytes mapped */
    int argc;              /* the command line for spawn (argv may be NULL:
                              then read from /proc/self/cmdline) */
    char **argv;
    int lifeline_r;     /* read end, never armed: the spares' source */
    int lifeline_w;     /* write end: only this process holds it */
    int lifeline_spare; /* a private description of the read end for the
                           next child, made ahead of time, or -1 */
    int fs_spares;      /* children a forkserver keeps forked ahead */
    int fs_lend;        /* of those, lent to this process (warm starts) */
};

/* mp__g - the one instance of the library state. */
extern struct mp__state mp__g;

/* mp__require_init - MP_ENOINIT unless mp_init ran in this family; 0. */
int mp__require_init(void);

/* mp__new_lifeline - replace this process's lifeline pipe with a new one
   (a child's own, for its own children). Returns 0 or a negative errno. */
int mp__new_lifeline(void);

/* mp__forking_child - set by the thread that forks a multiproc child
   around the fork, so that the fork handler tells our children (which arm
   the lifeline) from other fork children (which drop it). */
extern __thread int mp__forking_child;

/* mp__lifeline_ready - before a start: make the lifeline if this process
   has none, and the spare, a private open file description of its read
   end, for the child about to start (each child needs its own: the
   owner that the pipe's hang-up signals is kept per description). Making
   the spare here, ahead of the fork, spares the child the /proc look-up
   and its page faults (most of what a fork start cost beyond a raw
   fork). Returns 0 (mp__g.lifeline_spare may still be -1 where /proc is
   missing: the child falls back to reopening, then to the parent-death
   signal) or a negative errno (the pipe could not be made). */
int mp__lifeline_ready(void);

/* mp__lifeline_handed - after a start that handed the spare to a child:
   drop this process's copy and make the next one (while the child runs;
   a failure is retried by the next mp__lifeline_ready). */
void mp__lifeline_handed(void);

/* mp__lifeline_spare_fd - the spare for a child started by exec, which
   must receive its own description. Returns it or a negative errno (it
   could not be made: no /proc, no descriptor left). */
int mp__lifeline_spare_fd(void);

/* MP__FAULT_HOOK - call the test hook function pointer hook, if a test
   set one, at step: the named points where tests kill or stop a process
   (arena, queue, sync). Free when no test set it. */
#define MP__FAULT_HOOK(hook, step)                                             \
    do {                                                                       \
        if (__builtin_expect((hook) != NULL, 0))                               \
            (hook)(step);                                                      \
    } while (0)

/* ---- deadlines ---------------------------------------------------------
 */

/* MP__NO_DEADLINE - the deadline of a timeout that never expires. */
#define MP__NO_DEADLINE UINT64_MAX

/* mp__deadline - turn a timeout in seconds into an absolute
   CLOCK_MONOTONIC deadline in *dl: negative or infinite means
   MP__NO_DEADLINE, 0 means already expired. Returns 0 or MP_EINVAL (NaN).
   Computed once at a call's entry and used by every step. */
int mp__deadline(double timeout, uint64_t *dl);

/* MP__LOCK_GRACE_NS - the least a call waits for an internal lock that
   another process holds, whatever its timeout: holders keep one for a
   copy, so a call with timeout 0 must not fail because another took it
   a moment ago (or was preempted holding it); a stopped holder costs the
   call no more than this past its timeout. */
#define MP__LOCK_GRACE_NS 20000000u

/* mp__lock_deadline - the deadline for an internal lock wait of a call
   whose own deadline is dl: dl, but at least MP__LOCK_GRACE_NS from now.
   Read the clock only once the lock was found taken. */
static inline uint64_t mp__lock_deadline(uint64_t dl)
{
    uint64_t grace = mp__now_ns() + MP__LOCK_GRACE_NS;
    return dl > grace ? dl : grace;
}

/* ---- the family arena --------------------------------------------------
 */

/* MP__ARENA_NAME - the name of the arena's memfd: a booting child checks
   that the descriptor it is told of carries it. */
#define MP__ARENA_NAME "multiproc-arena"

/* MP__ARENA_DEFAULT_SIZE - virtual size of the arena when not configured. */
#define MP__ARENA_DEFAULT_SIZE ((size_t)4 << 30)

/* mp__arena_create - create the memfd, map it at a free address in a
   region every process of the family can also use, and format it.
   Returns 0 (fills mp__g.arena*) or a negative errno. */
int mp__arena_create(size_t size);

/* mp__arena_formatted - 1 if the memfd fd holds an arena of size bytes
   (its header says so), else 0: read, not mapped, so that a forged
   descriptor is told apart before anything is mapped at its address. */
int mp__arena_formatted(int fd, size_t size);

/* mp__arena_attach - map an inherited arena memfd at base (a spawned
   child). Returns 0, MP_EEXIST (the range is taken here), or an errno. */
int mp__arena_attach(int fd, uintptr_t base, size_t size);

/* mp__arena_off, mp__arena_ptr - convert between arena pointers and
   offsets from the arena base. */
static inline uint64_t mp__arena_off(const void *p)
{
    return (uint64_t)((const char *)p - (const char *)mp__g.arena);
}
static inline void *mp__arena_ptr(uint64_t off)
{
    return (char *)mp__g.arena + off;
}

/* mp__arena_alloc - like mp_shared_alloc with an alignment (a power of
   two, at least 16). NULL when exhausted. */
void *mp__arena_alloc(size_t size, size_t align);

/* mp__arena_dup - an arena copy of the size bytes at src (size > 0),
   aligned to align: how a private argument or context reaches workers of
   every start method. NULL when exhausted. */
void *mp__arena_dup(const void *src, size_t size, size_t align);

/* mp__arena_alloc_dirty - mp__arena_alloc without the zeroing, for a
   block its caller overwrites whole (staging): its bytes are whatever the
   last user left. NULL when exhausted. */
void *mp__arena_alloc_dirty(size_t size, size_t align);

/* mp__arena_alloc_until - mp__arena_alloc that waits for the allocator's
   lock at most until the CLOCK_MONOTONIC time dl. NULL with *err set to
   MP_ENOMEM (exhausted, bad size) or MP_ETIMEDOUT (the lock's holder,
   stopped or slow, kept it past dl). */
void *mp__arena_alloc_until(size_t size, size_t align, uint64_t dl, int *err);

/* mp__arena_usable - the usable bytes of the live block at ptr (as given
   by mp_shared_alloc), or 0 when ptr is not the start of one. */
size_t mp__arena_usable(const void *ptr);

/* mp__arena_check - walk the whole heap and verify every invariant.
   Returns 0, or MP_ENOTRECOVERABLE with a reason in *why. For tests. */
int mp__arena_check(const char **why);

/* mp__arena_stats - counters for tests and diagnostics. */
struct mp__arena_stats {
    uint64_t used_bytes; /* bytes in allocated blocks, headers included */
    uint64_t free_bytes; /* bytes in free blocks below the top */
    uint64_t top;        /* end of the heap, offset from the base */
    uint64_t blocks;     /* allocated blocks */
    uint64_t recoveries; /* repairs after a holder died in the allocator */
    uint64_t bad_frees;  /* rejected frees */
};
void mp__arena_stats(struct mp__arena_stats *st);

/* mp__arena_fault_hook - when set (tests only), called with a step number
   at each step of an allocation or free while the lock is held. */
extern void (*mp__arena_fault_hook)(int step);

/* ---- function references -----------------------------------------------
 */

/* MP__OBJECT_MAX - longest loaded-object path a reference may carry. */
#define MP__OBJECT_MAX 1024

/* mp__fnref - a function named as (loaded object, offset from its load
   base): valid in any process running the same binary, whatever its
   address layout. object is "" for the main program. */
typedef struct mp__fnref {
    uint64_t offset;
    char object[MP__OBJECT_MAX];
} mp__fnref;

/* mp__fnref_make - the reference of fn. Returns 0, MP_EINVAL (fn is not
   in any loaded object), MP_ENAMETOOLONG. */
int mp__fnref_make(void *fn, mp__fnref *ref);

/* mp__fnref_resolve - the address of ref in this process, loading its
   object if it is not loaded yet. Returns 0 or MP_ENOENT. */
int mp__fnref_resolve(const mp__fnref *ref, void **fn);

/* ---- cpu count ---------------------------------------------------------
 */

/* mp__cpu_quota_from - the CPU limit of a cgroup v2 "cpu.max" text
   ("max 100000" or "quota period"): ceil(quota/period), or 0 for no
   limit or text it cannot read. */
int mp__cpu_quota_from(const char *text);

#endif /* MP_CORE_H */
