/* pool.c - the pool's parent side: workers started and replaced, jobs
   posted and collected, dead workers' items failed, task timeouts
   enforced, all from the threads that call into the pool. */
#include "pool_internal.h"

#include "../core/wake.h"
#include "../platform/platform.h"

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* After this many workers in a row die before doing any work (crashing
   initializer, something killing them), for at least STORM_NS, the pool
   stops replacing them. A count alone is not enough: on a loaded machine
   a replacement can wait tens of milliseconds for its first time slice,
   and a few kills in that time (the OOM killer, a chaos test) land on
   workers still starting, while the pool as a whole goes on working. A
   real storm (an initializer that always crashes) still breaks the pool
   within about a second. */
#define STORM_LIMIT 8
#define STORM_NS    1000000000ull

/* How long an initializer may take at mp_pool_new. */
#define INIT_WAIT_NS 60000000000ull

static struct mp__wslot *slot(mp_pool *pool, int w)
{
    return &pool->b->slots[w];
}

int mp__pool_fn(mp_pool *pool, void *fn)
{
    struct mp__board *b = pool->b;
    for (uint32_t i = 0; i < b->nfns; i++)
        if (pool->fns[i] == fn)
            return (int)i;
    if (b->nfns == MP__POOL_FNS)
        return MP_ENOMEM;
    int r = mp__fnref_make(fn, &b->fns[b->nfns]);
    if (r != 0)
        return r;
    pool->fns[b->nfns] = fn;
    __atomic_store_n(&b->nfns, b->nfns + 1, __ATOMIC_RELEASE);
    return (int)b->nfns - 1;
}

struct mp__job *mp__job_new(uint32_t kind, uint64_t nchunks)
{
    if (nchunks > (UINT64_C(1) << 40))
        return NULL;
    struct mp__job *j = mp__arena_alloc(
        sizeof *j + (size_t)nchunks * sizeof(struct mp__chunk), 64);
    if (j == NULL)
        return NULL;
    j->kind = kind;
    j->nchunks = nchunks;
    j->err = UINT64_MAX;
    return j;
}

/* Start the worker of slot w. */
static int settle_death(mp_pool *pool, int w, int code);

static int start_worker(mp_pool *pool, int w)
{
    struct mp__wslot *s = slot(pool, w);
    __atomic_store_n(&s->state, MP__W_STARTING, __ATOMIC_RELEASE);
    s->pid = 0;
    s->job = 0;
    /* The worker zeroes it too, but it may be killed before: a count left
       by the slot's last worker would pass it off as having worked. */
    s->tasks = 0;
    s->scan = UINT64_MAX;
    struct mp__worker_arg a = {mp__arena_off(pool->b), (uint32_t)w};
    char name[32];
    snprintf(name, sizeof name, "PoolWorker-%d", w + 1);
    mp_process_opts o = {.name = name,
                         .start = pool->opts.start,
                         .daemon = 1,
                         .arg_size = sizeof a};
    mp_process *p;
    int r = mp_process_new(&p, mp__pool_worker, &a, &o);
    if (r == 0 && (r = mp_process_start(p)) != 0)
        mp_process_free(p);
    if (r != 0) {
        /* The child may have run, claimed a chunk and died before the
           start could adopt it (another wait in this process, a SIGCHLD
           handler, took it): what its slot says it held is a death's. */
        if (__atomic_load_n(&s->job, __ATOMIC_ACQUIRE) != 0)
            settle_death(pool, w, 0);
        s->job = 0;
        s->item = UINT64_MAX;
        return r;
    }
    pool->workers[w] = p;
    pool->killed_for_timeout[w] = 0;
    pool->stats.started++;
    return 0;
}

/* Whether the worker of slot w has ended (without waiting). */
static int worker_ended(mp_pool *pool, int w)
{
    mp_process *p = pool->workers[w];
    if (p == NULL)
        return 0;
    struct mp__wslot *s = slot(pool, w);
    uint32_t word = __atomic_load_n(&s->life.word, __ATOMIC_ACQUIRE);
    uint32_t pid = __atomic_load_n(&s->pid, __ATOMIC_ACQUIRE);
    /* Holding its life lock: alive, no system call. (Without kernel
       robust lists a dead holder's word keeps its id: always ask.) */
    if (pool->robust && pid != 0 && (word & MP__FUTEX_TID_MASK) == pid)
        return 0;
    return mp_process_is_alive(p) == 0;
}

/* Lower *word to v if it is higher. */
static void lower(uint64_t *word, uint64_t v)
{
    uint64_t cur = __atomic_load_n(word, __ATOMIC_ACQUIRE);
    while (cur > v && !__atomic_compare_exchange_n(
                          word, &cur, v, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        ;
}

/* Work was put back (or the pool closes): wake the idle workers. Not
   mp__wake_sleepers, whose bump depends on the flag: here it must not. A
   worker going idle reads work_seq, raises work_sleep, then rechecks only
   head and the flags, which a chunk put back leaves alone: a work_seq
   changed since it read it is what keeps it from sleeping. */
static void wake_workers(struct mp__board *b)
{
    __atomic_add_fetch(&b->work_seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(&b->work_sleep, 0, __ATOMIC_SEQ_CST))
        mp__futex_wake(&b->work_seq, INT_MAX);
}

/* wake_waiters - wake every parent thread waiting in the pool (after the
   parent itself changed what they wait for). Whatever done_sleep says, not
   mp__wake_sleepers: a worker may have lowered it and not yet made its
   wake-up; the parent's changes are rare (deaths, cancels), so the system
   call costs nothing. */
static void wake_waiters(struct mp__board *b)
{
    __atomic_store_n(&b->done_sleep, 0, __ATOMIC_SEQ_CST);
    mp__wake_all(&b->done_seq);
}

/* The job at arena offset off if it is still posted (a slot's trace may
   name a job long freed), or NULL. */
static struct mp__job *live_job(mp_pool *pool, uint64_t off)
{
    if (off == 0)
        return NULL;
    for (uint64_t k = pool->reaped; k < pool->b->head; k++) {
        struct mp__job *j = pool->tasks[k % MP__POOL_RING].job;
        if (j != NULL && mp__arena_off(j) == off)
            return j;
    }
    return NULL;
}

/* The worker of slot w ended with code: settle what it held. Returns 1
   if it had done or was doing work (not a storm death). */
static int settle_death(mp_pool *pool, int w, int code)
{
    struct mp__board *b = pool->b;
    struct mp__wslot *s = slot(pool, w);
    int worked = s->tasks > 0;
    uint64_t joff = __atomic_load_n(&s->job, __ATOMIC_ACQUIRE);
    struct mp__job *j = live_job(pool, joff);
    if (j == NULL)
        return worked;
    uint64_t c = s->chunk;
    if (c >= j->nchunks)
        return worked;
    uint32_t st = __atomic_load_n(&j->chunks[c].state, __ATOMIC_ACQUIRE);
    if (st == MP__CH_PENDING) {
        /* Took the cursor past c but not the chunk: put the cursor back. */
        if (__atomic_load_n(&j->next, __ATOMIC_ACQUIRE) > c) {
            lower(&j->next, c);
            lower(&b->open, j->ring_index);
            wake_workers(b);
        }
        return worked;
    }
    if (st != MP__CH_RUNNING + (uint32_t)w)
        return worked;
    uint64_t lo, hi;
    mp__chunk_bounds(j, c, &lo, &hi);
    uint64_t from = lo + j->chunks[c].resume;
    uint64_t i = __atomic_load_n(&s->item, __ATOMIC_ACQUIRE);
    uint64_t next_from = from; /* where the chunk goes on */
    worked = 1;
    if (i != UINT64_MAX && i >= from && i < hi) {
        int killed = pool->killed_for_timeout[w];
        int timed =
            killed && pool->kill_job[w] == joff && pool->kill_item[w] == i;
        if (killed && !timed) {
            /* Killed for an item that finished just before the kill
               landed: this one is innocent and runs again. */
            next_from = i;
        } else {
            /* The item it was on fails; the ones before it are done. */
            uint64_t cls = timed ? MP__ERR_TIMEOUT : MP__ERR_DIED;
            if (j->status_off)
                ((int *)mp__arena_ptr(j->status_off))[i] = mp__err_code(cls);
            if (j->err_signal == 0 && code < 0)
                j->err_signal = -code;
            mp__job_fail(j, i, cls);
            next_from = i + 1;
            pool->stats.died++;
            if (timed)
                pool->stats.timed_out++;
        }
    } else if (i != UINT64_MAX && i >= hi) {
        next_from = hi; /* all done: it died before saying so */
    }
    if (next_from >= hi) {
        __atomic_store_n(&j->chunks[c].state, MP__CH_DONE, __ATOMIC_SEQ_CST);
        wake_waiters(b);
    } else {
        j->chunks[c].resume = next_from - lo;
        __atomic_store_n(&j->chunks[c].state, MP__CH_PENDING, __ATOMIC_SEQ_CST);
        lower(&j->next, c);
        lower(&b->open, j->ring_index);
        wake_workers(b);
    }
    return worked;
}

/* Whether some posted chunk waits for a worker to claim it. */
static int claimable_work(mp_pool *pool)
{
    struct mp__board *b = pool->b;
    for (uint64_t k = pool->reaped; k < b->head; k++) {
        struct mp__job *j = pool->tasks[k % MP__POOL_RING].job;
        if (j != NULL && !j->cancelled &&
            __atomic_load_n(&j->next, __ATOMIC_ACQUIRE) < j->nchunks)
            return 1;
    }
    return 0;
}

/* Give up on every job not finished: its items not done fail with
   MP_EBROKEN (terminate, free, or a restart storm). Only with no worker
   left running: a live one would go on writing. */
static void cancel_all(mp_pool *pool)
{
    struct mp__board *b = pool->b;
    for (uint64_t k = pool->reaped; k < b->head; k++) {
        struct mp__job *j = pool->tasks[k % MP__POOL_RING].job;
        if (j == NULL)
            continue;
        __atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
        for (uint64_t c = 0; c < j->nchunks; c++) {
            if (__atomic_load_n(&j->chunks[c].state, __ATOMIC_ACQUIRE) ==
                MP__CH_DONE)
                continue;
            uint64_t lo, hi;
            mp__chunk_bounds(j, c, &lo, &hi);
            lo += j->chunks[c].resume;
            if (j->status_off)
                for (uint64_t i = lo; i < hi; i++)
                    ((int *)mp__arena_ptr(j->status_off))[i] = MP_EBROKEN;
            if (lo < hi)
                mp__job_fail(j, lo, MP__ERR_BROKEN);
            __atomic_store_n(&j->chunks[c].state, MP__CH_DONE,
                             __ATOMIC_SEQ_CST);
        }
    }
    wake_waiters(b);
}

static void kill_all(mp_pool *pool);

/* Count a worker that died (or failed to start) before doing any work;
   1 when that makes a restart storm: STORM_LIMIT in a row, the first
   STORM_NS ago or more. */
static int storm_death(mp_pool *pool)
{
    uint64_t now = mp__now_ns();
    if (pool->storm++ == 0)
        pool->storm_since = now;
    return pool->storm >= STORM_LIMIT && now - pool->storm_since >= STORM_NS;
}

/* A worker ended: settle, reap, and replace it if there is a reason. */
static void on_end(mp_pool *pool, int w)
{
    mp_process *p = pool->workers[w];
    mp_process_join(p, MP_FOREVER); /* it ended: returns at once */
    int code = 0;
    mp_process_exitcode(p, &code);
    mp_process_free(p);
    pool->workers[w] = NULL;
    struct mp__wslot *s = slot(pool, w);
    uint32_t state = __atomic_load_n(&s->state, __ATOMIC_ACQUIRE);
    int worked;
    if (state == MP__W_RETIRING) {
        pool->stats.retired++;
        worked = 1;
    } else if (state == MP__W_INIT_FAILED) {
        worked = 0;
    } else if (code == 0 && state == MP__W_READY &&
               !pool->killed_for_timeout[w] &&
               __atomic_load_n(&s->job, __ATOMIC_ACQUIRE) == 0) {
        /* Left by choice (closing), holding nothing: not a death at all.
           Status 0 from a worker holding a chunk (its task called exit(0))
           is a death like any other. */
        worked = -1;
    } else {
        worked = settle_death(pool, w, code);
    }
    s->job = 0;
    s->item = UINT64_MAX;
    __atomic_store_n(&s->scan, UINT64_MAX, __ATOMIC_RELEASE);
    pool->killed_for_timeout[w] = 0;
    if (worked > 0)
        pool->storm = 0;
    if (worked == 0 && storm_death(pool) && !pool->broken) {
        pool->broken = 1;
        kill_all(pool);
        cancel_all(pool);
        return;
    }
    if (pool->terminated || pool->broken)
        return;
    /* Closing: only a chunk put back (after a death) needs a worker. */
    if (pool->closed && !claimable_work(pool))
        return;
    if (start_worker(pool, w) != 0 && storm_death(pool)) {
        pool->broken = 1;
        kill_all(pool);
        cancel_all(pool);
    }
}

/* Kill the workers whose item has run past the task timeout. */
static void enforce_timeouts(mp_pool *pool)
{
    struct mp__board *b = pool->b;
    if (b->timeout <= 0)
        return;
    uint64_t now = mp__now_ns(), limit = (uint64_t)(b->timeout * 1e9);
    for (int w = 0; w < pool->processes; w++) {
        struct mp__wslot *s = slot(pool, w);
        if (pool->workers[w] == NULL || pool->killed_for_timeout[w])
            continue;
        uint64_t job = __atomic_load_n(&s->job, __ATOMIC_ACQUIRE);
        uint64_t item = __atomic_load_n(&s->item, __ATOMIC_ACQUIRE);
        uint64_t t0 = __atomic_load_n(&s->item_start, __ATOMIC_ACQUIRE);
        /* A claim is stamped before its intent is published, an item
           before its index: t0 is never older than what job and item
           say. No item yet (UINT64_MAX): the kill blames none. */
        if (job != 0 && t0 != 0 && now > t0 && now - t0 > limit) {
            /* What the verdict was about: a kill landing after that item
               finished must not fail the next one. */
            pool->kill_job[w] = job;
            pool->kill_item[w] = item;
            pool->killed_for_timeout[w] = 1;
            mp_process_kill(pool->workers[w]);
        }
    }
}

/* Free finished jobs in posting order, as far as no worker looks at
   them; the ring slots are then reused. */
static void reap_jobs(mp_pool *pool)
{
    struct mp__board *b = pool->b;
    while (pool->reaped < b->head) {
        struct mp__task *t = &pool->tasks[pool->reaped % MP__POOL_RING];
        struct mp__job *j = t->job;
        if (!mp__job_done(j))
            return;
        if (t->owner != NULL && !t->owner->on(t->owner, MP__FE_DONE, j))
            return;
        /* Publish the new tail, then look for workers still on the job
           (both sides sequentially consistent: see the worker's claim). */
        uint64_t k = pool->reaped;
        if (b->tail < k + 1)
            __atomic_store_n(&b->tail, k + 1, __ATOMIC_SEQ_CST);
        for (int w = 0; w < pool->processes; w++)
            if (pool->workers[w] != NULL &&
                __atomic_load_n(&slot(pool, w)->scan, __ATOMIC_SEQ_CST) == k)
                return;
        if (j->kind == MP__JOB_APPLY) {
            if (j->in_off)
                mp_shared_free(mp__arena_ptr(j->in_off));
            if (t->owner == NULL && j->res_off)
                mp_shared_free(mp__arena_ptr(j->res_off));
        }
        for (int i = 0; i < 4; i++)
            mp_shared_free(t->owned[i]);
        if (j->starts_off)
            mp_shared_free(mp__arena_ptr(j->starts_off));
        mp_shared_free(j);
        memset(t, 0, sizeof *t);
        pool->reaped++;
    }
}

void mp__pool_service(mp_pool *pool)
{
    for (int w = 0; w < pool->processes; w++)
        if (worker_ended(pool, w))
            on_end(pool, w);
    if (!pool->terminated && !pool->broken && !pool->closed)
        for (int w = 0; w < pool->processes; w++)
            if (pool->workers[w] == NULL && start_worker(pool, w) != 0)
                break;
    enforce_timeouts(pool);
    reap_jobs(pool);
}

void mp__pool_attach(mp_pool *pool, struct mp__fe *fe)
{
    mp__list_push(&pool->fes, &fe->link);
}

void mp__pool_detach(mp_pool *pool, struct mp__fe *fe)
{
    mp__list_remove(&pool->fes, &fe->link);
}

struct mp__task *mp__pool_owned(mp_pool *pool, uint64_t k,
                                const struct mp__fe *fe)
{
    struct mp__task *t = &pool->tasks[k % MP__POOL_RING];
    return t->owner == fe ? t : NULL;
}

/* tell_gone - the pool is being freed: the owners of jobs still posted
   collect them (finished, or cancelled by now) and let go of them, then
   every front-end object the user still holds forgets the pool. */
static void tell_gone(mp_pool *pool)
{
    for (uint64_t k = pool->reaped; k < pool->b->head; k++) {
        struct mp__task *t = &pool->tasks[k % MP__POOL_RING];
        if (t->owner != NULL) {
            t->owner->on(t->owner, MP__FE_DONE, t->job);
            t->owner = NULL;
        }
    }
    mp__link *l;
    while ((l = pool->fes.first) != NULL) {
        struct mp__fe *fe = mp__list_entry(l, struct mp__fe, link);
        mp__list_remove(&pool->fes, l);
        fe->on(fe, MP__FE_GONE, NULL);
    }
}

int64_t mp__pool_post(mp_pool *pool, struct mp__job *j, struct mp__fe *owner)
{
    struct mp__board *b = pool->b;
    if (pool->closed || pool->terminated)
        return MP_ECLOSED;
    if (pool->broken)
        return MP_EBROKEN;
    if (b->head - pool->reaped >= MP__POOL_RING)
        return MP_EBUSY;
    uint64_t k = b->head;
    j->ring_index = k;
    struct mp__task *t = &pool->tasks[k % MP__POOL_RING];
    memset(t, 0, sizeof *t);
    t->job = j;
    t->owner = owner;
    __atomic_store_n(&b->ring[k % MP__POOL_RING], mp__arena_off(j),
                     __ATOMIC_RELEASE);
    __atomic_store_n(&b->head, k + 1, __ATOMIC_SEQ_CST);
    mp__wake_sleepers(&b->work_seq, &b->work_sleep);
    return (int64_t)k;
}

void mp__pool_wait(mp_pool *pool, uint64_t dl, int (*ready)(void *), void *ctx)
{
    struct mp__board *b = pool->b;
    /* Wake up for the next task-timeout check, too. */
    if (b->timeout > 0) {
        uint64_t tick =
            mp__now_ns() + (uint64_t)(b->timeout * 1e9 / 4) + 1000000u;
        if (tick < dl)
            dl = tick;
    }
    uint32_t *addrs[MP__WAITV_MAX];
    uint32_t vals[MP__WAITV_MAX];
    int n = 0, dying = -1;
    uint32_t seq = __atomic_load_n(&b->done_seq, __ATOMIC_ACQUIRE);
    addrs[n] = &b->done_seq;
    vals[n++] = seq;
    __atomic_store_n(&b->done_sleep, 1, __ATOMIC_SEQ_CST);
    /* Each live worker's life word, with the waiters bit set so that the
       kernel wakes us if the worker dies holding it. */
    for (int w = 0; w < pool->processes; w++) {
        struct mp__wslot *s = slot(pool, w);
        uint32_t pid = __atomic_load_n(&s->pid, __ATOMIC_SEQ_CST);
        if (pool->workers[w] == NULL)
            continue;
        uint64_t soon = mp__now_ns() + 50000000u;
        if (pid == 0 || n == MP__WAITV_MAX || !pool->robust) {
            /* Starting (it wakes us once it holds its life lock), past
               what one wait can watch, or no robust lists: its death is
               seen by looking again soon. */
            if (soon < dl)
                dl = soon;
            continue;
        }
        uint32_t v = __atomic_load_n(&s->life.word, __ATOMIC_ACQUIRE);
        if ((v & MP__FUTEX_TID_MASK) != pid) {
            dying = w; /* gone from its lock, not yet reaped */
            break;
        }
        uint32_t nv = v | MP__FUTEX_WAITERS;
        if (v != nv &&
            !__atomic_compare_exchange_n(&s->life.word, &v, nv, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) {
            dying = w;
            break;
        }
        addrs[n] = &s->life.word;
        vals[n++] = nv;
    }
    if (ready != NULL && ready(ctx))
        return;
    if (dying >= 0) {
        /* Its exit is under way (the kernel released its lock first):
           wait on its pidfd rather than spin. */
        int fd = mp_process_sentinel(pool->workers[dying]);
        pthread_mutex_unlock(&pool->mu);
        if (fd >= 0)
            mp__poll_in(fd, mp__nap_until(dl));
        pthread_mutex_lock(&pool->mu);
        return;
    }
    pthread_mutex_unlock(&pool->mu);
    int r = mp__futex_waitv(addrs, vals, n, dl);
    if (r == MP_ENOSYS || r == MP_EINVAL) {
        /* A kernel older than 5.16: slices. */
        uint64_t slice = mp__now_ns() + 2000000u;
        mp__futex_wait(&b->done_seq, seq, slice < dl ? slice : dl);
    }
    pthread_mutex_lock(&pool->mu);
}

static int all_ready(mp_pool *pool)
{
    for (int w = 0; w < pool->processes; w++) {
        uint32_t st = __atomic_load_n(&slot(pool, w)->state, __ATOMIC_ACQUIRE);
        if (st != MP__W_READY)
            return 0;
    }
    return 1;
}

static int all_ready_cb(void *ctx)
{
    return all_ready(ctx);
}

/* Stop every worker now and reap it. */
static void kill_all(mp_pool *pool)
{
    __atomic_store_n(&pool->b->stop, 1, __ATOMIC_SEQ_CST);
    for (int w = 0; w < pool->processes; w++)
        if (pool->workers[w] != NULL)
            mp_process_kill(pool->workers[w]);
    for (int w = 0; w < pool->processes; w++) {
        if (pool->workers[w] != NULL) {
            mp_process_join(pool->workers[w], MP_FOREVER);
            mp_process_free(pool->workers[w]);
            pool->workers[w] = NULL;
        }
    }
}

static void release(mp_pool *pool)
{
    if (pool->b != NULL) {
        if (pool->b->initarg_size)
            mp_shared_free(mp__arena_ptr(pool->b->initarg));
        if (pool->b->ctx_copy)
            mp_shared_free((void *)(uintptr_t)pool->b->ctx);
        mp_shared_free(pool->b);
    }
    free(pool->workers);
    free(pool->killed_for_timeout);
    free(pool->kill_job);
    free(pool->kill_item);
    free(pool->tasks);
    pthread_mutex_destroy(&pool->mu);
    free(pool);
}

/* Wait until every first worker ran its initializer; the failure code,
   or 0. */
static int await_init(mp_pool *pool)
{
    uint64_t dl = mp__now_ns() + INIT_WAIT_NS;
    for (;;) {
        for (int w = 0; w < pool->processes; w++) {
            uint32_t st =
                __atomic_load_n(&slot(pool, w)->state, __ATOMIC_ACQUIRE);
            if (st == MP__W_INIT_FAILED)
                return MP_ETASK;
            /* Ended: by a failed initializer if it said so before. */
            if (st == MP__W_STARTING && worker_ended(pool, w))
                return __atomic_load_n(&slot(pool, w)->state,
                                       __ATOMIC_ACQUIRE) == MP__W_INIT_FAILED
                           ? MP_ETASK
                           : MP_EWORKERDIED;
        }
        if (all_ready(pool))
            return 0;
        if (mp__now_ns() >= dl)
            return MP_ETIMEDOUT;
        mp__pool_wait(pool, mp__now_ns() + 5000000u, all_ready_cb, pool);
    }
}

int mp_pool_new(mp_pool **out, const mp_pool_opts *opts)
{
    mp_pool_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (out == NULL || o.processes < 0 || o.processes > MP__POOL_MAX ||
        isnan(o.task_timeout) || (unsigned)o.start > MP_START_FORKSERVER ||
        (o.ctx == NULL && o.ctx_size > 0))
        return MP_EINVAL;
    int r = mp__require_init();
    if (r != 0)
        return r;
    int n = o.processes ? o.processes : mp_cpu_count();
    if (n > MP__POOL_MAX)
        n = MP__POOL_MAX;
    mp_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return MP_ENOMEM;
    pthread_mutex_init(&pool->mu, NULL);
    pool->magic = MP__POOL_MAGIC;
    pool->processes = n;
    pool->opts = o;
    pool->stats.processes = (size_t)n;
    pool->workers = calloc((size_t)n, sizeof *pool->workers);
    pool->killed_for_timeout = calloc((size_t)n, sizeof(int));
    pool->kill_job = calloc((size_t)n, sizeof(uint64_t));
    pool->kill_item = calloc((size_t)n, sizeof(uint64_t));
    pool->robust = mp__robust_head() != NULL;
    pool->tasks = calloc(MP__POOL_RING, sizeof *pool->tasks);
    pool->b = mp__arena_alloc(
        sizeof(struct mp__board) + (size_t)n * sizeof(struct mp__wslot), 64);
    if (pool->workers == NULL || pool->killed_for_timeout == NULL ||
        pool->kill_job == NULL || pool->kill_item == NULL ||
        pool->tasks == NULL || pool->b == NULL) {
        release(pool);
        return MP_ENOMEM;
    }
    struct mp__board *b = pool->b;
    b->nslots = (uint32_t)n;
    b->timeout = o.task_timeout;
    b->max_tasks = o.max_tasks_per_child;
    b->init_fn = -1;
    for (int w = 0; w < n; w++) {
        mp__rmutex_init(&b->slots[w].life);
        b->slots[w].scan = UINT64_MAX;
    }
    if (o.initializer != NULL) {
        int f = mp__pool_fn(pool, (void *)o.initializer);
        if (f < 0) {
            release(pool);
            return f;
        }
        b->init_fn = f;
        b->initarg = (uint64_t)(uintptr_t)o.initarg;
        if (o.initarg_size) {
            void *copy = mp__arena_dup(o.initarg, o.initarg_size, 16);
            if (copy == NULL) {
                release(pool);
                return MP_ENOMEM;
            }
            b->initarg = mp__arena_off(copy);
            b->initarg_size = o.initarg_size;
        }
    }
    /* The pool's context: one copy every worker reads, whatever the
       start method (or the pointer as given). */
    b->ctx = (uint64_t)(uintptr_t)o.ctx;
    if (o.ctx != NULL && o.ctx_size > 0) {
        void *copy = mp__arena_dup(o.ctx, o.ctx_size, 64);
        if (copy == NULL) {
            release(pool);
            return MP_ENOMEM;
        }
        b->ctx = (uint64_t)(uintptr_t)copy;
        b->ctx_copy = 1;
    }
    b->magic = MP__BOARD_MAGIC;
    pthread_mutex_lock(&pool->mu);
    for (int w = 0; w < n && r == 0; w++)
        r = start_worker(pool, w);
    if (r == 0 && o.initializer != NULL)
        r = await_init(pool);
    if (r != 0) {
        /* No process is left behind, and no respawning (unlike Python). */
        kill_all(pool);
        pthread_mutex_unlock(&pool->mu);
        release(pool);
        return r;
    }
    pthread_mutex_unlock(&pool->mu);
    *out = pool;
    return 0;
}

static int pool_ok(const mp_pool *pool)
{
    return pool != NULL && pool->magic == MP__POOL_MAGIC;
}

int mp_pool_set_progress(mp_pool *pool, mp_progress_fn fn, void *arg,
                         double interval)
{
    if (!pool_ok(pool) || isnan(interval))
        return MP_EINVAL;
    pthread_mutex_lock(&pool->mu);
    pool->progress = fn;
    pool->progress_arg = arg;
    pool->progress_interval = interval > 0 ? interval : 0.1;
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

int mp_pool_close(mp_pool *pool)
{
    if (!pool_ok(pool))
        return MP_EINVAL;
    pthread_mutex_lock(&pool->mu);
    pool->closed = 1;
    __atomic_store_n(&pool->b->closing, 1, __ATOMIC_SEQ_CST);
    wake_workers(pool->b);
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

int mp_pool_terminate(mp_pool *pool)
{
    if (!pool_ok(pool))
        return MP_EINVAL;
    pthread_mutex_lock(&pool->mu);
    pool->terminated = 1;
    pool->closed = 1;
    kill_all(pool);
    cancel_all(pool);
    reap_jobs(pool);
    pthread_mutex_unlock(&pool->mu);
    return 0;
}

static int none_left(void *ctx)
{
    mp_pool *pool = ctx;
    for (int w = 0; w < pool->processes; w++)
        if (pool->workers[w] != NULL)
            return 0;
    return 1;
}

int mp_pool_join(mp_pool *pool, double timeout)
{
    uint64_t dl;
    if (!pool_ok(pool) || mp__deadline(timeout, &dl) != 0)
        return MP_EINVAL;
    pthread_mutex_lock(&pool->mu);
    int r = 0;
    if (!pool->closed && !pool->terminated)
        r = MP_ESTATE;
    while (r == 0) {
        mp__pool_service(pool);
        if (none_left(pool))
            break;
        if (dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl)) {
            r = MP_ETIMEDOUT;
            break;
        }
        wake_workers(pool->b);
        mp__pool_wait(pool, dl, none_left, pool);
    }
    if (r == 0)
        reap_jobs(pool);
    pthread_mutex_unlock(&pool->mu);
    return r;
}

void mp_pool_free(mp_pool *pool)
{
    if (!pool_ok(pool))
        return;
    pthread_mutex_lock(&pool->mu);
    pool->terminated = 1;
    pool->closed = 1;
    kill_all(pool);
    cancel_all(pool);
    /* Handles and iterators the user still holds learn that the pool is
       gone (finished or cancelled work is collected first). */
    tell_gone(pool);
    reap_jobs(pool);
    pool->magic = 0;
    pthread_mutex_unlock(&pool->mu);
    release(pool);
}

int mp_pool_stats(mp_pool *pool, struct mp_pool_stats *st)
{
    if (!pool_ok(pool) || st == NULL)
        return MP_EINVAL;
    pthread_mutex_lock(&pool->mu);
    *st = pool->stats;
    pthread_mutex_unlock(&pool->mu);
    return 0;
}
