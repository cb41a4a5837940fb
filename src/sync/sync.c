/* sync.c - allocation, placement and release shared by the
   synchronization primitives. */
#include "sync_internal.h"

void (*mp__sync_fault_hook)(int step);

void *mp__sync_new(size_t size, int *err)
{
    int r = mp__require_init();
    if (r != 0) {
        *err = r;
        return NULL;
    }
    /* A cache line of its own: no false sharing between objects. */
    void *p = mp__arena_alloc(size, 64);
    if (p == NULL)
        *err = MP_ENOMEM;
    return p;
}

int mp__sync_place(const void *mem, size_t size, size_t need)
{
    if (mem == NULL || size < need || ((uintptr_t)mem & 7) != 0)
        return MP_EINVAL;
    return 0;
}

int mp__sync_may_free(mp__rmutex *m)
{
    if (mp__rmutex_held(m)) {
        mp__rmutex_unlock(m);
        return 1;
    }
    return !(__atomic_load_n(&m->word, __ATOMIC_ACQUIRE) & MP__FUTEX_TID_MASK);
}

void mp__sync_free(void *obj, uint32_t *magic, uint32_t flags)
{
    __atomic_store_n(magic, MP__DEAD_MAGIC, __ATOMIC_RELEASE);
    if (!(flags & MP__OBJ_PLACED))
        mp_shared_free(obj);
}
