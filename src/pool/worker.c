/* worker.c - a pool worker's life: claim chunks of posted jobs, run their
   items, leave a trace of every step for the parent, exit when told. */
#include "pool_internal.h"

#include "../core/wake.h"
#include "../platform/platform.h"

#include <stdlib.h>
#include <string.h>

void (*mp__pool_fault_hook)(int step);

/* bump - where a byte-string map's worker packs its results: arena
   blocks it fills one after the other, so that a million small results
   cost a few hundred allocations, not a million. */
struct bump {
    char *cur;   /* next free byte of the current block */
    size_t left; /* bytes left in it */
};

/* BUMP_BLOCK - the least a bump block holds. */
#define BUMP_BLOCK ((size_t)64 << 10)

/* mp_result - a task's result, as the worker collects it: an arena block
   of its own (apply), or a place in a bump block (byte-string map). */
struct mp_result {
    void *block; /* the result's bytes (NULL: empty) */
    size_t len;
    struct bump *bump; /* byte-string map: where to pack; NULL: apply */
    int new_block;     /* block starts a bump block (the parent frees it) */
};

int mp_result_set(mp_result *res, const void *data, size_t len)
{
    if (res == NULL || (data == NULL && len > 0))
        return MP_EINVAL;
    void *b = NULL;
    struct bump *bp = res->bump;
    if (bp != NULL) {
        /* A second set of the same item wastes its first place: rare. */
        if (len > bp->left) {
            size_t sz = len > BUMP_BLOCK ? len : BUMP_BLOCK;
            char *blk = mp__arena_alloc_dirty(sz, 16); /* filled by us */
            if (blk == NULL)
                return MP_ENOMEM;
            bp->cur = blk;
            bp->left = sz;
            res->new_block = 1;
        }
        b = bp->cur;
        if (len > 0)
            memcpy(b, data, len);
        bp->cur += len;
        bp->left -= len;
    } else {
        if (len > 0) {
            b = mp__arena_alloc(len, 16);
            if (b == NULL)
                return MP_ENOMEM;
            memcpy(b, data, len);
        }
        if (res->block != NULL)
            mp_shared_free(res->block);
    }
    res->block = b;
    res->len = len;
    return 0;
}

/* The task functions of this worker, resolved on first use. */
static void *resolve(struct mp__board *b, void **cache, uint32_t fn)
{
    if (cache[fn] == NULL && mp__fnref_resolve(&b->fns[fn], &cache[fn]) != 0)
        return NULL;
    return cache[fn];
}

/* Wake the parent if it sleeps (after a sequentially consistent
   store of what it waits for). */
static void wake_parent(struct mp__board *b)
{
    mp__wake_sleepers(&b->done_seq, &b->done_sleep);
}

/* Claim a chunk: intent in the slot, then the cursor, then the chunk.
   Returns 1 with *jp, *cp; 0 when there is nothing to claim, with *seen
   the head it looked at (to sleep on). */
static int claim(struct mp__board *b, uint32_t me, struct mp__job **jp,
                 uint64_t *cp, uint64_t *seen)
{
    struct mp__wslot *s = &b->slots[me];
    uint64_t head = __atomic_load_n(&b->head, __ATOMIC_SEQ_CST);
    *seen = head;
    for (uint64_t k = __atomic_load_n(&b->open, __ATOMIC_SEQ_CST); k < head;
         k++) {
        /* Announce the job before touching it; the parent frees only
           jobs below its tail that nobody announced (both sides
           sequentially consistent). */
        __atomic_store_n(&s->scan, k, __ATOMIC_SEQ_CST);
        uint64_t tail = __atomic_load_n(&b->tail, __ATOMIC_SEQ_CST);
        if (tail > k) {
            k = tail - 1;
            continue;
        }
        struct mp__job *j = mp__arena_ptr(
            __atomic_load_n(&b->ring[k % MP__POOL_RING], __ATOMIC_ACQUIRE));
        uint64_t c = __atomic_load_n(&j->next, __ATOMIC_SEQ_CST);
        while (c < j->nchunks &&
               !__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
            /* With task timeouts the claim is timed from its intent: a
               worker stopped before it reaches its first item is not
               invisible to the timeout (its chunk is then run again),
               and no stale stamp is ever read with a fresh intent. */
            if (b->timeout > 0)
                __atomic_store_n(&s->item_start, mp__now_ns(),
                                 __ATOMIC_RELEASE);
            __atomic_store_n(&s->job, mp__arena_off(j), __ATOMIC_RELEASE);
            __atomic_store_n(&s->chunk, c, __ATOMIC_RELAXED);
            __atomic_store_n(&s->item, UINT64_MAX, __ATOMIC_SEQ_CST);
            if (!__atomic_compare_exchange_n(
                    &j->next, &c, c + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                continue; /* c now holds the new cursor */
            uint32_t pend = MP__CH_PENDING;
            if (__atomic_compare_exchange_n(
                    &j->chunks[c].state, &pend, MP__CH_RUNNING + me, 0,
                    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
                *jp = j;
                *cp = c;
                MP__FAULT_HOOK(mp__pool_fault_hook, MP__PW_CLAIMED);
                return 1;
            }
            /* A cursor put back after a death walks again over chunks
               run meanwhile. Whoever walks it to the end checks for
               completion: a worker that finished the last chunk while
               the cursor was still low did not (see finish). */
            if (c + 1 == j->nchunks && mp__job_done(j))
                wake_parent(b);
            c = __atomic_load_n(&j->next, __ATOMIC_SEQ_CST);
        }
        __atomic_store_n(&s->job, 0, __ATOMIC_RELAXED);
        /* Fully handed out: move the open mark past it. The parent may put
           a chunk back meanwhile (lowering next, then open): look at next
           once more and take the mark back if so (both sequentially
           consistent: one of us sees the other). */
        uint64_t kk = k;
        if (__atomic_compare_exchange_n(&b->open, &kk, k + 1, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_RELAXED) &&
            __atomic_load_n(&j->next, __ATOMIC_SEQ_CST) < j->nchunks &&
            !__atomic_load_n(&j->cancelled, __ATOMIC_RELAXED)) {
            uint64_t cur = k + 1;
            while (cur > k && !__atomic_compare_exchange_n(&b->open, &cur, k, 0,
                                                           __ATOMIC_SEQ_CST,
                                                           __ATOMIC_SEQ_CST))
                ;
            k--; /* look at it again */
        }
    }
    __atomic_store_n(&s->scan, UINT64_MAX, __ATOMIC_SEQ_CST);
    return 0;
}

/* Fail the not-yet-run items of chunk c with MP_ENOENT: its function
   cannot be found in this process (a worker crash would be retried). */
static void fail_unresolved(struct mp__job *j, uint64_t c)
{
    uint64_t lo, hi;
    mp__chunk_bounds(j, c, &lo, &hi);
    int *st = j->status_off ? (int *)mp__arena_ptr(j->status_off) : NULL;
    for (uint64_t i = lo + j->chunks[c].resume; i < hi; i++) {
        if (st != NULL)
            st[i] = MP_ENOENT;
        mp__job_fail(j, i, MP__ERR_TASK);
    }
    if (j->kind == MP__JOB_APPLY)
        j->apply_ret = MP_ENOENT;
}

/* A task that forked, and whose fork child returned from it too: the
   child is not this worker (it holds no life lock, the parent cannot see
   it) and must not go on claiming and writing as one. It leaves at once,
   before it touches the job. The pid is cached: one load. */
static void not_a_fork_of_mine(const struct mp__wslot *s)
{
    if (__builtin_expect((uint32_t)mp__getpid() !=
                             __atomic_load_n(&s->pid, __ATOMIC_RELAXED),
                         0))
        mp__exit_now(0);
}

/* Run the items of chunk c of a map job. */
static void run_map(struct mp__board *b, struct mp__wslot *s, struct mp__job *j,
                    uint64_t c, void *fp)
{
    /* One resolved address, three shapes (the job says which). */
    mp_map_fn fn = NULL;
    mp_map_ctx_fn cfn = NULL;
    mp_range_fn rfn = NULL;
    mp_bytes_fn bfn = NULL;
    if (j->mode == MP__MAP_BYTES)
        memcpy(&bfn, &fp, sizeof bfn);
    else if (j->mode == MP__MAP_RANGE)
        memcpy(&rfn, &fp, sizeof rfn);
    else if (j->mode == MP__MAP_CTX)
        memcpy(&cfn, &fp, sizeof cfn);
    else
        memcpy(&fn, &fp, sizeof fn);
    uint64_t lo, hi;
    mp__chunk_bounds(j, c, &lo, &hi);
    const char *in = mp__arena_ptr(j->in_off);
    char *out = j->out_off ? (char *)mp__arena_ptr(j->out_off) : NULL;
    int *st = j->status_off ? (int *)mp__arena_ptr(j->status_off) : NULL;
    int timed = b->timeout > 0;
    const void *ctx = (const void *)(uintptr_t)j->ctx;
    struct bump bp = {NULL, 0}; /* this chunk's results (byte strings) */
    for (uint64_t i = lo + j->chunks[c].resume; i < hi; i++) {
        if (timed)
            __atomic_store_n(&s->item_start, mp__now_ns(), __ATOMIC_RELAXED);
        __atomic_store_n(&s->item, i, __ATOMIC_RELEASE);
        void *o = out ? out + i * j->out_size : NULL;
        int r;
        if (bfn != NULL) {
            /* Its bytes where they are (the arena); its result in a block
               of its own, named in the results table. */
            uint64_t pair[2];
            memcpy(pair, in + i * 16, sizeof pair);
            struct mp_result res = {NULL, 0, &bp, 0};
            r = bfn(ctx, (const void *)(uintptr_t)pair[0], (size_t)pair[1],
                    &res);
            /* The top bit of the length: this result starts a block the
               parent frees (written before the item is counted done, so
               a death after it leaks nothing). */
            uint64_t rp[2] = {(uint64_t)(uintptr_t)res.block,
                              res.len | (uint64_t)res.new_block << 63};
            memcpy(o, rp, sizeof rp);
        } else if (rfn != NULL)
            r = rfn(ctx, (size_t)(j->start + i), o);
        else if (cfn != NULL)
            r = cfn(ctx, in + i * j->in_size, o);
        else
            r = fn(in + i * j->in_size, o);
        not_a_fork_of_mine(s);
        if (__builtin_expect(r != 0, 0)) {
            if (st != NULL)
                st[i] = r;
            mp__job_fail(j, i, MP__ERR_TASK);
        }
    }
    __atomic_store_n(&s->item, hi, __ATOMIC_RELEASE);
}

/* Run an apply task. */
static void run_apply(struct mp__board *b, struct mp__wslot *s,
                      struct mp__job *j, void *fp)
{
    struct mp_result res = {NULL, 0, NULL, 0};
    if (b->timeout > 0)
        __atomic_store_n(&s->item_start, mp__now_ns(), __ATOMIC_RELAXED);
    __atomic_store_n(&s->item, 0, __ATOMIC_RELEASE);
    const void *arg = j->in_off ? mp__arena_ptr(j->in_off) : NULL;
    int r;
    if (j->mode == MP__MAP_CTX) {
        mp_apply_ctx_fn fn;
        memcpy(&fn, &fp, sizeof fn);
        r = fn((const void *)(uintptr_t)j->ctx, arg, (size_t)j->in_size, &res);
    } else {
        mp_apply_fn fn;
        memcpy(&fn, &fp, sizeof fn);
        r = fn(arg, (size_t)j->in_size, &res);
    }
    not_a_fork_of_mine(s);
    j->apply_ret = r;
    j->res_off = res.block ? mp__arena_off(res.block) : 0;
    j->res_len = res.len;
    if (r != 0)
        mp__job_fail(j, 0, MP__ERR_TASK);
    __atomic_store_n(&s->item, 1, __ATOMIC_RELEASE);
}

/* Mark chunk c done. Once the cursor is exhausted, whoever finds every
   chunk DONE wakes the parent: of two workers finishing the last two
   chunks at once, at least one sees both (sequentially consistent); a
   worker dying in between wakes the parent by its death. A cursor still
   low (put back after a death) leaves the check to the claim that walks
   it to the end. */
static void finish(struct mp__board *b, struct mp__wslot *s, struct mp__job *j,
                   uint64_t c)
{
    __atomic_store_n(&j->chunks[c].state, MP__CH_DONE, __ATOMIC_SEQ_CST);
    __atomic_store_n(&s->job, 0, __ATOMIC_RELEASE); /* nothing held */
    __atomic_store_n(&s->item, UINT64_MAX, __ATOMIC_RELEASE);
    if (__atomic_load_n(&j->next, __ATOMIC_SEQ_CST) >= j->nchunks &&
        mp__job_done(j))
        wake_parent(b);
}

/* idle_spinner - whether spinning for work has paid lately (spin.h). */
static __thread struct mp__spinner idle_spinner;

/* Nothing to claim since head seen: spin a little while that has paid
   lately, then sleep until work is posted (or the pool closes or
   stops). */
static void idle(struct mp__board *b, uint64_t seen)
{
    if (mp__spin_worth(&idle_spinner)) {
        uint64_t until = mp__now_ns() + 20000;
        for (int i = 0; mp__now_ns() < until; i++) {
            mp__spin_pause(i);
            if (__atomic_load_n(&b->head, __ATOMIC_ACQUIRE) != seen ||
                __atomic_load_n(&b->closing, __ATOMIC_ACQUIRE)) {
                mp__spin_learn(&idle_spinner, 1);
                return;
            }
        }
        mp__spin_learn(&idle_spinner, 0);
    }
    uint32_t seq = __atomic_load_n(&b->work_seq, __ATOMIC_ACQUIRE);
    __atomic_store_n(&b->work_sleep, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&b->head, __ATOMIC_SEQ_CST) != seen ||
        __atomic_load_n(&b->closing, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&b->stop, __ATOMIC_SEQ_CST))
        return;
    /* Chunks put back after a death are announced by a bump of work_seq
       after the head was read: the futex sees the bump. */
    mp__futex_wait(&b->work_seq, seq, mp__nap_until(MP__NO_DEADLINE));
}

int mp__pool_worker(void *arg)
{
    struct mp__worker_arg *wa = arg;
    struct mp__board *b = mp__arena_ptr(wa->board_off);
    uint32_t me = wa->index;
    struct mp__wslot *s = &b->slots[me];
    /* Held all our life: the kernel tells the parent when we end. */
    mp__rmutex_lock(&s->life, MP__NO_DEADLINE);
    s->tasks = 0;
    s->job = 0;
    s->item = UINT64_MAX;
    __atomic_store_n(&s->pid, (uint32_t)mp__getpid(), __ATOMIC_SEQ_CST);
    /* From now on our death wakes the parent; tell it to watch us. */
    wake_parent(b);
    void **cache = calloc(MP__POOL_FNS, sizeof *cache);
    if (cache == NULL)
        return 1;
    if (b->init_fn >= 0) {
        int (*init)(void *) = NULL;
        void *p = resolve(b, cache, (uint32_t)b->init_fn);
        memcpy(&init, &p, sizeof init);
        void *iarg = (void *)(uintptr_t)b->initarg;
        if (b->initarg_size)
            iarg = mp__arena_ptr(b->initarg);
        if (init == NULL || init(iarg) != 0) {
            __atomic_store_n(&s->state, MP__W_INIT_FAILED, __ATOMIC_RELEASE);
            return 1;
        }
    }
    __atomic_store_n(&s->state, MP__W_READY, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&b->stop, __ATOMIC_ACQUIRE)) {
        struct mp__job *j;
        uint64_t c, seen;
        if (!claim(b, me, &j, &c, &seen)) {
            if (__atomic_load_n(&b->closing, __ATOMIC_ACQUIRE))
                break;
            idle(b, seen);
            continue;
        }
        void *fp = resolve(b, cache, j->fn);
        if (fp == NULL) {
            fail_unresolved(j, c);
        } else if (j->kind == MP__JOB_MAP) {
            run_map(b, s, j, c, fp);
        } else {
            run_apply(b, s, j, fp);
        }
        finish(b, s, j, c);
        __atomic_store_n(&s->scan, UINT64_MAX, __ATOMIC_SEQ_CST);
        s->tasks++;
        if (b->max_tasks && s->tasks >= b->max_tasks) {
            __atomic_store_n(&s->state, MP__W_RETIRING, __ATOMIC_RELEASE);
            break;
        }
    }
    free(cache);
    return 0; /* exit holding life: the parent is woken */
}
