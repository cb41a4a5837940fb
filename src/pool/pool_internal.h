/* pool_internal.h - what the pool's files share: the engine's shared board
   and private pool object, and the one interface by which the engine
   tells the front ends' objects what happened. */
#ifndef MP_POOL_INTERNAL_H
#define MP_POOL_INTERNAL_H

#include "../core/core.h"
#include "../core/list.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Two layers. The engine (pool.c, worker.c) runs workers and jobs: the
   board, dead workers, task timeouts, waiting. The front ends (async.c:
   handles and apply; map.c: map and imap, on async.c's handles) sit on
   top and call into the engine; the engine calls nothing of theirs, but
   tells their objects of completion and of the pool's end through struct
   mp__fe. */

/* ---- Engine: the shared board ------------------------------------------ */

/* How work flows. The parent posts jobs (a map, or one apply task) in the
   board's job ring. A job is an array of chunks, each a run of items. A
   worker claims a chunk in three steps, each leaving a trace the parent
   can read if the worker dies: it writes its intent (job, chunk) in its
   slot, moves the job's cursor past the chunk (CAS), then marks the chunk
   RUNNING by itself (CAS). While it runs items it writes the index of the
   current one in its slot. So the parent always knows which item a dead
   worker was on: that item fails (MP_EWORKERDIED or MP_ETIMEDOUT), the
   items before it are done, the rest of the chunk goes back to PENDING and
   the cursor back to it. */

#define MP__POOL_MAX  1024 /* workers at most */
#define MP__POOL_RING 8192 /* jobs in flight at most */
#define MP__POOL_FNS  64   /* distinct task functions per pool */

/* Chunk states; a running chunk holds MP__CH_RUNNING + worker index. */
#define MP__CH_PENDING 0u
#define MP__CH_DONE    1u
#define MP__CH_RUNNING 2u

/* Failure classes, ordered by nothing but kept in the low bits of
   mp__job.err so that one atomic minimum finds the lowest failing item. */
#define MP__ERR_TASK    0u
#define MP__ERR_DIED    1u
#define MP__ERR_TIMEOUT 2u
#define MP__ERR_BROKEN  3u

/* mp__err_code - the code of a failure class. */
static inline int mp__err_code(uint64_t cls)
{
    static const int codes[4] = {MP_ETASK, MP_EWORKERDIED, MP_ETIMEDOUT,
                                 MP_EBROKEN};
    return codes[cls & 3];
}

/* Job kinds. */
#define MP__JOB_MAP   1u
#define MP__JOB_APPLY 2u

/* mp__fn_addr - the address of a task function of any shape, as the
   function table keeps it (NULL for NULL). Callers cast their typed
   pointer to void (*)(void), the one cast C compilers accept between
   function types. */
static inline void *mp__fn_addr(void (*f)(void))
{
    void *p;
    memcpy(&p, &f, sizeof p);
    return p;
}

/* How a map job calls its function. */
#define MP__MAP_PLAIN 0u /* mp_map_fn(in, out) */
#define MP__MAP_CTX   1u /* mp_map_ctx_fn(ctx, in, out) */
#define MP__MAP_RANGE 2u /* mp_range_fn(ctx, start + i, out) */
#define MP__MAP_BYTES                                                          \
    3u /* mp_bytes_fn(ctx, data, len, res): items and                          \
          results are (address, length) pairs */

/* Worker slot states. */
#define MP__W_EMPTY       0u
#define MP__W_STARTING    1u
#define MP__W_READY       2u
#define MP__W_INIT_FAILED 3u
#define MP__W_RETIRING    4u

/* mp__chunk - a run of items of a job. */
struct mp__chunk {
    uint32_t state; /* PENDING, DONE or RUNNING + worker */
    uint32_t pad;
    uint64_t resume; /* items already done (set when re-queued) */
};

/* mp__job - one map, or one apply task (n = 1), in the arena. */
struct mp__job {
    uint32_t kind;
    uint32_t fn; /* index in the board's function table */
    uint64_t n;  /* items */
    uint64_t nchunks;
    uint64_t chunksize;  /* 0: chunk starts are in starts_off */
    uint64_t starts_off; /* arena offset of nchunks + 1 uint64 starts */
    uint64_t in_off;     /* arena offset of the items (or apply argument) */
    uint64_t in_size;    /* bytes per item (apply: argument bytes) */
    uint64_t out_off;    /* arena offset of the results (0: none) */
    uint64_t out_size;
    uint64_t status_off;   /* arena offset of n ints of status (0: none) */
    uint64_t next;         /* claim cursor: chunks below were handed out */
    uint64_t first_undone; /* chunks below are all DONE (a hint that only
                              grows; the chunk states are the truth) */
    uint64_t err;          /* lowest failure: index << 2 | MP__ERR_* class;
                          UINT64_MAX: none */
    uint64_t ring_index;   /* where it was posted */
    int32_t err_signal;    /* signal of the first worker death */
    int32_t apply_ret;     /* apply: the function's return value */
    uint32_t cancelled;    /* terminate: do not start what is left */
    uint64_t res_off;      /* apply: arena block of the result (0: none) */
    uint64_t res_len;
    uint32_t mode; /* map: MP__MAP_PLAIN, _CTX or _RANGE */
    uint32_t pad1;
    uint64_t ctx;   /* map: the context's address (arena, or as
                       given), valid in every worker */
    uint64_t start; /* range map: the number of item 0 */
    struct mp__chunk chunks[];
};

/* mp__job_fail - note that item i failed with class cls (atomic min). */
static inline void mp__job_fail(struct mp__job *j, uint64_t i, uint64_t cls)
{
    uint64_t v = i << 2 | cls, cur = __atomic_load_n(&j->err, __ATOMIC_RELAXED);
    while (v < cur &&
           !__atomic_compare_exchange_n(&j->err, &cur, v, 1, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

/* mp__wslot - a worker's slot: its trace for the parent. One per worker
   index; a replacement reuses the slot. Two cache lines: the worker
   writes the second at every item. */
struct mp__wslot {
    mp__rmutex life; /* held by the worker all its life: its death
                        wakes the parent (robust futex) */
    uint32_t state;  /* MP__W_* */
    uint32_t pid;
    uint32_t tasks; /* chunks completed (max_tasks_per_child) */
    uint32_t pad0;
    uint64_t scan;       /* ring index it looks at (UINT64_MAX: none) */
    uint64_t job;        /* intent and claim: arena offset of the job */
    uint64_t chunk;      /* ... and the chunk */
    uint64_t item;       /* the item being processed */
    uint64_t item_start; /* when it began (with task timeouts) */
    char pad2[64 - 32];
};

/* mp__board - the shared part of a pool. */
struct mp__board {
    uint32_t magic;
    uint32_t nslots;     /* worker slots */
    uint32_t closing;    /* no more jobs: workers exit when idle */
    uint32_t stop;       /* exit now, even with work left */
    double timeout;      /* task_timeout; <= 0: none */
    uint32_t work_seq;   /* futex: bumped when jobs are posted */
    uint32_t work_sleep; /* 1: a worker may sleep on work_seq */
    uint32_t done_seq;   /* futex: bumped when a watched job completes */
    uint32_t done_sleep; /* 1: the parent may sleep on done_seq */
    uint64_t head;       /* jobs posted (ring index of the next one) */
    uint64_t open;       /* jobs below are fully handed out */
    uint64_t tail;       /* jobs below may be freed by the parent */
    uint32_t max_tasks;  /* max_tasks_per_child; 0: none */
    uint32_t nfns;
    int32_t init_fn; /* function index of the initializer; -1 */
    uint32_t pad;
    uint64_t initarg; /* pointer value or arena offset of a copy */
    uint64_t initarg_size;
    uint64_t ctx;      /* the pool's context: its address (arena copy or
                          as given); 0: none */
    uint64_t ctx_copy; /* 1: ctx is an arena copy the pool frees */
    mp__fnref fns[MP__POOL_FNS];
    uint64_t ring[MP__POOL_RING]; /* arena offsets of jobs */
    struct mp__wslot slots[];
};

/* mp__job_done - 1 when every chunk of j is DONE. Advances the shared
   first_undone hint, so that all callers together scan each chunk about
   once. Completion is decided by the chunk states, not by a counter that a
   worker killed between two stores could leave short. */
static inline int mp__job_done(struct mp__job *j)
{
    uint64_t i = __atomic_load_n(&j->first_undone, __ATOMIC_SEQ_CST);
    uint64_t start = i;
    while (i < j->nchunks && __atomic_load_n(&j->chunks[i].state,
                                             __ATOMIC_SEQ_CST) == MP__CH_DONE)
        i++;
    while (i > start &&
           !__atomic_compare_exchange_n(&j->first_undone, &start, i, 1,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    return i == j->nchunks;
}

/* mp__chunk_bounds - the items [*lo, *hi) of chunk c (before resume). */
static inline void mp__chunk_bounds(const struct mp__job *j, uint64_t c,
                                    uint64_t *lo, uint64_t *hi)
{
    if (j->chunksize) {
        *lo = c * j->chunksize;
        *hi = *lo + j->chunksize < j->n ? *lo + j->chunksize : j->n;
    } else {
        const uint64_t *st = mp__arena_ptr(j->starts_off);
        *lo = st[c];
        *hi = st[c + 1];
    }
}

/* mp__pool_worker - a worker's life: arg is a struct mp__worker_arg. */
struct mp__worker_arg {
    uint64_t board_off;
    uint32_t index;
};
int mp__pool_worker(void *arg);

/* ---- Engine to front ends: the one interface -------------------------- */

/* mp__fe_event - what the engine tells a front-end object. A job given
   up (terminate, restart storm, pool free) completes like any other, its
   items not done failed with MP_EBROKEN: MP__FE_DONE says it too. */
enum mp__fe_event {
    MP__FE_DONE, /* the job it owns completed: collect its outcome */
    MP__FE_GONE  /* the pool is being freed: forget it */
};

/* mp__fe_fn - a front end's answer to event ev (with pool->mu held). For
   MP__FE_DONE, j is the job it owns; it returns 1 once it no longer needs
   the job (it may be freed), 0 to keep it. For MP__FE_GONE, j is NULL,
   the object is already off the pool's list, and the return is ignored. */
struct mp__fe;
typedef int mp__fe_fn(struct mp__fe *fe, enum mp__fe_event ev,
                      struct mp__job *j);

/* mp__fe - what a front-end object embeds to hear from the engine: about
   the job it owns (posted with it as owner) MP__FE_DONE, and once
   attached, MP__FE_GONE. Its creator sets on before either. */
struct mp__fe {
    mp__link link; /* on pool->fes */
    mp__fe_fn *on;
};

/* ---- Engine: the parent's side ---------------------------------------- */

/* mp__task - the parent's record of a posted job. */
struct mp__task {
    struct mp__job *job;
    struct mp__fe *owner; /* told when it completes; NULL: detached */
    void *owned[4];       /* arena blocks freed with the job (staging) */
};

/* mp_pool - the parent's side. */
struct mp_pool {
    uint32_t magic;
    struct mp__board *b;
    int processes;
    mp_pool_opts opts;
    int closed;              /* mp_pool_close called */
    int terminated;          /* mp_pool_terminate called */
    int broken;              /* restart storm: workers die before working */
    int storm;               /* consecutive workers dead before any work */
    uint64_t storm_since;    /* when the first of them was counted */
    pthread_mutex_t mu;      /* guards all of the parent's side */
    mp_process **workers;    /* by slot; NULL: none */
    int *killed_for_timeout; /* by slot: the parent killed it */
    void *fns[MP__POOL_FNS]; /* function table, parent's addresses */
    uint64_t reaped;         /* ring index up to which jobs were freed */
    struct mp__task *tasks;  /* by ring index % MP__POOL_RING */
    uint64_t *kill_job;      /* by slot: what a timeout kill was for */
    uint64_t *kill_item;
    mp__list fes; /* struct mp__fe: the user's live handles and
                     iterators (told when the pool is freed) */
    int robust;   /* kernel robust lists work (life locks) */
    struct mp_pool_stats stats;
    mp_progress_fn progress;
    void *progress_arg;
    double progress_interval;
};

/* mp__pool_attach, mp__pool_detach - put fe on the pool's list of
   front-end objects (told when the pool is freed); take it off. With
   pool->mu held. */
void mp__pool_attach(mp_pool *pool, struct mp__fe *fe);
void mp__pool_detach(mp_pool *pool, struct mp__fe *fe);

/* mp__pool_owned - the task of ring index k if fe still owns it (its job
   not yet freed), else NULL. With pool->mu held. */
struct mp__task *mp__pool_owned(mp_pool *pool, uint64_t k,
                                const struct mp__fe *fe);

/* mp__pool_post - post job j (caller holds pool->mu), owned by owner
   (NULL: none). Returns its ring index, or MP_EBUSY when the ring is full
   (caller services and retries), MP_ECLOSED, MP_EBROKEN. */
int64_t mp__pool_post(mp_pool *pool, struct mp__job *j, struct mp__fe *owner);

/* mp__pool_service - with pool->mu held: handle dead workers (their items
   fail, they are replaced), kill workers past the task timeout, collect
   finished jobs (telling their owners), free what can be freed. */
void mp__pool_service(mp_pool *pool);

/* mp__pool_wait - with pool->mu held: sleep until a job completes, a
   worker dies, or dl (and the next task-timeout check) passes; drops the
   lock while asleep. ready(ctx), checked after announcing the sleep,
   skips it when what the caller waits for is already there. */
void mp__pool_wait(mp_pool *pool, uint64_t dl, int (*ready)(void *), void *ctx);

/* mp__pool_fn - the board index of function fn (interning it). Returns it
   or MP_ENOMEM (table full), MP_EINVAL (not in a loaded object). */
int mp__pool_fn(mp_pool *pool, void *fn);

/* mp__job_new - a job with nchunks chunks. NULL when the arena is full. */
struct mp__job *mp__job_new(uint32_t kind, uint64_t nchunks);

/* ---- Front ends: async.c, used by map.c; never called by the engine --- */

/* mp_async - a handle on a posted job. */
struct mp_async {
    uint32_t magic;
    mp_pool *pool;       /* NULL once the pool is freed */
    struct mp__fe fe;    /* owner of its job; on the pool's list */
    uint64_t ring_index; /* of its job */
    int kind;
    int ready; /* collected (stored last, with release) */
    int code;  /* outcome (mp_async_get's return) */
    int apply_ret;
    int signal;
    void *result; /* apply: malloc'd copy; map: none */
    size_t result_len;
    /* map_async: where to copy results and statuses when collected */
    void *user_out;
    int *user_status;
    size_t n, out_size;
    void *stage_in, *stage_out; /* arena staging (NULL: used in place) */
    int *stage_status;
    mp_task_error *user_error; /* map: filled when collected */
    size_t err_index;          /* the failing item (SIZE_MAX: none) */
    int err_value;             /* its function's own error value */
    uint64_t start;            /* range map: the number of item 0 */
};

/* mp__async_init - make a fresh (zeroed) a a handle on pool for a job of
   kind (MP__JOB_*) with n items, ready to own it (post it with &a->fe). */
void mp__async_init(mp_async *a, mp_pool *pool, int kind, size_t n);

/* mp__async_attach - a's job was posted as ring index k (owned by
   &a->fe): a joins the pool's list of handles. With pool->mu held. */
void mp__async_attach(mp_async *a, uint64_t k);

/* mp__async_collect - fill a's outcome from its finished job (copy-back
   for maps). With pool->mu held. */
void mp__async_collect(mp_async *a, struct mp__job *j);

/* mp__async_wait_until - with pool->mu held: serve the pool until a is
   ready or dl passes; 1 if ready. */
int mp__async_wait_until(mp_async *a, uint64_t dl);

#define MP__POOL_MAGIC  0x4c4f4f50u /* "POOL" */
#define MP__ASYNC_MAGIC 0x434e5953u /* "SYNC" */
#define MP__BOARD_MAGIC 0x44524f42u /* "BORD" */

/* mp__pool_step - where a test may stop or kill a worker. */
enum mp__pool_step {
    MP__PW_CLAIMED = 1 /* a chunk claimed, its first item not begun */
};

/* mp__pool_fault_hook - when set (tests only), called at every step. */
extern void (*mp__pool_fault_hook)(int step);

#endif /* MP_POOL_INTERNAL_H */
