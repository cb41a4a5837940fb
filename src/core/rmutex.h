/* rmutex.h - the robust process-shared mutex: a futex word owned by a
   thread id and listed in the owner's kernel robust list, so that the
   owner's death marks it FUTEX_OWNER_DIED and wakes a waiter. The fast
   paths are inline; waiting is in rmutex.c. */
#ifndef MP_RMUTEX_H
#define MP_RMUTEX_H

#include "../platform/platform.h"
#include "multiproc.h"
#include "spin.h"

#include <stdint.h>

/* MP__FUTEX_WAITERS, MP__FUTEX_OWNER_DIED, MP__FUTEX_TID_MASK - the
   kernel's robust futex word format. */
#define MP__FUTEX_WAITERS    0x80000000u
#define MP__FUTEX_OWNER_DIED 0x40000000u
#define MP__FUTEX_TID_MASK   0x3fffffffu

/* mp__rmutex - laid out like glibc's pthread_mutex_t where the kernel
   looks (the word at 0, the {prev, next} node at 24: futex_offset -32),
   so that its node can sit in glibc's per-thread robust list. */
typedef struct mp__rmutex {
    uint32_t word;    /* 0 free; owner tid | WAITERS | OWNER_DIED */
    uint32_t user[5]; /* free for the object that embeds the mutex */
    void *prev;       /* robust list node, private to the owner */
    void *next;
} mp__rmutex;

/* mp__rmutex_init - an unlocked mutex (user[] is left alone). */
void mp__rmutex_init(mp__rmutex *m);

/* mp__rmutex_lock_slow - acquire, waiting until deadline_ns (absolute;
   0: do not wait; MP__NO_DEADLINE: forever). Returns 0, MP_EOWNERDEAD
   (acquired; the previous owner died holding it), MP_ETIMEDOUT,
   MP_EDEADLK (the caller already holds it). */
int mp__rmutex_lock_slow(mp__rmutex *m, uint64_t deadline_ns);

/* mp__rmutex_wake - wake one waiter (unlock's slow path). */
void mp__rmutex_wake(mp__rmutex *m);

/* The links of glibc's list point at the next field of a node; the prev
   field sits just before it (the head has robust_prev there). */
static inline void **mp__rlist_prev_slot(void *link)
{
    return (void **)((uintptr_t)link & ~(uintptr_t)1) - 1;
}

/* mp__rmutex_acquired - finish an acquisition: link the node into the
   thread's list and clear the pending mark. */
static inline void mp__rmutex_acquired(struct mp__robust_head *h, mp__rmutex *m)
{
    if (h != NULL) {
        *mp__rlist_prev_slot(h->list) = &m->next;
        m->next = h->list;
        m->prev = h;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        h->list = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        h->list_op_pending = NULL;
    }
}

/* mp__rmutex_trylock - one attempt. Returns 0 (acquired) or MP_EBUSY;
   a dead owner's or our own hold also give MP_EBUSY (the slow path says
   which). */
static inline int mp__rmutex_trylock(mp__rmutex *m)
{
    uint32_t self = (uint32_t)mp__gettid();
    struct mp__robust_head *h = mp__robust_head();
    if (h != NULL) {
        /* A death between the exchange and the linking is covered by
           the pending slot, which the kernel also inspects. */
        h->list_op_pending = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    uint32_t zero = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(&m->word, &zero, self, 0,
                                                     __ATOMIC_ACQUIRE,
                                                     __ATOMIC_RELAXED),
                         1)) {
        mp__rmutex_acquired(h, m);
        return 0;
    }
    if (h != NULL)
        h->list_op_pending = NULL;
    return MP_EBUSY;
}

/* mp__rmutex_lock - acquire (see mp__rmutex_lock_slow for the codes). */
static inline int mp__rmutex_lock(mp__rmutex *m, uint64_t deadline_ns)
{
    if (__builtin_expect(mp__rmutex_trylock(m) == 0, 1))
        return 0;
    return mp__rmutex_lock_slow(m, deadline_ns);
}

/* mp__rmutex_held - 1 if the calling thread holds m, else 0. */
static inline int mp__rmutex_held(const mp__rmutex *m)
{
    uint32_t v = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
    return (v & MP__FUTEX_TID_MASK) == (uint32_t)mp__gettid();
}

/* mp__rmutex_unlock - release. Returns 0 or MP_EPERM (not the owner). */
static inline int mp__rmutex_unlock(mp__rmutex *m)
{
    uint32_t self = (uint32_t)mp__gettid();
    uint32_t v = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
    if (__builtin_expect((v & MP__FUTEX_TID_MASK) != self, 0))
        return MP_EPERM;
    struct mp__robust_head *h = mp__robust_head();
    if (h != NULL) {
        h->list_op_pending = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        *mp__rlist_prev_slot(m->next) = m->prev;
        *(void **)((uintptr_t)m->prev & ~(uintptr_t)1) = m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    uint32_t old = __atomic_exchange_n(&m->word, 0, __ATOMIC_RELEASE);
    if (h != NULL) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        h->list_op_pending = NULL;
    }
    if (__builtin_expect(old & MP__FUTEX_WAITERS, 0))
        mp__rmutex_wake(m);
    return 0;
}

#endif /* MP_RMUTEX_H */
