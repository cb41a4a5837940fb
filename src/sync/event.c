/* event.c - Event: one futex word holding the flag (bit 0) and a
   generation bumped by every set, so that a waiter woken by a set returns
   1 even if the flag was cleared again before it ran. */
#include "sync_internal.h"

#include <limits.h>
#include <math.h>

/* mp_event - flag and generation in one futex word. */
struct mp_event {
    uint32_t word;    /* futex: generation << 1 | flag */
    uint32_t waiters; /* threads sleeping (or about to) in wait */
    uint32_t magic;
    uint32_t flags;
};

static int ok(const mp_event *e)
{
    return e != NULL && e->magic == MP__EVENT_MAGIC;
}

static void format(mp_event *e, uint32_t flags)
{
    e->word = 0;
    e->waiters = 0;
    e->flags = flags;
    __atomic_store_n(&e->magic, MP__EVENT_MAGIC, __ATOMIC_RELEASE);
}

int mp_event_new(mp_event **out)
{
    if (out == NULL)
        return MP_EINVAL;
    int err = 0;
    mp_event *e = mp__sync_new(sizeof *e, &err);
    if (e == NULL)
        return err;
    format(e, 0);
    *out = e;
    return 0;
}

size_t mp_event_size(void)
{
    return sizeof(mp_event);
}

int mp_event_init_at(mp_event **out, void *mem, size_t size)
{
    if (out == NULL || mp__sync_place(mem, size, sizeof(mp_event)) != 0)
        return MP_EINVAL;
    format(mem, MP__OBJ_PLACED);
    *out = mem;
    return 0;
}

int mp_event_set(mp_event *e)
{
    if (!ok(e))
        return MP_EINVAL;
    uint32_t v = __atomic_load_n(&e->word, __ATOMIC_RELAXED);
    do {
        if (v & 1)
            return 0;
    } while (!__atomic_compare_exchange_n(&e->word, &v, (v + 2) | 1, 1,
                                          __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    MP__SYNC_HOOK(MP__SYNC_EVENT_SET);
    if (__atomic_load_n(&e->waiters, __ATOMIC_SEQ_CST) != 0)
        mp__futex_wake(&e->word, INT_MAX);
    return 0;
}

int mp_event_clear(mp_event *e)
{
    if (!ok(e))
        return MP_EINVAL;
    __atomic_and_fetch(&e->word, ~1u, __ATOMIC_SEQ_CST);
    return 0;
}

int mp_event_is_set(const mp_event *e)
{
    if (!ok(e))
        return MP_EINVAL;
    return (int)(__atomic_load_n(&e->word, __ATOMIC_ACQUIRE) & 1);
}

int mp_event_wait(mp_event *e, double timeout)
{
    if (!ok(e) || isnan(timeout))
        return MP_EINVAL;
    uint32_t v = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
    if (v & 1)
        return 1;
    if (timeout == 0)
        return 0;
    uint64_t dl;
    mp__deadline(timeout, &dl);
    __atomic_add_fetch(&e->waiters, 1, __ATOMIC_SEQ_CST);
    int r = 0;
    for (;;) {
        uint32_t now = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
        /* Set now, or set (and maybe cleared) since we began. */
        if ((now & 1) || (now >> 1) != (v >> 1)) {
            r = 1;
            break;
        }
        /* Naps: a setter killed between its store and its wake-up leaves
           the flag set for us to find. */
        if (mp__futex_wait(&e->word, now, mp__nap_until(dl)) == MP_ETIMEDOUT &&
            mp__now_ns() >= dl) {
            now = __atomic_load_n(&e->word, __ATOMIC_ACQUIRE);
            r = (now & 1) || (now >> 1) != (v >> 1);
            break;
        }
    }
    __atomic_sub_fetch(&e->waiters, 1, __ATOMIC_RELAXED);
    return r;
}

void mp_event_free(mp_event *e)
{
    if (ok(e))
        mp__sync_free(e, &e->magic, e->flags);
}
