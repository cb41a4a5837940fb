/* async.c - apply tasks and the asynchronous handles of applies and maps:
   waiting, collecting results, reporting outcomes. */
#include "pool_internal.h"

#include "../platform/platform.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static int async_ok(const mp_async *a)
{
    return a != NULL && a->magic == MP__ASYNC_MAGIC;
}

static struct mp__job *job_of(mp_async *a)
{
    return a->pool->tasks[a->ring_index % MP__POOL_RING].job;
}

void mp__async_collect(mp_async *a, struct mp__job *j)
{
    a->code = j->err == UINT64_MAX ? 0 : mp__err_code(j->err & 3);
    a->signal = j->err_signal;
    /* Which item failed, and its own error value: an apply's return, a
       map item's status (kept when statuses or a report were asked for). */
    uint64_t fi = j->err >> 2;
    a->err_index = j->err == UINT64_MAX ? SIZE_MAX : (size_t)(a->start + fi);
    a->err_value = 0;
    if (a->code == MP_ETASK)
        a->err_value = j->kind == MP__JOB_APPLY ? j->apply_ret
                       : j->status_off
                           ? ((const int *)mp__arena_ptr(j->status_off))[fi]
                           : 0;
    if (j->kind == MP__JOB_APPLY) {
        a->apply_ret = j->apply_ret;
        if (a->code == 0 && j->res_off) {
            a->result = malloc(j->res_len);
            if (a->result != NULL)
                memcpy(a->result, mp__arena_ptr(j->res_off), j->res_len);
            a->result_len = a->result ? j->res_len : 0;
            if (a->result == NULL)
                a->code = MP_ENOMEM;
        }
        if (j->res_off)
            mp_shared_free(mp__arena_ptr(j->res_off));
        j->res_off = 0;
    } else {
        /* A map through staging: the results go back to the user. */
        if (a->stage_out != NULL && a->user_out != NULL)
            memcpy(a->user_out, a->stage_out, a->n * a->out_size);
        if (a->stage_status != NULL && a->user_status != NULL)
            memcpy(a->user_status, a->stage_status, a->n * sizeof(int));
        if (a->user_error != NULL) {
            mp_task_error *e = a->user_error;
            e->index = a->err_index;
            e->code = a->code;
            e->error = a->err_value;
            e->signal = a->code ? a->signal : 0;
        }
    }
    /* Last, with release: a reader that sees ready sees the rest. */
    __atomic_store_n(&a->ready, 1, __ATOMIC_RELEASE);
}

static int is_ready(const mp_async *a)
{
    return __atomic_load_n(&a->ready, __ATOMIC_ACQUIRE);
}

/* on_event - the engine's news for handle fe: its job completed (collect
   it once; the job may go once it is collected), or the pool is gone. */
static int on_event(struct mp__fe *fe, enum mp__fe_event ev, struct mp__job *j)
{
    mp_async *a = (mp_async *)(void *)((char *)fe - offsetof(mp_async, fe));
    if (ev == MP__FE_GONE) {
        a->pool = NULL;
        return 1;
    }
    if (!a->ready)
        mp__async_collect(a, j); /* given up: MP_EBROKEN */
    return a->ready;
}

void mp__async_init(mp_async *a, mp_pool *pool, int kind, size_t n)
{
    a->magic = MP__ASYNC_MAGIC;
    a->pool = pool;
    a->fe.on = on_event;
    a->kind = kind;
    a->n = n;
}

void mp__async_attach(mp_async *a, uint64_t k)
{
    a->ring_index = k;
    mp__pool_attach(a->pool, &a->fe);
}

/* collect_if_done - with pool->mu held: collect a if its job completed;
   1 if a is ready. */
static int collect_if_done(mp_async *a)
{
    if (a->ready)
        return 1;
    struct mp__job *j = job_of(a);
    if (j != NULL && mp__job_done(j))
        mp__async_collect(a, j);
    return a->ready;
}

static int poll_cb(void *ctx)
{
    mp_async *a = ctx;
    struct mp__job *j = job_of(a);
    return a->ready || (j != NULL && mp__job_done(j));
}

/* Report map progress to the pool's callback, at most every interval.
   The callback runs without the pool's lock, so it may call the pool. */
static void progress(mp_async *a, uint64_t *next_tick, int final)
{
    mp_pool *pool = a->pool;
    if (pool->progress == NULL || a->kind != MP__JOB_MAP)
        return;
    uint64_t now = mp__now_ns();
    if (!final && now < *next_tick)
        return;
    *next_tick = now + (uint64_t)(pool->progress_interval * 1e9);
    size_t done = a->n;
    if (!final) {
        struct mp__job *j = job_of(a);
        done = 0;
        for (uint64_t c = 0; j != NULL && c < j->nchunks; c++) {
            if (__atomic_load_n(&j->chunks[c].state, __ATOMIC_RELAXED) ==
                MP__CH_DONE) {
                uint64_t lo, hi;
                mp__chunk_bounds(j, c, &lo, &hi);
                done += (size_t)(hi - lo);
            }
        }
    }
    mp_progress_fn fn = pool->progress;
    void *arg = pool->progress_arg;
    pthread_mutex_unlock(&pool->mu);
    fn(done, a->n, arg);
    pthread_mutex_lock(&pool->mu);
}

int mp__async_wait_until(mp_async *a, uint64_t dl)
{
    uint64_t tick = 0;
    mp_pool *pool = a->pool;
    for (;;) {
        mp__pool_service(pool);
        if (collect_if_done(a)) {
            progress(a, &tick, 1);
            return 1;
        }
        progress(a, &tick, 0);
        if (a->pool == NULL || collect_if_done(a))
            return 1; /* the callback freed the pool, or it finished */
        if (dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl))
            return 0;
        uint64_t until = dl;
        if (pool->progress != NULL && a->kind == MP__JOB_MAP && tick < until)
            until = tick;
        mp__pool_wait(pool, until, poll_cb, a);
    }
}

int mp_async_wait(mp_async *a, double timeout)
{
    uint64_t dl;
    if (!async_ok(a) || mp__deadline(timeout, &dl) != 0)
        return MP_EINVAL;
    mp_pool *pool = a->pool;
    if (is_ready(a) || pool == NULL)
        return 0;
    pthread_mutex_lock(&pool->mu);
    int r = mp__async_wait_until(a, dl);
    pthread_mutex_unlock(&pool->mu);
    return r ? 0 : MP_EBUSY;
}

int mp_async_ready(mp_async *a)
{
    if (!async_ok(a))
        return MP_EINVAL;
    mp_pool *pool = a->pool;
    if (is_ready(a) || pool == NULL)
        return 1;
    pthread_mutex_lock(&pool->mu);
    mp__pool_service(pool);
    int r = collect_if_done(a);
    pthread_mutex_unlock(&pool->mu);
    return r;
}

int mp_async_successful(mp_async *a)
{
    int r = mp_async_ready(a);
    if (r <= 0)
        return r < 0 ? r : MP_ESTATE;
    return a->code == 0;
}

int mp_async_get(mp_async *a, void **result, size_t *len, double timeout)
{
    int r = mp_async_wait(a, timeout);
    if (r != 0)
        return r;
    if (result != NULL) {
        /* The caller's now: one exchange, so that two threads getting
           the same handle never both receive (and free) the buffer. */
        *result = __atomic_exchange_n(&a->result, NULL, __ATOMIC_ACQ_REL);
    }
    if (len != NULL)
        *len = a->result_len;
    return a->code;
}

int mp_async_error(mp_async *a)
{
    if (!async_ok(a))
        return MP_EINVAL;
    return is_ready(a) ? a->apply_ret : 0;
}

int mp_async_signal(mp_async *a)
{
    if (!async_ok(a))
        return MP_EINVAL;
    return is_ready(a) ? a->signal : 0;
}

void mp_async_free(mp_async *a)
{
    if (!async_ok(a))
        return;
    mp_pool *pool = a->pool;
    if (pool != NULL) {
        pthread_mutex_lock(&pool->mu);
        /* Not ready: detached, the job goes on and its result is dropped
           at the end. Ready: the job may not be reaped yet either. */
        struct mp__task *t = mp__pool_owned(pool, a->ring_index, &a->fe);
        if (t != NULL)
            t->owner = NULL;
        mp__pool_detach(pool, &a->fe);
        pthread_mutex_unlock(&pool->mu);
    }
    a->magic = 0;
    free(a->result);
    free(a);
}

/* post_apply - an apply of fn (a mp_apply_fn, or with ctx set a
   mp_apply_ctx_fn) to a copy of the len bytes at arg. ctx: the call's
   context (copied when ctx_size > 0) or, NULL, the pool's. */
static int post_apply(mp_pool *pool, uint32_t mode, void *fn, const void *arg,
                      size_t len, const void *ctx, size_t ctx_size,
                      mp_async **out)
{
    if (pool == NULL || pool->magic != MP__POOL_MAGIC || fn == NULL ||
        out == NULL || (arg == NULL && len > 0) ||
        (ctx == NULL && ctx_size > 0))
        return MP_EINVAL;
    mp_async *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MP_ENOMEM;
    pthread_mutex_lock(&pool->mu);
    int f = mp__pool_fn(pool, fn);
    struct mp__job *j = f < 0 ? NULL : mp__job_new(MP__JOB_APPLY, 1);
    void *copy = NULL;
    void *ctx_copy = NULL;
    int r = f < 0 ? f : (j == NULL ? MP_ENOMEM : 0);
    if (r == 0 && len > 0 && (copy = mp__arena_dup(arg, len, 16)) == NULL)
        r = MP_ENOMEM;
    if (r == 0 && ctx_size > 0 &&
        (ctx_copy = mp__arena_dup(ctx, ctx_size, 64)) == NULL)
        r = MP_ENOMEM;
    int64_t k = MP_EBUSY;
    if (r == 0) {
        j->fn = (uint32_t)f;
        j->n = 1;
        j->chunksize = 1;
        j->in_off = copy ? mp__arena_off(copy) : 0;
        j->in_size = len;
        j->mode = mode;
        j->ctx = ctx_copy != NULL ? (uint64_t)(uintptr_t)ctx_copy
                 : ctx != NULL    ? (uint64_t)(uintptr_t)ctx
                                  : pool->b->ctx;
        mp__async_init(a, pool, MP__JOB_APPLY, 1);
        /* A full ring: serve the pool until a slot frees. */
        while ((k = mp__pool_post(pool, j, &a->fe)) == MP_EBUSY) {
            mp__pool_service(pool);
            mp__pool_wait(pool, mp__now_ns() + 1000000u, NULL, NULL);
        }
        r = k < 0 ? (int)k : 0;
    }
    if (r != 0) {
        mp_shared_free(copy);
        mp_shared_free(ctx_copy);
        mp_shared_free(j);
        pthread_mutex_unlock(&pool->mu);
        free(a);
        return r;
    }
    /* The context's copy goes with the job. */
    pool->tasks[k % MP__POOL_RING].owned[3] = ctx_copy;
    mp__async_attach(a, (uint64_t)k);
    pthread_mutex_unlock(&pool->mu);
    *out = a;
    return 0;
}

int mp_pool_apply_async(mp_pool *pool, mp_apply_fn fn, const void *arg,
                        size_t len, mp_async **out)
{
    return post_apply(pool, MP__MAP_PLAIN, mp__fn_addr((void (*)(void))fn), arg,
                      len, NULL, 0, out);
}

int mp_pool_apply_ctx_async(mp_pool *pool, mp_apply_ctx_fn fn, const void *arg,
                            size_t len, const mp_apply_opts *opts,
                            mp_async **out)
{
    mp_apply_opts o = {0};
    if (opts != NULL)
        o = *opts;
    return post_apply(pool, MP__MAP_CTX, mp__fn_addr((void (*)(void))fn), arg,
                      len, o.ctx, o.ctx_size, out);
}

int mp_pool_apply_ctx(mp_pool *pool, mp_apply_ctx_fn fn, const void *arg,
                      size_t len, void **result, size_t *result_len,
                      const mp_apply_opts *opts)
{
    mp_async *a;
    int r = mp_pool_apply_ctx_async(pool, fn, arg, len, opts, &a);
    if (r != 0)
        return r;
    r = mp_async_get(a, result, result_len, MP_FOREVER);
    if (opts != NULL && opts->error != NULL)
        mp_async_task_error(a, opts->error);
    mp_async_free(a);
    return r;
}

int mp_async_task_error(mp_async *a, mp_task_error *e)
{
    if (!async_ok(a) || e == NULL)
        return MP_EINVAL;
    if (!is_ready(a))
        return MP_ESTATE;
    e->index = a->err_index;
    e->code = a->code;
    e->error = a->err_value;
    e->signal = a->code ? a->signal : 0;
    return 0;
}

int mp_pool_apply(mp_pool *pool, mp_apply_fn fn, const void *arg, size_t len,
                  void **result, size_t *result_len)
{
    mp_async *a;
    int r = mp_pool_apply_async(pool, fn, arg, len, &a);
    if (r != 0)
        return r;
    r = mp_async_get(a, result, result_len, MP_FOREVER);
    mp_async_free(a);
    return r;
}
