/* map.c - map, map_async and imap: items split into chunks (uniform, or
   guided: large first, small at the end), arrays used in place when they
   are in the arena and staged through it otherwise. */
#include "pool_internal.h"

#include "../platform/platform.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Guided chunks: each takes 1/(2 x workers) of what is left, but never
   fewer items than the floor, so that a slow item near the end does not
   wait behind one huge chunk, and the claims cost nothing next to the
   items. Python's rule, n / (4 x workers), for comparison: 8 chunks of
   125,000 for a million items on 2 workers; here 21 chunks. */
static uint64_t guided_count(uint64_t n, uint64_t workers, uint64_t floor)
{
    uint64_t k = 0;
    for (uint64_t left = n; left > 0; k++) {
        uint64_t c = (left + 2 * workers - 1) / (2 * workers);
        if (c < floor)
            c = floor;
        left -= c < left ? c : left;
    }
    return k;
}

static void guided_starts(uint64_t *st, uint64_t n, uint64_t workers,
                          uint64_t floor)
{
    uint64_t k = 0, pos = 0;
    while (pos < n) {
        st[k++] = pos;
        uint64_t c = (n - pos + 2 * workers - 1) / (2 * workers);
        if (c < floor)
            c = floor;
        pos += c < n - pos ? c : n - pos;
    }
    st[k] = n;
}

/* In the arena from start to end: read in place by every worker. */
static int in_arena(const void *p, size_t len)
{
    return len == 0 || (mp_shared_contains(p) &&
                        mp_shared_contains((const char *)p + len - 1));
}

/* An arena pointer for a user array: the array itself when it is in the
   arena, else a fresh (zeroed) arena copy of size bytes, with a copy of
   src when src is given. NULL when the arena is full. */
static void *stage(const void *user, size_t size, int copy_in, void **owned)
{
    if (user != NULL && size > 0 && in_arena(user, size))
        return (void *)user;
    void *p = mp__arena_alloc(size ? size : 1, 64);
    if (p != NULL && copy_in && user != NULL)
        memcpy(p, user, size);
    *owned = p;
    return p;
}

/* Undo a map that could not be posted: its blocks, its job, its handle.
   With pool->mu held; releases it. Returns r. */
static int discard(mp_pool *pool, struct mp__job *j, void **owned, mp_async *a,
                   int r)
{
    for (int i = 0; i < 4; i++)
        mp_shared_free(owned[i]);
    if (j != NULL && j->starts_off)
        mp_shared_free(mp__arena_ptr(j->starts_off));
    mp_shared_free(j);
    pthread_mutex_unlock(&pool->mu);
    free(a);
    return r;
}

/* post_map - the map of every front end: fn (a mp_map_fn, mp_map_ctx_fn
   or mp_range_fn, as mode says) over n items of in (none for a range: its
   items are start, start + 1 ...). Returns 0 and *out_async, or a code. */
static int post_map(mp_pool *pool, uint32_t mode, void *fn, const void *in,
                    size_t in_size, void *out, size_t out_size, size_t n,
                    size_t start, const mp_map_opts *mopts,
                    mp_async **out_async)
{
    mp_map_opts mo = {0};
    if (mopts != NULL)
        mo = *mopts;
    if (pool == NULL || pool->magic != MP__POOL_MAGIC || fn == NULL ||
        out_async == NULL || (n > 0 && in == NULL && in_size > 0) ||
        (n > 0 && out == NULL && out_size > 0) ||
        (in_size && n > SIZE_MAX / in_size) ||
        (out_size && n > SIZE_MAX / out_size) || n > SIZE_MAX - start ||
        (mo.ctx == NULL && mo.ctx_size > 0))
        return MP_EINVAL;
    mp_async *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MP_ENOMEM;
    mp__async_init(a, pool, MP__JOB_MAP, n);
    a->out_size = out_size;
    a->user_out = out;
    a->user_status = mo.status;
    a->user_error = mo.error;
    a->start = start;
    pthread_mutex_lock(&pool->mu);
    mp__pool_service(pool);
    int r = pool->closed || pool->terminated ? MP_ECLOSED
            : pool->broken                   ? MP_EBROKEN
                                             : 0;
    int f = r == 0 ? mp__pool_fn(pool, fn) : r;
    if (f < 0) {
        pthread_mutex_unlock(&pool->mu);
        free(a);
        return f;
    }
    uint64_t workers = (uint64_t)pool->processes;
    uint64_t cs = mo.chunksize, nchunks;
    uint64_t floor = n / (workers * 256) + 1;
    if (floor > 4096)
        floor = 4096;
    if (cs > n)
        cs = n ? n : 1; /* one chunk of everything */
    if (cs != 0)
        nchunks = n / cs + (n % cs != 0);
    else
        nchunks = guided_count(n, workers, floor);
    struct mp__job *j = mp__job_new(MP__JOB_MAP, nchunks);
    void *owned[4] = {NULL, NULL, NULL, NULL};
    if (j == NULL)
        r = MP_ENOMEM;
    if (r == 0 && cs == 0) {
        uint64_t *st = mp__arena_alloc((nchunks + 1) * sizeof *st, 16);
        if (st == NULL)
            r = MP_ENOMEM;
        else {
            guided_starts(st, n, workers, floor);
            j->starts_off = mp__arena_off(st);
        }
    }
    void *sin = NULL, *sout = NULL;
    int *sst = NULL;
    if (r == 0 && n > 0) {
        sin = in_size ? stage(in, n * in_size, 1, &owned[0]) : NULL;
        sout = out_size ? stage(out, n * out_size, 0, &owned[1]) : NULL;
        /* With an error report asked for, statuses are kept even when
           the caller wants none: the failing item's error value is its
           status. */
        if (mo.status != NULL || mo.error != NULL) {
            sst = stage(mo.status, n * sizeof(int), 0, &owned[2]);
            if (sst != NULL && sst == mo.status)
                memset(sst, 0, n * sizeof(int));
        }
        if ((in_size && sin == NULL) || (out_size && sout == NULL) ||
            ((mo.status != NULL || mo.error != NULL) && sst == NULL))
            r = MP_ENOMEM;
    }
    /* The context: a copy for this call, the pointer as given, or the
       pool's. Its copy is freed with the job (owned[3]). */
    uint64_t ctx = pool->b->ctx;
    if (r == 0 && mo.ctx != NULL) {
        ctx = (uint64_t)(uintptr_t)mo.ctx;
        if (mo.ctx_size > 0) {
            owned[3] = mp__arena_dup(mo.ctx, mo.ctx_size, 64);
            if (owned[3] == NULL)
                r = MP_ENOMEM;
            ctx = (uint64_t)(uintptr_t)owned[3];
        }
    }
    if (r != 0)
        return discard(pool, j, owned, a, r);
    j->fn = (uint32_t)f;
    j->n = n;
    j->chunksize = cs;
    j->in_off = sin ? mp__arena_off(sin) : 0;
    j->in_size = in_size;
    j->out_off = sout ? mp__arena_off(sout) : 0;
    j->out_size = out_size;
    j->status_off = sst ? mp__arena_off(sst) : 0;
    j->mode = mode;
    j->ctx = ctx;
    j->start = start;
    a->stage_out = owned[1];
    a->stage_status = owned[2] ? sst : NULL;
    int64_t k;
    while ((k = mp__pool_post(pool, j, &a->fe)) == MP_EBUSY) {
        mp__pool_service(pool);
        mp__pool_wait(pool, mp__now_ns() + 1000000u, NULL, NULL);
    }
    if (k < 0)
        return discard(pool, j, owned, a, (int)k);
    memcpy(pool->tasks[k % MP__POOL_RING].owned, owned, sizeof owned);
    mp__async_attach(a, (uint64_t)k);
    if (nchunks == 0)
        mp__async_collect(a, j); /* nothing to do */
    pthread_mutex_unlock(&pool->mu);
    *out_async = a;
    return 0;
}

int mp_pool_map_async(mp_pool *pool, mp_map_fn fn, const void *in,
                      size_t in_size, void *out, size_t out_size, size_t n,
                      const mp_map_opts *mopts, mp_async **out_async)
{
    return post_map(pool, MP__MAP_PLAIN, mp__fn_addr((void (*)(void))fn), in,
                    in_size, out, out_size, n, 0, mopts, out_async);
}

/* Post, then wait for the outcome. */
static int map_wait(mp_pool *pool, uint32_t mode, void *fn, const void *in,
                    size_t in_size, void *out, size_t out_size, size_t n,
                    size_t start, const mp_map_opts *mopts)
{
    mp_async *a;
    int r = post_map(pool, mode, fn, in, in_size, out, out_size, n, start,
                     mopts, &a);
    if (r != 0)
        return r;
    r = mp_async_get(a, NULL, NULL, MP_FOREVER);
    mp_async_free(a);
    return r;
}

int mp_pool_map(mp_pool *pool, mp_map_fn fn, const void *in, size_t in_size,
                void *out, size_t out_size, size_t n, const mp_map_opts *mopts)
{
    return map_wait(pool, MP__MAP_PLAIN, mp__fn_addr((void (*)(void))fn), in,
                    in_size, out, out_size, n, 0, mopts);
}

int mp_pool_map_ctx(mp_pool *pool, mp_map_ctx_fn fn, const void *in,
                    size_t in_size, void *out, size_t out_size, size_t n,
                    const mp_map_opts *mopts)
{
    return map_wait(pool, MP__MAP_CTX, mp__fn_addr((void (*)(void))fn), in,
                    in_size, out, out_size, n, 0, mopts);
}

int mp_pool_map_range(mp_pool *pool, mp_range_fn fn, size_t start, size_t n,
                      void *out, size_t out_size, const mp_map_opts *mopts)
{
    return map_wait(pool, MP__MAP_RANGE, mp__fn_addr((void (*)(void))fn), NULL,
                    0, out, out_size, n, start, mopts);
}

/* The item outcomes after which results are gathered (the map ran). */
static int ran(int r)
{
    return r == 0 || r == MP_ETASK || r == MP_EWORKERDIED ||
           r == MP_ETIMEDOUT || r == MP_EBROKEN || r == MP_ENOENT;
}

/* bytes_out - what mp_pool_map_bytes hands out: this header, then the n
   mp_bytes (pointing into the arena blocks the workers packed), then the
   blocks' addresses, which mp_bytes_free gives back. */
struct bytes_out {
    uint64_t magic;
    uint64_t nblocks;
};
#define MP__BYTES_MAGIC 0x7365747962706dULL /* "mpbytes" */

void mp_bytes_free(mp_bytes *out)
{
    if (out == NULL)
        return;
    struct bytes_out *h = (struct bytes_out *)(void *)out - 1;
    if (h->magic != MP__BYTES_MAGIC)
        return;
    void **blocks = (void **)(void *)h - h->nblocks;
    for (uint64_t k = 0; k < h->nblocks; k++)
        mp_shared_free(blocks[k]);
    h->magic = 0;
    free(blocks);
}

/* The statuses of items a worker ran to the end (its result entry is
   written): success or the function's own error. */
static int ran_item(int st)
{
    return st != MP_EWORKERDIED && st != MP_ETIMEDOUT && st != MP_EBROKEN &&
           st != MP_ENOENT;
}

int mp_pool_map_bytes(mp_pool *pool, mp_bytes_fn fn, const mp_bytes *in,
                      size_t n, mp_bytes **out, const mp_map_opts *mopts)
{
    if (out == NULL || (in == NULL && n > 0) || n > SIZE_MAX / 64)
        return MP_EINVAL;
    *out = NULL;
    /* The strings not in the arena go into one staging block. */
    size_t copy = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i].data == NULL && in[i].len > 0)
            return MP_EINVAL;
        if (!in_arena(in[i].data, in[i].len)) {
            if (in[i].len > SIZE_MAX / 2 - copy)
                return MP_EINVAL;
            copy += in[i].len;
        }
    }
    mp_map_opts mo = {0};
    if (mopts != NULL)
        mo = *mopts;
    int *user_st = mo.status;
    /* Written whole before they are read: no zeroing. */
    uint64_t *pairs = mp__arena_alloc_dirty(n ? n * 16 : 1, 64);
    uint64_t *res = mp__arena_alloc_dirty(n ? n * 16 : 1, 64);
    char *stage = copy ? mp__arena_alloc_dirty(copy, 64) : NULL;
    /* Statuses say which results exist: the caller's, or ours. */
    int *st = user_st != NULL ? user_st : malloc((n ? n : 1) * sizeof *st);
    int r =
        pairs == NULL || res == NULL || (copy && stage == NULL) || st == NULL
            ? MP_ENOMEM
            : 0;
    if (r == 0) {
        char *at = stage;
        for (size_t i = 0; i < n; i++) {
            const void *d = in[i].data;
            if (!in_arena(d, in[i].len)) {
                if (in[i].len > 0)
                    memcpy(at, d, in[i].len);
                d = at;
                at += in[i].len;
            }
            pairs[2 * i] = (uint64_t)(uintptr_t)d;
            pairs[2 * i + 1] = in[i].len;
        }
        mo.status = st;
        r = map_wait(pool, MP__MAP_BYTES, mp__fn_addr((void (*)(void))fn),
                     pairs, 16, res, 16, n, 0, &mo);
    }
    if (ran(r)) {
        /* The results stay where the workers packed them (no copy): the
           handed-out array points into those blocks, whose addresses it
           keeps for mp_bytes_free. */
        const uint64_t top = (uint64_t)1 << 63; /* starts a block */
        size_t nblocks = 0;
        for (size_t i = 0; i < n; i++)
            nblocks += ran_item(st[i]) && (res[2 * i + 1] & top);
        void **blocks = malloc(nblocks * sizeof *blocks +
                               sizeof(struct bytes_out) + n * sizeof(mp_bytes));
        struct bytes_out *h =
            blocks != NULL ? (struct bytes_out *)(void *)(blocks + nblocks)
                           : NULL;
        mp_bytes *o = h != NULL ? (mp_bytes *)(void *)(h + 1) : NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            int ok = ran_item(st[i]);
            uint64_t len = ok ? res[2 * i + 1] : 0;
            if (o != NULL)
                o[i] = st[i] == 0
                           ? (mp_bytes){(const void *)(uintptr_t)res[2 * i],
                                        (size_t)(len & ~top)}
                           : (mp_bytes){NULL, 0};
            if (len & top) {
                if (blocks != NULL)
                    blocks[k++] = (void *)(uintptr_t)res[2 * i];
                else
                    mp_shared_free((void *)(uintptr_t)res[2 * i]);
            }
        }
        if (h != NULL) {
            h->magic = MP__BYTES_MAGIC;
            h->nblocks = nblocks;
        } else {
            r = MP_ENOMEM;
        }
        *out = o;
    }
    if (st != user_st)
        free(st);
    mp_shared_free(pairs);
    mp_shared_free(res);
    mp_shared_free(stage);
    return r;
}

/* ---- imap ----------------------------------------------------------------
 */

/* batch - one chunk of an imap in flight: a map_async over arena copies. */
struct batch {
    mp_async *a;
    uint64_t first; /* input index of its first item */
    uint64_t count;
    uint64_t taken; /* results already returned */
    char *in, *out; /* arena */
    int *status;    /* arena */
};

/* mp_imap - the window of batches, oldest first. */
struct mp_imap {
    uint32_t magic;
    mp_pool *pool;    /* NULL once the pool is freed */
    struct mp__fe fe; /* on the pool's list of live iterators */
    void *fn;         /* a mp_map_fn, or a mp_map_ctx_fn (mode) */
    uint32_t mode;    /* MP__MAP_PLAIN or MP__MAP_CTX */
    const char *in;
    size_t in_size, out_size, n;
    mp_imap_opts o;
    uint64_t fed; /* items read from the input */
    int input_done;
    int feed_err;       /* why feeding stopped early (told once drained) */
    mp_task_error last; /* the last failure mp_imap_next returned */
    struct batch *b;    /* ring of nb batches */
    size_t nb, head, count;
};

#define MP__IMAP_MAGIC 0x50414d49u /* "IMAP" */

static void batch_drop(struct batch *bt)
{
    /* Once detached, the job's blocks are freed with the job. */
    if (bt->a != NULL) {
        mp_pool *pool = bt->a->pool;
        if (pool != NULL) {
            pthread_mutex_lock(&pool->mu);
            struct mp__task *t =
                mp__pool_owned(pool, bt->a->ring_index, &bt->a->fe);
            if (t != NULL) {
                t->owned[0] = bt->in;
                t->owned[1] = bt->out;
                t->owned[2] = bt->status;
                bt->in = bt->out = NULL;
                bt->status = NULL;
            }
            pthread_mutex_unlock(&pool->mu);
        }
        mp_async_free(bt->a);
    }
    mp_shared_free(bt->in);
    mp_shared_free(bt->out);
    mp_shared_free(bt->status);
    memset(bt, 0, sizeof *bt);
}

/* on_event - the engine's news for iterator fe: it owns no job (its
   batches' handles do), so only that the pool is gone. */
static int on_event(struct mp__fe *fe, enum mp__fe_event ev, struct mp__job *j)
{
    (void)j;
    mp_imap *it = (mp_imap *)(void *)((char *)fe - offsetof(mp_imap, fe));
    if (ev == MP__FE_GONE)
        it->pool = NULL;
    return 1;
}

/* Read up to chunksize items and post them; 0, MP_EOF (input ended), or
   an error. */
static int feed_one(mp_imap *it)
{
    if (it->input_done || it->count == it->nb)
        return MP_EOF;
    if (it->pool == NULL)
        return MP_EBROKEN; /* the pool was freed */
    size_t cs = it->o.chunksize;
    struct batch bt = {0};
    bt.first = it->fed;
    bt.in = mp__arena_alloc(cs * it->in_size + 1, 64);
    bt.out = mp__arena_alloc(cs * it->out_size + 1, 64);
    bt.status = mp__arena_alloc(cs * sizeof(int), 16);
    if (bt.in == NULL || bt.out == NULL || bt.status == NULL) {
        batch_drop(&bt);
        return MP_ENOMEM;
    }
    while (bt.count < cs) {
        char *dst = bt.in + bt.count * it->in_size;
        if (it->o.gen != NULL) {
            if (it->o.gen(it->o.gen_ctx, dst) != 1) {
                it->input_done = 1;
                break;
            }
        } else {
            if (it->fed + bt.count >= it->n) {
                it->input_done = 1;
                break;
            }
            memcpy(dst, it->in + (it->fed + bt.count) * it->in_size,
                   it->in_size);
        }
        bt.count++;
    }
    if (bt.count == 0) {
        batch_drop(&bt);
        return MP_EOF;
    }
    mp_map_opts mo = {.chunksize = bt.count,
                      .status = bt.status,
                      .ctx = it->o.ctx,
                      .ctx_size = it->o.ctx_size};
    int r = post_map(it->pool, it->mode, it->fn, bt.in, it->in_size, bt.out,
                     it->out_size, bt.count, 0, &mo, &bt.a);
    if (r != 0) {
        batch_drop(&bt);
        return r;
    }
    it->fed += bt.count;
    it->b[(it->head + it->count) % it->nb] = bt;
    it->count++;
    return 0;
}

/* Keep the window full; a failure to feed (pool closed, arena full)
   ends the input, and is told once what was fed has been taken. */
static void feed(mp_imap *it)
{
    int r;
    while ((r = feed_one(it)) == 0)
        ;
    if (r != MP_EOF && it->feed_err == 0) {
        it->feed_err = r;
        it->input_done = 1;
    }
}

/* imap_new - the iterator of mp_pool_imap and mp_pool_imap_ctx. */
static int imap_new(mp_pool *pool, uint32_t mode, void *fn, const void *in,
                    size_t in_size, size_t out_size, size_t n,
                    const mp_imap_opts *opts, mp_imap **out)
{
    mp_imap_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (pool == NULL || pool->magic != MP__POOL_MAGIC || fn == NULL ||
        out == NULL || (o.gen == NULL && in == NULL && n > 0) ||
        (o.ctx == NULL && o.ctx_size > 0))
        return MP_EINVAL;
    if (o.chunksize == 0)
        o.chunksize = 1;
    size_t most = SIZE_MAX / 8;
    /* Sizes first: in_size + 1 below must not wrap to 0. */
    if (in_size > most || out_size > most ||
        o.chunksize > most / (in_size + 1) ||
        o.chunksize > most / (out_size + 1) || o.window > most)
        return MP_EINVAL;
    if (o.window == 0)
        o.window = o.chunksize > most / (4 * (size_t)pool->processes)
                       ? most
                       : 4 * (size_t)pool->processes * o.chunksize;
    mp_imap *it = calloc(1, sizeof *it);
    if (it == NULL)
        return MP_ENOMEM;
    it->magic = MP__IMAP_MAGIC;
    it->pool = pool;
    it->fe.on = on_event;
    it->fn = fn;
    it->mode = mode;
    it->last = (mp_task_error){SIZE_MAX, 0, 0, 0};
    it->in = in;
    it->in_size = in_size;
    it->out_size = out_size;
    it->n = n;
    it->o = o;
    it->nb = (o.window + o.chunksize - 1) / o.chunksize;
    it->b = calloc(it->nb, sizeof *it->b);
    if (it->b == NULL) {
        free(it);
        return MP_ENOMEM;
    }
    pthread_mutex_lock(&pool->mu);
    mp__pool_attach(pool, &it->fe);
    pthread_mutex_unlock(&pool->mu);
    feed(it);
    if (it->count == 0 && it->feed_err != 0) {
        int r = it->feed_err;
        mp_imap_free(it);
        return r;
    }
    *out = it;
    return 0;
}

int mp_pool_imap(mp_pool *pool, mp_map_fn fn, const void *in, size_t in_size,
                 size_t out_size, size_t n, const mp_imap_opts *opts,
                 mp_imap **out)
{
    return imap_new(pool, MP__MAP_PLAIN, mp__fn_addr((void (*)(void))fn), in,
                    in_size, out_size, n, opts, out);
}

int mp_pool_imap_ctx(mp_pool *pool, mp_map_ctx_fn fn, const void *in,
                     size_t in_size, size_t out_size, size_t n,
                     const mp_imap_opts *opts, mp_imap **out)
{
    return imap_new(pool, MP__MAP_CTX, mp__fn_addr((void (*)(void))fn), in,
                    in_size, out_size, n, opts, out);
}

/* Take the next result of batch bt (ready). */
static int take(mp_imap *it, struct batch *bt, void *out, size_t *index)
{
    uint64_t k = bt->taken++;
    if (index != NULL)
        *index = (size_t)(bt->first + k);
    int st = bt->status[k];
    if (st != 0) {
        int code = st == MP_EWORKERDIED || st == MP_ETIMEDOUT ||
                           st == MP_EBROKEN || st == MP_ENOENT
                       ? st
                       : MP_ETASK; /* the item's own error */
        /* What mp_imap_task_error tells about this failure. */
        it->last = (mp_task_error){(size_t)(bt->first + k), code,
                                   code == MP_ETASK ? st : 0,
                                   code != MP_ETASK ? bt->a->signal : 0};
        return code;
    }
    if (out != NULL)
        memcpy(out, bt->out + k * it->out_size, it->out_size);
    return 0;
}

int mp_imap_task_error(mp_imap *it, mp_task_error *e)
{
    if (it == NULL || it->magic != MP__IMAP_MAGIC || e == NULL)
        return MP_EINVAL;
    *e = it->last;
    return 0;
}

int mp_imap_next(mp_imap *it, void *out, size_t *index, double timeout)
{
    uint64_t dl;
    if (it == NULL || it->magic != MP__IMAP_MAGIC ||
        mp__deadline(timeout, &dl) != 0)
        return MP_EINVAL;
    for (;;) {
        if (it->count == 0) {
            int r = it->feed_err ? it->feed_err : MP_EOF;
            it->feed_err = 0; /* told once; then the end */
            return r;
        }
        /* Ordered: the oldest batch; unordered: the first one ready. */
        struct batch *bt = NULL;
        for (size_t i = 0; i < it->count; i++) {
            struct batch *c = &it->b[(it->head + i) % it->nb];
            if (mp_async_ready(c->a) == 1) {
                bt = c;
                break;
            }
            if (it->o.ordered)
                break;
        }
        if (bt == NULL) {
            /* Wait for the oldest (unordered: in slices, so that any
               batch that becomes ready is seen). */
            struct batch *w = &it->b[it->head];
            uint64_t slice = dl;
            if (!it->o.ordered) {
                uint64_t s = mp__now_ns() + 1000000u;
                slice = s < dl ? s : dl;
            }
            mp_pool *pool = w->a->pool;
            int ok = 1;
            if (pool != NULL) {
                pthread_mutex_lock(&pool->mu);
                ok = mp__async_wait_until(w->a, slice);
                pthread_mutex_unlock(&pool->mu);
            }
            if (!ok && dl != MP__NO_DEADLINE && (dl == 0 || mp__now_ns() >= dl))
                return MP_EBUSY;
            continue;
        }
        int r = take(it, bt, out, index);
        if (bt->taken == bt->count) {
            /* Done with it: out of the window, and refill. */
            size_t pos = (size_t)(bt - it->b);
            batch_drop(bt);
            if (pos == it->head) {
                it->head = (it->head + 1) % it->nb;
            } else {
                /* Unordered: close the gap by moving the oldest here. */
                it->b[pos] = it->b[it->head];
                memset(&it->b[it->head], 0, sizeof it->b[0]);
                it->head = (it->head + 1) % it->nb;
            }
            it->count--;
            feed(it);
        }
        return r;
    }
}

void mp_imap_free(mp_imap *it)
{
    if (it == NULL || it->magic != MP__IMAP_MAGIC)
        return;
    for (size_t i = 0; i < it->count; i++)
        batch_drop(&it->b[(it->head + i) % it->nb]);
    if (it->pool != NULL) {
        pthread_mutex_lock(&it->pool->mu);
        mp__pool_detach(it->pool, &it->fe);
        pthread_mutex_unlock(&it->pool->mu);
    }
    it->magic = 0;
    free(it->b);
    free(it);
}
