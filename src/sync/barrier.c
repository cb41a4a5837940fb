/* barrier.c - Barrier: parties arrive, the last runs the action and
   releases the cycle. Waiters hold robust arrival slots, so that one who
   dies while waiting breaks the barrier instead of wedging the others. */
#include "sync_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* Slot outcomes (user[1]); user[0] is the slot's cycle + 1. */
#define OUT_PENDING  0u
#define OUT_RELEASED 1u
#define OUT_BROKEN   2u

/* mp_barrier - the fixed part, then nslots robust arrival slots. */
struct mp_barrier {
    uint32_t magic;
    uint32_t flags;
    uint32_t futex; /* bumped when a cycle ends, breaks or resets */
    uint32_t parties;
    mp__rmutex lock; /* guards everything below */
    uint32_t count;  /* arrivals in the current cycle */
    uint32_t cycle;  /* the current cycle */
    uint32_t broken; /* the current cycle is broken */
    uint32_t nslots;
    uint32_t has_action;
    uint32_t pad;
    uint64_t released;   /* bit c % 64: cycle c ended released, not broken
                            (for waiters without a slot) */
    double timeout;      /* default timeout; <= 0: none */
    uint64_t action_arg; /* passed to the action as is */
    mp__fnref action;    /* resolved in whichever process runs it */
    mp__rmutex slots[];  /* held by waiters while they wait */
};

static int ok(const mp_barrier *b)
{
    return b != NULL && b->magic == MP__BAR_MAGIC;
}

static uint32_t slots_for(unsigned parties)
{
    return parties < 1 ? 2 : 2 * parties;
}

size_t mp_barrier_size(unsigned parties)
{
    if (parties == 0 || parties > INT_MAX / 2)
        return 0;
    return sizeof(mp_barrier) + slots_for(parties) * sizeof(mp__rmutex);
}

static int format(mp_barrier *b, unsigned parties, const mp_barrier_opts *opts,
                  uint32_t flags)
{
    mp_barrier_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (isnan(o.timeout))
        return MP_EINVAL;
    memset(b, 0, sizeof *b);
    if (o.action != NULL) {
        int r = mp__fnref_make((void *)o.action, &b->action);
        if (r != 0)
            return r;
        b->has_action = 1;
    }
    b->action_arg = (uint64_t)(uintptr_t)o.action_arg;
    b->timeout = o.timeout;
    b->parties = parties;
    b->flags = flags;
    b->nslots = slots_for(parties);
    mp__rmutex_init(&b->lock);
    for (uint32_t i = 0; i < b->nslots; i++) {
        mp__rmutex_init(&b->slots[i]);
        b->slots[i].user[0] = b->slots[i].user[1] = 0;
    }
    __atomic_store_n(&b->magic, MP__BAR_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int mp_barrier_new(mp_barrier **out, unsigned parties,
                   const mp_barrier_opts *opts)
{
    size_t size = mp_barrier_size(parties);
    if (out == NULL || size == 0)
        return MP_EINVAL;
    int err = 0;
    mp_barrier *b = mp__sync_new(size, &err);
    if (b == NULL)
        return err;
    if ((err = format(b, parties, opts, 0)) != 0) {
        mp_shared_free(b);
        return err;
    }
    *out = b;
    return 0;
}

int mp_barrier_init_at(mp_barrier **out, void *mem, size_t size,
                       unsigned parties, const mp_barrier_opts *opts)
{
    size_t need = mp_barrier_size(parties);
    if (out == NULL || need == 0 || mp__sync_place(mem, size, need) != 0)
        return MP_EINVAL;
    int r = format(mem, parties, opts, MP__OBJ_PLACED);
    if (r == 0)
        *out = mem;
    return r;
}

/* Take the internal lock; a holder that died leaves the state suspect,
   so the barrier breaks. Returns 0, or MP_EDEADLK when the caller holds
   it already: it is the barrier's own action calling back. */
static int lock(mp_barrier *b)
{
    int r = mp__rmutex_lock(&b->lock, MP__NO_DEADLINE);
    if (r == MP_EDEADLK)
        return r;
    if (r == MP_EOWNERDEAD) {
        b->broken = 1;
        mp__wake_all(&b->futex);
    }
    return 0;
}

static void unlock(mp_barrier *b)
{
    mp__rmutex_unlock(&b->lock);
}

/* Wake everyone; with the lock held. */
static void wake_all(mp_barrier *b)
{
    mp__wake_all(&b->futex);
}

/* Give the waiters of the current cycle their outcome. */
static void settle(mp_barrier *b, uint32_t outcome)
{
    for (uint32_t i = 0; i < b->nslots; i++)
        if (b->slots[i].user[0] == b->cycle + 1 &&
            b->slots[i].user[1] == OUT_PENDING)
            b->slots[i].user[1] = outcome;
}

static void break_locked(mp_barrier *b)
{
    b->broken = 1;
    wake_all(b);
}

/* A free slot for a waiter of the current cycle, or -1 (then the waiter
   goes without: only its death would go unnoticed). Taking over the slot
   of a participant of this very cycle that died sets *died: that death
   must break the barrier, not vanish with the slot's stamp. */
static int take_slot(mp_barrier *b, uint32_t start, int *died)
{
    for (uint32_t k = 0; k < b->nslots; k++) {
        uint32_t i = (start + k) % b->nslots;
        int r = mp__rmutex_lock(&b->slots[i], 0);
        if (r == 0 || r == MP_EOWNERDEAD) {
            if (r == MP_EOWNERDEAD && b->slots[i].user[0] == b->cycle + 1)
                *died = 1;
            b->slots[i].user[0] = b->cycle + 1;
            b->slots[i].user[1] = OUT_PENDING;
            return (int)i;
        }
    }
    return -1;
}

/* Whether a participant of the current cycle died while waiting. */
static int someone_died(mp_barrier *b)
{
    for (uint32_t i = 0; i < b->nslots; i++) {
        uint32_t w = __atomic_load_n(&b->slots[i].word, __ATOMIC_ACQUIRE);
        if ((w & MP__FUTEX_OWNER_DIED) && !(w & MP__FUTEX_TID_MASK) &&
            b->slots[i].user[0] == b->cycle + 1)
            return 1;
    }
    return 0;
}

/* The last arrival: run the action, release the cycle. Lock held. */
static int complete(mp_barrier *b, int idx)
{
    if (b->has_action) {
        void *addr;
        int r = mp__fnref_resolve(&b->action, &addr);
        int (*fn)(void *);
        memcpy(&fn, &addr, sizeof fn);
        if (r != 0 || fn((void *)(uintptr_t)b->action_arg) != 0) {
            break_locked(b);
            return MP_EBROKEN;
        }
    }
    settle(b, OUT_RELEASED);
    b->released |= 1ull << (b->cycle % 64);
    b->count = 0;
    b->cycle++;
    wake_all(b);
    return idx;
}

/* Sleep until the cycle cyc of waiter idx (holding slot, or -1) ends,
   breaks or times out at dl; its result. Lock held on entry and exit. */
static int await_cycle(mp_barrier *b, int slot, int idx, uint32_t cyc,
                       uint64_t dl)
{
    for (;;) {
        uint32_t fw = __atomic_load_n(&b->futex, __ATOMIC_RELAXED);
        unlock(b);
        mp__futex_wait(&b->futex, fw, mp__nap_until(dl));
        (void)lock(b); /* let go just above: cannot be ours */
        uint32_t out = slot >= 0 ? b->slots[slot].user[1] : OUT_PENDING;
        if (out != OUT_PENDING)
            return out == OUT_RELEASED ? idx : MP_EBROKEN;
        if (slot < 0 && b->cycle != cyc) /* no slot: the cycle's record */
            return (b->released >> (cyc % 64)) & 1 ? idx : MP_EBROKEN;
        if (b->broken)
            return MP_EBROKEN;
        if (dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl)) {
            break_locked(b); /* like Python: a time-out breaks it */
            return MP_ETIMEDOUT;
        }
        if (someone_died(b)) {
            break_locked(b);
            return MP_EBROKEN;
        }
    }
}

int mp_barrier_wait_default(mp_barrier *b)
{
    if (!ok(b))
        return MP_EINVAL;
    return mp_barrier_wait(b, b->timeout > 0 ? b->timeout : MP_FOREVER);
}

int mp_barrier_wait(mp_barrier *b, double timeout)
{
    if (!ok(b) || isnan(timeout))
        return MP_EINVAL;
    uint64_t dl;
    mp__deadline(timeout, &dl);
    if (lock(b) != 0)
        return MP_EDEADLK;
    if (b->broken) {
        unlock(b);
        return MP_EBROKEN;
    }
    int idx = (int)b->count++;
    if (b->count == b->parties) {
        int r = complete(b, idx);
        unlock(b);
        return r;
    }
    uint32_t cyc = b->cycle;
    int died = 0;
    int slot = take_slot(b, (uint32_t)idx, &died);
    int res = died ? MP_EBROKEN : await_cycle(b, slot, idx, cyc, dl);
    if (died)
        break_locked(b);
    if (slot >= 0) {
        b->slots[slot].user[0] = 0;
        mp__rmutex_unlock(&b->slots[slot]);
    }
    unlock(b);
    return res;
}

int mp_barrier_abort(mp_barrier *b)
{
    if (!ok(b))
        return MP_EINVAL;
    if (lock(b) != 0)
        return MP_EDEADLK;
    break_locked(b);
    unlock(b);
    return 0;
}

int mp_barrier_reset(mp_barrier *b)
{
    if (!ok(b))
        return MP_EINVAL;
    if (lock(b) != 0)
        return MP_EDEADLK;
    /* Waiters of the cycle being abandoned learn it through their slots;
       newcomers start a fresh cycle at once. */
    settle(b, OUT_BROKEN);
    b->released &= ~(1ull << (b->cycle % 64));
    b->count = 0;
    b->broken = 0;
    b->cycle++;
    wake_all(b);
    unlock(b);
    return 0;
}

int mp_barrier_n_waiting(const mp_barrier *b)
{
    if (!ok(b))
        return MP_EINVAL;
    return b->broken ? 0 : (int)__atomic_load_n(&b->count, __ATOMIC_RELAXED);
}

int mp_barrier_broken(const mp_barrier *b)
{
    if (!ok(b))
        return MP_EINVAL;
    return (int)__atomic_load_n(&b->broken, __ATOMIC_RELAXED);
}

int mp_barrier_parties(const mp_barrier *b)
{
    return ok(b) ? (int)b->parties : MP_EINVAL;
}

void mp_barrier_free(mp_barrier *b)
{
    if (!ok(b))
        return;
    /* Waiters hold slots; one still in a wait keeps the memory alive. */
    if (!mp__sync_may_free(&b->lock))
        return;
    for (uint32_t i = 0; i < b->nslots; i++)
        if (!mp__sync_may_free(&b->slots[i]))
            return;
    mp__sync_free(b, &b->magic, b->flags);
}
