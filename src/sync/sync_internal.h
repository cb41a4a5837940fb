/* sync_internal.h - what the synchronization primitives share: their
   layouts, magic numbers, and allocation or placement. */
#ifndef MP_SYNC_INTERNAL_H
#define MP_SYNC_INTERNAL_H

#include "../core/core.h"
#include "../core/wake.h"

#include <stddef.h>
#include <stdint.h>

/* Magic numbers: the first check of every call, and 0xdead... once
   freed, so that a stale pointer gives MP_EINVAL while the memory says
   so. */
#define MP__LOCK_MAGIC  0x4b434f4cu /* "LOCK" */
#define MP__RLOCK_MAGIC 0x4b434c52u /* "RLCK" */
#define MP__SEM_MAGIC   0x414d4553u /* "SEMA" */
#define MP__COND_MAGIC  0x444e4f43u /* "COND" */
#define MP__EVENT_MAGIC 0x544e5645u /* "EVNT" */
#define MP__BAR_MAGIC   0x52524142u /* "BARR" */
#define MP__DEAD_MAGIC  0xdeadbeefu

/* MP__OBJ_PLACED - the memory belongs to the caller (_init_at). */
#define MP__OBJ_PLACED 1u

/* mp_lock, mp_rlock - a robust mutex; its spare words hold the magic
   (user[0]), the flags (user[1]) and, for mp_rlock, the depth (user[2],
   written by the owner only). */
struct mp_lock {
    mp__rmutex m;
};
struct mp_rlock {
    mp__rmutex m;
};
#define MP__L_MAGIC(l) ((l)->m.user[0])
#define MP__L_FLAGS(l) ((l)->m.user[1])
#define MP__L_DEPTH(l) ((l)->m.user[2])

/* mp__sync_new - cache-line aligned arena memory for an object of size
   bytes. Returns it, or NULL with *err (MP_ENOINIT, MP_ENOMEM). */
void *mp__sync_new(size_t size, int *err);

/* mp__sync_place - check caller memory for an object of need bytes.
   Returns 0 or MP_EINVAL (NULL, smaller than need, not 8-byte aligned). */
int mp__sync_place(const void *mem, size_t size, size_t need);

/* mp__sync_may_free - whether memory holding mutex m may be freed: one
   held by the caller is released first (1); one held by another thread
   must be left alone (0), for its node is in that thread's robust list,
   which reused memory would corrupt. */
int mp__sync_may_free(mp__rmutex *m);

/* mp__sync_free - invalidate *magic and free obj unless placed. */
void mp__sync_free(void *obj, uint32_t *magic, uint32_t flags);

/* mp__rlock_release_all, mp__rlock_restore - what a condition does with
   a recursive lock around a wait: release every level (returns the
   depth), then take the depth back after re-acquiring. */
uint32_t mp__rlock_release_all(struct mp_rlock *l);
void mp__rlock_restore(struct mp_rlock *l, uint32_t depth);

/* mp__sync_step - the points where a test may kill a releaser or setter:
   after its store, before its wake-up call. */
enum mp__sync_step {
    MP__SYNC_SEM_RELEASED = 1, /* semaphore: value raised, none woken */
    MP__SYNC_EVENT_SET         /* event: flag set, none woken */
};

/* mp__sync_fault_hook - when set (tests only), called at every step. */
extern void (*mp__sync_fault_hook)(int step);

/* MP__SYNC_HOOK - call the fault hook, if any, at step. */
#define MP__SYNC_HOOK(step) MP__FAULT_HOOK(mp__sync_fault_hook, step)

#endif /* MP_SYNC_INTERNAL_H */
