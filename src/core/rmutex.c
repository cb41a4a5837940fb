/* rmutex.c - the robust process-shared mutex: a futex word owned by a
   thread id, listed in the owner's kernel robust list so that its death
   marks the word FUTEX_OWNER_DIED and wakes a waiter. */
#include "core.h"

#include "../platform/platform.h"

#include <stddef.h>

_Static_assert(offsetof(mp__rmutex, word) == 0, "futex word first");
_Static_assert(offsetof(mp__rmutex, next) == 32,
               "robust node where glibc's futex_offset expects it");
_Static_assert(offsetof(mp__rmutex, prev) == 24, "prev before next");

#define WORD(m) ((uint32_t *)&(m)->word)

/* The links of glibc's list point at the next field of a node; the prev
   field sits just before it (the head has robust_prev there). */
static inline void **prev_slot(void *link)
{
    return (void **)((uintptr_t)link & ~(uintptr_t)1) - 1;
}

static inline void list_add(struct mp__robust_head *h, mp__rmutex *m)
{
    *prev_slot(h->list) = &m->next;
    m->next = h->list;
    m->prev = h;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    h->list = &m->next;
}

static inline void list_del(mp__rmutex *m)
{
    *prev_slot(m->next) = m->prev;
    *(void **)((uintptr_t)m->prev & ~(uintptr_t)1) = m->next;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    m->prev = NULL;
    m->next = NULL;
}

void mp__rmutex_init(mp__rmutex *m)
{
    __atomic_store_n(WORD(m), 0, __ATOMIC_RELAXED);
    for (int i = 0; i < 5; i++)
        m->spare[i] = 0;
    m->prev = NULL;
    m->next = NULL;
}

/* Finish an acquisition: the node goes into our list, the pending mark
   is cleared. Both run with the word already ours. */
static inline void acquired(struct mp__robust_head *h, mp__rmutex *m)
{
    if (h != NULL) {
        list_add(h, m);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        h->list_op_pending = NULL;
    }
}

/* Without kernel robust lists: take over a word whose owner is gone. */
static int steal_if_dead(mp__rmutex *m, uint32_t v, uint32_t self)
{
    pid_t owner = (pid_t)(v & MP__FUTEX_TID_MASK);
    if (owner == 0 || mp__tid_alive(owner))
        return 0;
    uint32_t want = self | (v & MP__FUTEX_WAITERS);
    return __atomic_compare_exchange_n(WORD(m), &v, want, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

static int lock_slow(mp__rmutex *m, uint64_t deadline_ns,
                     struct mp__robust_head *h, uint32_t self)
{
    uint32_t *w = WORD(m);
    int slept = 0;
    for (int spin = 0;; spin++) {
        uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if ((v & MP__FUTEX_TID_MASK) == self) {
            if (h != NULL)
                h->list_op_pending = NULL;
            return MP_EDEADLK;
        }
        if ((v & MP__FUTEX_TID_MASK) == 0) {
            /* Free, or freed by the kernel for a dead owner. After a sleep
               keep the waiters bit: others may still sleep. */
            uint32_t want =
                self | (slept ? MP__FUTEX_WAITERS : (v & MP__FUTEX_WAITERS));
            if (__atomic_compare_exchange_n(w, &v, want, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                acquired(h, m);
                return (v & MP__FUTEX_OWNER_DIED) ? MP_EOWNERDEAD : 0;
            }
            continue;
        }
        if (h == NULL && steal_if_dead(m, v, self)) {
            acquired(h, m);
            return MP_EOWNERDEAD;
        }
        if (spin < MP__SPIN_LIMIT && !(v & MP__FUTEX_WAITERS)) {
            mp__cpu_relax();
            continue;
        }
        if (deadline_ns == 0 || mp__now_ns() >= deadline_ns) {
            if (h != NULL)
                h->list_op_pending = NULL;
            return MP_ETIMEDOUT;
        }
        if (!(v & MP__FUTEX_WAITERS)) {
            uint32_t nv = v | MP__FUTEX_WAITERS;
            if (!__atomic_compare_exchange_n(w, &v, nv, 0, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED))
                continue;
            v = nv;
        }
        /* Without robust lists nobody wakes us for a dead owner: nap in
           slices and look again. */
        uint64_t dl = deadline_ns;
        if (h == NULL) {
            uint64_t slice = mp__now_ns() + 10000000u;
            if (slice < dl)
                dl = slice;
        }
        int r = mp__futex_wait(w, v, dl);
        slept = 1;
        if (r == MP_ETIMEDOUT && dl == deadline_ns) {
            if (h != NULL)
                h->list_op_pending = NULL;
            return MP_ETIMEDOUT;
        }
    }
}

int mp__rmutex_lock(mp__rmutex *m, uint64_t deadline_ns)
{
    uint32_t self = (uint32_t)mp__gettid();
    struct mp__robust_head *h = mp__robust_head();
    if (h != NULL) {
        /* A death between the exchange and the list insertion is covered
           by the pending slot, which the kernel also inspects. */
        h->list_op_pending = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    uint32_t zero = 0;
    if (__builtin_expect(__atomic_compare_exchange_n(WORD(m), &zero, self, 0,
                                                     __ATOMIC_ACQUIRE,
                                                     __ATOMIC_RELAXED),
                         1)) {
        acquired(h, m);
        return 0;
    }
    return lock_slow(m, deadline_ns, h, self);
}

int mp__rmutex_unlock(mp__rmutex *m)
{
    uint32_t self = (uint32_t)mp__gettid();
    uint32_t v = __atomic_load_n(WORD(m), __ATOMIC_RELAXED);
    if ((v & MP__FUTEX_TID_MASK) != self)
        return MP_EPERM;
    struct mp__robust_head *h = mp__robust_head();
    if (h != NULL) {
        h->list_op_pending = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        list_del(m);
    }
    uint32_t old = __atomic_exchange_n(WORD(m), 0, __ATOMIC_RELEASE);
    if (h != NULL) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        h->list_op_pending = NULL;
    }
    if (old & MP__FUTEX_WAITERS)
        mp__futex_wake(WORD(m), 1);
    return 0;
}

int mp__rmutex_held(const mp__rmutex *m)
{
    uint32_t v = __atomic_load_n(&m->word, __ATOMIC_RELAXED);
    return (v & MP__FUTEX_TID_MASK) == (uint32_t)mp__gettid();
}
