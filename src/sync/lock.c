/* lock.c - Lock and RLock: robust mutexes owned by a thread; the next
   acquirer after a holder's death gets MP_EOWNERDEAD. */
#include "sync_internal.h"

#include <math.h>

static int lock_ok(const mp_lock *l)
{
    return l != NULL && MP__L_MAGIC(l) == MP__LOCK_MAGIC;
}

static int rlock_ok(const mp_rlock *l)
{
    return l != NULL && MP__L_MAGIC(l) == MP__RLOCK_MAGIC;
}

/* Format a mutex-based object; the magic is stored last. */
static void format(mp__rmutex *m, uint32_t magic, uint32_t flags)
{
    mp__rmutex_init(m);
    m->user[1] = flags;
    m->user[2] = 0;
    __atomic_store_n(&m->user[0], magic, __ATOMIC_RELEASE);
}

/* Take m, waiting until timeout; the fast path reads no clock. */
static int take(mp__rmutex *m, double timeout)
{
    if (isnan(timeout))
        return MP_EINVAL;
    if (__builtin_expect(mp__rmutex_trylock(m) == 0, 1))
        return 0;
    uint64_t dl;
    mp__deadline(timeout, &dl);
    return mp__rmutex_lock_slow(m, dl);
}

/* Free a mutex-based object, unless another thread holds it (then it is
   leaked: see mp__sync_may_free). */
static void drop(mp__rmutex *m)
{
    if (mp__sync_may_free(m))
        mp__sync_free(m, &m->user[0], m->user[1]);
}

int mp_lock_new(mp_lock **out)
{
    if (out == NULL)
        return MP_EINVAL;
    int err = 0;
    mp_lock *l = mp__sync_new(sizeof *l, &err);
    if (l == NULL)
        return err;
    format(&l->m, MP__LOCK_MAGIC, 0);
    *out = l;
    return 0;
}

size_t mp_lock_size(void)
{
    return sizeof(mp_lock);
}

int mp_lock_init_at(mp_lock **out, void *mem, size_t size)
{
    int r = mp__sync_place(mem, size, sizeof(mp_lock));
    if (r != 0 || out == NULL)
        return MP_EINVAL;
    mp_lock *l = mem;
    format(&l->m, MP__LOCK_MAGIC, MP__OBJ_PLACED);
    *out = l;
    return 0;
}

int mp_lock_acquire(mp_lock *l, double timeout)
{
    if (!lock_ok(l))
        return MP_EINVAL;
    return take(&l->m, timeout);
}

int mp_lock_release(mp_lock *l)
{
    if (!lock_ok(l))
        return MP_EINVAL;
    return mp__rmutex_unlock(&l->m);
}

int mp_lock_locked(const mp_lock *l)
{
    if (!lock_ok(l))
        return MP_EINVAL;
    return (__atomic_load_n(&l->m.word, __ATOMIC_RELAXED) &
            MP__FUTEX_TID_MASK) != 0;
}

void mp_lock_free(mp_lock *l)
{
    if (lock_ok(l))
        drop(&l->m);
}

int mp_rlock_new(mp_rlock **out)
{
    if (out == NULL)
        return MP_EINVAL;
    int err = 0;
    mp_rlock *l = mp__sync_new(sizeof *l, &err);
    if (l == NULL)
        return err;
    format(&l->m, MP__RLOCK_MAGIC, 0);
    *out = l;
    return 0;
}

size_t mp_rlock_size(void)
{
    return sizeof(mp_rlock);
}

int mp_rlock_init_at(mp_rlock **out, void *mem, size_t size)
{
    int r = mp__sync_place(mem, size, sizeof(mp_rlock));
    if (r != 0 || out == NULL)
        return MP_EINVAL;
    mp_rlock *l = mem;
    format(&l->m, MP__RLOCK_MAGIC, MP__OBJ_PLACED);
    *out = l;
    return 0;
}

int mp_rlock_acquire(mp_rlock *l, double timeout)
{
    if (!rlock_ok(l))
        return MP_EINVAL;
    if (mp__rmutex_held(&l->m)) {
        if (isnan(timeout))
            return MP_EINVAL;
        if (MP__L_DEPTH(l) == UINT32_MAX)
            return MP_EOVERFLOW;
        MP__L_DEPTH(l)++;
        return 0;
    }
    int r = take(&l->m, timeout);
    if (r == 0 || r == MP_EOWNERDEAD)
        MP__L_DEPTH(l) = 1; /* a dead holder's depth does not carry over */
    return r;
}

int mp_rlock_release(mp_rlock *l)
{
    if (!rlock_ok(l))
        return MP_EINVAL;
    if (!mp__rmutex_held(&l->m))
        return MP_EPERM;
    if (--MP__L_DEPTH(l) > 0)
        return 0;
    return mp__rmutex_unlock(&l->m);
}

void mp_rlock_free(mp_rlock *l)
{
    if (rlock_ok(l)) {
        /* Only the holder's own depth is ours to clear: another holder
           keeps releasing it as usual (and the lock is left alone). */
        if (mp__rmutex_held(&l->m))
            MP__L_DEPTH(l) = 0;
        drop(&l->m);
    }
}

uint32_t mp__rlock_release_all(mp_rlock *l)
{
    uint32_t depth = MP__L_DEPTH(l);
    MP__L_DEPTH(l) = 0;
    mp__rmutex_unlock(&l->m);
    return depth;
}

void mp__rlock_restore(mp_rlock *l, uint32_t depth)
{
    MP__L_DEPTH(l) = depth;
}
