/* rmutex.c - the waiting side of the robust mutex: spin, sleep on the
   futex, take over a dead owner's word. See rmutex.h. */
#include "rmutex.h"

#include "core.h"

#include <stddef.h>

_Static_assert(offsetof(mp__rmutex, word) == 0, "futex word first");
_Static_assert(offsetof(mp__rmutex, next) == 32,
               "robust node where glibc's futex_offset expects it");
_Static_assert(offsetof(mp__rmutex, prev) == 24, "prev before next");

void mp__rmutex_init(mp__rmutex *m)
{
    __atomic_store_n(&m->word, 0, __ATOMIC_RELAXED);
    m->prev = NULL;
    m->next = NULL;
}

/* lock_spinner - whether spinning on a held mutex has paid lately, for
   this thread. */
static __thread struct mp__spinner lock_spinner;

void mp__rmutex_wake(mp__rmutex *m)
{
    mp__futex_wake(&m->word, 1);
}

/* Without kernel robust lists: take over a word whose owner is gone. */
static int steal_if_dead(mp__rmutex *m, uint32_t v, uint32_t self)
{
    pid_t owner = (pid_t)(v & MP__FUTEX_TID_MASK);
    if (owner == 0 || mp__tid_alive(owner))
        return 0;
    uint32_t want = self | (v & MP__FUTEX_WAITERS);
    return __atomic_compare_exchange_n(&m->word, &v, want, 0, __ATOMIC_ACQUIRE,
                                       __ATOMIC_RELAXED);
}

int mp__rmutex_lock_slow(mp__rmutex *m, uint64_t deadline_ns)
{
    uint32_t *w = &m->word;
    uint32_t self = (uint32_t)mp__gettid();
    struct mp__robust_head *h = mp__robust_head();
    int slept = 0, r = 0;
    /* Spin only for callers that may wait, and while spinning has been
       answered lately (spin.h). */
    int spin_limit =
        deadline_ns != 0 && mp__spin_worth(&lock_spinner) ? MP__SPIN_LIMIT : 0;
    if (h != NULL) {
        h->list_op_pending = &m->next;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    for (int spin = 0;; spin++) {
        uint32_t v = __atomic_load_n(w, __ATOMIC_RELAXED);
        if ((v & MP__FUTEX_TID_MASK) == self) {
            r = MP_EDEADLK;
            break;
        }
        if ((v & MP__FUTEX_TID_MASK) == 0) {
            /* Free, or freed by the kernel for a dead owner. After a sleep
               keep the waiters bit: others may still sleep. */
            uint32_t want =
                self | (slept ? MP__FUTEX_WAITERS : (v & MP__FUTEX_WAITERS));
            if (__atomic_compare_exchange_n(w, &v, want, 0, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                if (spin_limit > 0 && !slept)
                    mp__spin_learn(&lock_spinner, 1);
                mp__rmutex_acquired(h, m);
                return (v & MP__FUTEX_OWNER_DIED) ? MP_EOWNERDEAD : 0;
            }
            continue;
        }
        if (h == NULL && steal_if_dead(m, v, self)) {
            mp__rmutex_acquired(h, m);
            return MP_EOWNERDEAD;
        }
        /* Never spin once someone sleeps (the owner will wake a sleeper,
           not a spinner). The pauses double between looks, so that a
           holder that re-takes the lock at once keeps its cache line for
           a while instead of trading it at every operation. */
        if (spin < spin_limit && !(v & MP__FUTEX_WAITERS)) {
            mp__spin_pause(spin);
            continue;
        }
        if (deadline_ns == 0 || mp__now_ns() >= deadline_ns) {
            /* The wake-up we may have taken was meant for one of us
               sleepers, and the holder (who may have re-taken the lock
               without the waiters bit) will not send another: pass it
               on. */
            if (slept)
                mp__futex_wake(w, 1);
            r = MP_ETIMEDOUT;
            break;
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
        if (!slept && spin >= spin_limit && spin_limit > 0)
            mp__spin_learn(&lock_spinner, 0);
        mp__futex_wait(w, v, dl);
        slept = 1;
    }
    if (h != NULL)
        h->list_op_pending = NULL;
    return r;
}
