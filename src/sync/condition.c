/* condition.c - Condition: waits counted with three sequence numbers
   (glibc's classic scheme), all guarded by the condition's own lock, and
   a futex word bumped by every notify. */
#include "sync_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* How it stays exact: a waiter takes a ticket (total++) and remembers
   wakeup as seq. notify(n) issues up to n wake-ups (wakeup++), never more
   than there are unsignalled waiters (total - wakeup). A waiter proceeds
   only if a wake-up was issued after it arrived (wakeup != seq) and one is
   left unconsumed (woken != wakeup); it consumes it (woken++). A waiter
   that times out issues and consumes one for itself, so total - wakeup
   stays the number of waiters not yet signalled. notify_all advances all
   three and bumps bcast. A waiter that dies while asleep is counted but
   never consumes: its wake-up is later taken by another waiter (a
   harmless extra wake-up), and nobody waits for it. */
struct mp_condition {
    uint32_t magic;
    uint32_t flags;
    uint32_t futex;      /* bumped by every notify: sleepers wait on it */
    uint32_t rlock;      /* 1: the lock is an mp_rlock */
    int64_t lock_rel;    /* the lock's address minus ours */
    uint64_t total;      /* waiters ever */
    uint64_t wakeup;     /* wake-ups issued */
    uint64_t woken;      /* wake-ups consumed */
    uint64_t bcast;      /* notify_all count */
    struct mp_rlock own; /* the lock when none was given */
};

static int ok(const mp_condition *c)
{
    return c != NULL && c->magic == MP__COND_MAGIC;
}

static mp__rmutex *mutex_of(mp_condition *c)
{
    return (mp__rmutex *)((char *)c + c->lock_rel);
}

static int format(mp_condition *c, mp_lock *lock, mp_rlock *rlock,
                  uint32_t flags)
{
    if (lock != NULL && rlock != NULL)
        return MP_EINVAL;
    if (lock != NULL && MP__L_MAGIC(lock) != MP__LOCK_MAGIC)
        return MP_EINVAL;
    if (rlock != NULL && MP__L_MAGIC(rlock) != MP__RLOCK_MAGIC)
        return MP_EINVAL;
    if (lock == NULL && rlock == NULL) {
        mp__rmutex_init(&c->own.m);
        c->own.m.user[1] = MP__OBJ_PLACED; /* freed with the condition */
        c->own.m.user[2] = 0;
        c->own.m.user[0] = MP__RLOCK_MAGIC;
        rlock = &c->own;
    } else {
        /* No lock of its own: free must find none in placed memory,
           whatever it held before. */
        memset(&c->own, 0, sizeof c->own);
    }
    c->flags = flags;
    c->futex = 0;
    c->rlock = rlock != NULL;
    c->lock_rel =
        rlock != NULL ? (char *)rlock - (char *)c : (char *)lock - (char *)c;
    c->total = c->wakeup = c->woken = c->bcast = 0;
    __atomic_store_n(&c->magic, MP__COND_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mp_condition_new(mp_condition **out, mp_lock *lock, mp_rlock *rlock)
{
    if (out == NULL)
        return MP_EINVAL;
    int err = 0;
    mp_condition *c = mp__sync_new(sizeof *c, &err);
    if (c == NULL)
        return err;
    if ((err = format(c, lock, rlock, 0)) != 0) {
        mp_shared_free(c);
        return err;
    }
    *out = c;
    return 0;
}

size_t mp_condition_size(void)
{
    return sizeof(mp_condition);
}

int mp_condition_init_at(mp_condition **out, void *mem, size_t size,
                         mp_lock *lock, mp_rlock *rlock)
{
    if (out == NULL || mp__sync_place(mem, size, sizeof(mp_condition)) != 0)
        return MP_EINVAL;
    int r = format(mem, lock, rlock, MP__OBJ_PLACED);
    if (r == 0)
        *out = mem;
    return r;
}

int mp_condition_acquire(mp_condition *c, double timeout)
{
    if (!ok(c))
        return MP_EINVAL;
    if (c->rlock)
        return mp_rlock_acquire((mp_rlock *)mutex_of(c), timeout);
    return mp_lock_acquire((mp_lock *)mutex_of(c), timeout);
}

int mp_condition_release(mp_condition *c)
{
    if (!ok(c))
        return MP_EINVAL;
    if (c->rlock)
        return mp_rlock_release((mp_rlock *)mutex_of(c));
    return mp_lock_release((mp_lock *)mutex_of(c));
}

/* Wait until deadline dl with the lock held on entry and on return. */
static int wait_until(mp_condition *c, uint64_t dl)
{
    mp__rmutex *m = mutex_of(c);
    if (!mp__rmutex_held(m))
        return MP_EPERM;
    c->total++;
    uint64_t seq = c->wakeup, bc = c->bcast;
    int result = 0, dead = 0;
    uint32_t depth = 1;
    for (;;) {
        uint32_t fw = __atomic_load_n(&c->futex, __ATOMIC_RELAXED);
        if (c->rlock)
            depth = mp__rlock_release_all((mp_rlock *)m);
        else
            mp__rmutex_unlock(m);
        /* Naps: a waiter that a notify chose and that died before taking
   the lock back leaves its wake-up for us to find. */
        mp__futex_wait(&c->futex, fw, mp__nap_until(dl));
        /* Python takes the lock back without a timeout: so do we. */
        if (mp__rmutex_lock(m, MP__NO_DEADLINE) == MP_EOWNERDEAD)
            dead = 1;
        if (c->rlock)
            mp__rlock_restore((mp_rlock *)m, depth);
        if (c->bcast != bc)
            break;
        if (c->wakeup != seq && c->woken != c->wakeup) {
            c->woken++;
            break;
        }
        if (dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl)) {
            c->wakeup++;
            c->woken++;
            result = MP_ETIMEDOUT;
            break;
        }
    }
    return dead ? MP_EOWNERDEAD : result;
}

int mp_condition_wait(mp_condition *c, double timeout)
{
    if (!ok(c))
        return MP_EINVAL;
    uint64_t dl;
    if (mp__deadline(timeout, &dl) != 0)
        return MP_EINVAL;
    return wait_until(c, dl);
}

int mp_condition_wait_for(mp_condition *c, mp_predicate_fn pred, void *arg,
                          double timeout)
{
    if (!ok(c) || pred == NULL)
        return MP_EINVAL;
    uint64_t dl;
    if (mp__deadline(timeout, &dl) != 0)
        return MP_EINVAL;
    if (!mp__rmutex_held(mutex_of(c)))
        return MP_EPERM;
    int dead = 0;
    while (!pred(arg)) {
        if (dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl))
            return dead ? MP_EOWNERDEAD : 0;
        int r = wait_until(c, dl);
        if (r == MP_EOWNERDEAD)
            dead = 1;
        else if (r != 0 && r != MP_ETIMEDOUT)
            return r;
    }
    return dead ? MP_EOWNERDEAD : 1;
}

int mp_condition_notify(mp_condition *c, int n)
{
    if (!ok(c) || n < 0)
        return MP_EINVAL;
    if (!mp__rmutex_held(mutex_of(c)))
        return MP_EPERM;
    int k = 0;
    while (k < n && c->total > c->wakeup) {
        c->wakeup++;
        k++;
    }
    if (k > 0) {
        __atomic_add_fetch(&c->futex, 1, __ATOMIC_RELEASE);
        mp__futex_wake(&c->futex, k);
    }
    return 0;
}

int mp_condition_notify_all(mp_condition *c)
{
    if (!ok(c))
        return MP_EINVAL;
    if (!mp__rmutex_held(mutex_of(c)))
        return MP_EPERM;
    if (c->total > c->wakeup) {
        c->wakeup = c->woken = c->total;
        c->bcast++;
        __atomic_add_fetch(&c->futex, 1, __ATOMIC_RELEASE);
        mp__futex_wake(&c->futex, INT_MAX);
    }
    return 0;
}

void mp_condition_free(mp_condition *c)
{
    /* Its own lock, when it has one, is freed with it. */
    if (ok(c) && mp__sync_may_free(&c->own.m))
        mp__sync_free(c, &c->magic, c->flags);
}
