/* semaphore.c - Semaphore and BoundedSemaphore: a futex word holding the
   value, and a count of sleepers so that release makes a system call only
   when someone sleeps. */
#include "sync_internal.h"

#include <limits.h>
#include <math.h>

/* mp_semaphore - the value is the futex word. */
struct mp_semaphore {
    uint32_t value;   /* futex: the semaphore's value */
    uint32_t waiters; /* threads sleeping (or about to) in acquire */
    uint32_t magic;
    uint32_t flags;
    uint32_t bound; /* 0: unbounded */
    uint32_t pad;
};

static int ok(const mp_semaphore *s)
{
    return s != NULL && s->magic == MP__SEM_MAGIC;
}

static int format(mp_semaphore *s, unsigned value, unsigned bound,
                  uint32_t flags)
{
    s->value = value;
    s->waiters = 0;
    s->flags = flags;
    s->bound = bound;
    s->pad = 0;
    __atomic_store_n(&s->magic, MP__SEM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

static int bad_values(unsigned value, unsigned bound)
{
    return value > INT_MAX || bound > INT_MAX || (bound && value > bound);
}

int mp_semaphore_new(mp_semaphore **out, unsigned value, unsigned bound)
{
    if (out == NULL || bad_values(value, bound))
        return MP_EINVAL;
    int err = 0;
    mp_semaphore *s = mp__sync_new(sizeof *s, &err);
    if (s == NULL)
        return err;
    format(s, value, bound, 0);
    *out = s;
    return 0;
}

size_t mp_semaphore_size(void)
{
    return sizeof(mp_semaphore);
}

int mp_semaphore_init_at(mp_semaphore **out, void *mem, size_t size,
                         unsigned value, unsigned bound)
{
    if (out == NULL || bad_values(value, bound) ||
        mp__sync_place(mem, size, sizeof(mp_semaphore)) != 0)
        return MP_EINVAL;
    format(mem, value, bound, MP__OBJ_PLACED);
    *out = mem;
    return 0;
}

/* One decrement if the value allows it: 1 done, 0 not. */
static int try_take(mp_semaphore *s)
{
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
    while (v > 0)
        if (__atomic_compare_exchange_n(&s->value, &v, v - 1, 1,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 1;
    return 0;
}

/* sem_spinner - whether spinning on an empty semaphore has paid lately,
   for this thread (spin.h). */
static __thread struct mp__spinner sem_spinner;

int mp_semaphore_acquire(mp_semaphore *s, double timeout)
{
    if (!ok(s) || isnan(timeout))
        return MP_EINVAL;
    if (try_take(s))
        return 0;
    if (timeout == 0)
        return MP_ETIMEDOUT;
    uint64_t dl;
    mp__deadline(timeout, &dl);
    if (mp__spin_worth(&sem_spinner)) {
        for (int i = 0; i < MP__SPIN_LIMIT; i++) {
            mp__spin_pause(i);
            if (__atomic_load_n(&s->value, __ATOMIC_RELAXED) && try_take(s)) {
                mp__spin_learn(&sem_spinner, 1);
                return 0;
            }
        }
        mp__spin_learn(&sem_spinner, 0);
    }
    /* Announce the sleep before looking again: a release that comes after
       the look sees the announcement and wakes us (both sides use
       sequentially consistent operations). */
    __atomic_add_fetch(&s->waiters, 1, __ATOMIC_SEQ_CST);
    int r;
    for (;;) {
        if (try_take(s)) {
            r = 0;
            break;
        }
        /* Naps: a releaser killed between its increment and its wake-up
           leaves a unit for us to find. */
        if (mp__futex_wait(&s->value, 0, mp__nap_until(dl)) == MP_ETIMEDOUT &&
            mp__now_ns() >= dl) {
            r = try_take(s) ? 0 : MP_ETIMEDOUT;
            break;
        }
    }
    __atomic_sub_fetch(&s->waiters, 1, __ATOMIC_RELAXED);
    return r;
}

int mp_semaphore_release(mp_semaphore *s)
{
    if (!ok(s))
        return MP_EINVAL;
    uint32_t v = __atomic_load_n(&s->value, __ATOMIC_RELAXED);
    do {
        if (v >= INT_MAX || (s->bound && v >= s->bound))
            return MP_EOVERFLOW;
    } while (!__atomic_compare_exchange_n(&s->value, &v, v + 1, 1,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    MP__SYNC_HOOK(MP__SYNC_SEM_RELEASED);
    if (__atomic_load_n(&s->waiters, __ATOMIC_SEQ_CST) != 0)
        mp__futex_wake(&s->value, 1);
    return 0;
}

int mp_semaphore_value(const mp_semaphore *s)
{
    if (!ok(s))
        return MP_EINVAL;
    return (int)__atomic_load_n(&s->value, __ATOMIC_RELAXED);
}

void mp_semaphore_free(mp_semaphore *s)
{
    if (ok(s))
        mp__sync_free(s, &s->magic, s->flags);
}
