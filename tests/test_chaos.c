/* test_chaos.c - the outside attack's cases: tasks that leave their
   worker by any exit, parties stopped while holding internal locks,
   parties killed between a commit and its wake-up, a program that reaps
   with its own SIGCHLD handler, absurd lengths, and forged boot values
   and descriptors. */
#include "harness.h"

#include "../src/core/core.h"
#include "../src/queue/queue_internal.h"
#include "../src/sync/sync_internal.h"

#include "../src/pool/pool_internal.h"
#include "../src/process/process_internal.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---- tasks that leave their worker -----------------------------------
 */

enum leave { L_EXIT0, L__EXIT0, L_EXIT3, L_ABORT, L_SEGV, L_KILL };

/* How item 5 of a map leaves its worker; the others triple. */
static int leave_how = -1;

static void leave_now(int how)
{
    switch (how) {
    case L_EXIT0:
        exit(0);
    case L__EXIT0:
        _exit(0);
    case L_EXIT3:
        exit(3);
    case L_ABORT:
        abort();
    case L_SEGV:
        raise(SIGSEGV);
        break;
    default:
        raise(SIGKILL);
        break;
    }
    _exit(9); /* not reached */
}

/* A map item: {how, value}; item with how >= 0 leaves its worker. */
struct item {
    int64_t how;
    int64_t v;
};

static int leaver(const void *in, void *out)
{
    const struct item *it = in;
    if (it->how >= 0)
        leave_now((int)it->how);
    *(int64_t *)out = it->v * 3;
    return 0;
}

static int leave_apply(const void *arg, size_t len, mp_result *res)
{
    (void)len;
    (void)res;
    leave_now(*(const int *)arg);
    return 0;
}

/* Every start method: a map whose item 5 leaves its worker by how fails
   exactly that item with MP_EWORKERDIED (the others correct, the map
   returns), and an apply doing the same fails with MP_EWORKERDIED. */
static void task_leaving(int how)
{
    enum { N = 32 };
    struct item in[N];
    int64_t out[N];
    int st[N];
    leave_how = how;
    for (int k = 0; k < 3; k++) {
        mp_pool *pool;
        mp_pool_opts o = {.processes = 2, .start = mp_test_methods[k]};
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        for (int chunk = 1; chunk <= 4; chunk *= 4) {
            for (int i = 0; i < N; i++)
                in[i] = (struct item){i == 5 ? how : -1, i};
            memset(out, 0, sizeof out);
            mp_map_opts mo = {.chunksize = (size_t)chunk, .status = st};
            mp_ck_code(
                mp_pool_map(pool, leaver, in, sizeof in[0], out, 8, N, &mo),
                MP_EWORKERDIED);
            for (int i = 0; i < N; i++) {
                if (i == 5) {
                    mp_ck_code(st[i], MP_EWORKERDIED);
                } else {
                    mp_ck_code(st[i], 0);
                    ck_assert_int_eq(out[i], 3 * i);
                }
            }
        }
        mp_ck_code(
            mp_pool_apply(pool, leave_apply, &how, sizeof how, NULL, NULL),
            MP_EWORKERDIED);
        mp_ck_code(mp_pool_close(pool), 0);
        mp_ck_code(mp_pool_join(pool, MP_T(10)), 0);
        mp_pool_free(pool);
    }
}

MP_TEST(task_exit0_fails_its_item)
{
    task_leaving(L_EXIT0);
}

MP_TEST(task__exit0_fails_its_item)
{
    task_leaving(L__EXIT0);
}

MP_TEST(task_exit3_fails_its_item)
{
    task_leaving(L_EXIT3);
}

MP_TEST(task_abort_fails_its_item)
{
    task_leaving(L_ABORT);
}

MP_TEST(task_segv_fails_its_item)
{
    task_leaving(L_SEGV);
}

MP_TEST(task_sigkill_fails_its_item)
{
    task_leaving(L_KILL);
}

/* ---- stopped parties -------------------------------------------------
 */

/* Wait until process pid is stopped (state T in /proc); 1 if it is. */
static int wait_stopped(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    double end = mp_test_now() + MP_T(5);
    while (mp_test_now() < end) {
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            char *p = strrchr(buf, ')');
            if (p != NULL && (p[2] == 'T' || p[2] == 't'))
                return 1;
        }
        mp_test_sleep(0.005);
    }
    return 0;
}

/* Check that call, made with timeout t, returns want within t plus a
   tenth of a second (scaled), and not before t. */
#define within(call, t, want)                                                  \
    do {                                                                       \
        double t0_ = mp_test_now();                                            \
        mp_ck_code((call), (want));                                            \
        double el_ = mp_test_now() - t0_;                                      \
        ck_assert_msg(el_ >= (t)-0.005 && el_ <= (t) + MP_T(0.1),              \
                      "%s took %.3f s (timeout %.1f)", #call, el_,             \
                      (double)(t));                                            \
    } while (0)

static int stop_at; /* the queue or arena step at which to stop */

static void stop_hook(int step)
{
    if (step == stop_at)
        raise(SIGSTOP);
}

struct qjob {
    mp_queue *q;
    int step;
};

static int t_stop_putter(void *arg)
{
    struct qjob *j = arg;
    stop_at = j->step;
    mp__queue_fault_hook = stop_hook;
    char m[16] = "stopped";
    return mp_queue_put(j->q, m, sizeof m, MP_FOREVER) != 0;
}

static int t_stop_getter(void *arg)
{
    struct qjob *j = arg;
    stop_at = j->step;
    mp__queue_fault_hook = stop_hook;
    char m[64];
    return mp_queue_get(j->q, m, sizeof m, MP_FOREVER) < 0;
}

/* Kill a stopped child and reap it. */
static void kill_stopped(mp_process *p)
{
    mp_ck_code(mp_process_kill(p), 0);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGKILL);
}

/* A fork child that stops itself at step of a put (fn t_stop_putter) or
   a get (t_stop_getter) on a new queue in *j, stopped when this returns. */
static mp_process *stopped_in_queue(mp_target_fn fn, int step, struct qjob **j)
{
    *j = mp_shared_alloc(sizeof **j);
    ck_assert_ptr_nonnull(*j);
    mp_queue_opts o = {.capacity = 4096};
    mp_ck_code(mp_queue_new(&(*j)->q, &o), 0);
    (*j)->step = step;
    mp_process *p = mp_test_start(fn, *j, 0, MP_START_FORK);
    ck_assert(wait_stopped(mp_process_pid(p)));
    return p;
}

MP_TEST(stopped_producer_lock_holder_timeouts_hold)
{
    struct qjob *j;
    mp_process *p = stopped_in_queue(t_stop_putter, MP__QP_LOCKED, &j);
    char m[8] = "x";
    within(mp_queue_put(j->q, m, sizeof m, 0), 0, MP_EFULL);
    within(mp_queue_put(j->q, m, sizeof m, 0.2), 0.2, MP_EFULL);
    within(mp_queue_get(j->q, m, sizeof m, 0), 0, MP_EEMPTY);
    within(mp_queue_get(j->q, m, sizeof m, 0.2), 0.2, MP_EEMPTY);
    kill_stopped(p);
    /* The lock passes on: the queue works. */
    mp_ck_code(mp_queue_put(j->q, m, sizeof m, 0), 0);
    ck_assert_int_eq(mp_queue_get(j->q, m, sizeof m, 0), (ssize_t)sizeof m);
    mp_queue_free(j->q);
    mp_shared_free(j);
}

MP_TEST(stopped_consumer_lock_holder_timeouts_hold)
{
    struct qjob *j;
    mp_process *p = stopped_in_queue(t_stop_getter, MP__QG_LOCKED, &j);
    char m[8] = "x";
    within(mp_queue_get(j->q, m, sizeof m, 0), 0, MP_EEMPTY);
    within(mp_queue_get(j->q, m, sizeof m, 0.2), 0.2, MP_EEMPTY);
    /* Producers do not need the consumers' lock. */
    mp_ck_code(mp_queue_put(j->q, m, sizeof m, 0), 0);
    within(mp_queue_get(j->q, m, sizeof m, 0.2), 0.2, MP_EEMPTY);
    kill_stopped(p);
    ck_assert_int_eq(mp_queue_get(j->q, m, sizeof m, 0), (ssize_t)sizeof m);
    mp_queue_free(j->q);
    mp_shared_free(j);
}

static void stop_any(int step)
{
    (void)step;
    raise(SIGSTOP);
}

static int t_stop_in_allocator(void *arg)
{
    (void)arg;
    mp__arena_fault_hook = stop_any; /* inside the allocator, lock held */
    return mp_shared_alloc(100) == NULL;
}

MP_TEST(stopped_arena_lock_holder_timeouts_hold)
{
    mp_queue *q;
    mp_queue_opts o = {.capacity = 1 << 16};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    size_t big = 40000; /* over half the ring: its own arena block */
    char *m = calloc(1, big);
    mp_ck_code(mp_queue_put(q, m, big, 0), 0);
    void *spare = mp_shared_alloc(64);
    ck_assert_ptr_nonnull(spare);
    mp_process *p = mp_test_start(t_stop_in_allocator, NULL, 0, MP_START_FORK);
    ck_assert(wait_stopped(mp_process_pid(p)));
    /* Taking the large message frees its block: that must not wait. */
    double t0 = mp_test_now();
    ck_assert_int_eq(mp_queue_get(q, m, big, 0), (ssize_t)big);
    ck_assert_msg(mp_test_now() - t0 < MP_T(0.1), "get waited for the arena");
    t0 = mp_test_now();
    mp_shared_free(spare);
    ck_assert_msg(mp_test_now() - t0 < MP_T(0.1), "free waited");
    /* A large put needs the allocator: it times out, as a full queue. */
    within(mp_queue_put(q, m, big, 0), 0, MP_EFULL);
    within(mp_queue_put(q, m, big, 0.2), 0.2, MP_EFULL);
    kill_stopped(p);
    /* The allocator is repaired and the deferred frees done. */
    const char *why = NULL;
    mp_ck_code(mp__arena_check(&why), 0);
    mp_ck_code(mp_queue_put(q, m, big, 0), 0);
    ck_assert_int_eq(mp_queue_get(q, m, big, 0), (ssize_t)big);
    free(m);
    mp_queue_free(q);
}

static int stop_self(const void *arg, size_t len, mp_result *res)
{
    (void)arg;
    (void)len;
    (void)res;
    raise(SIGSTOP);
    return 0;
}

MP_TEST(stopped_pool_worker_timeouts_hold)
{
    for (int k = 0; k < 3; k++) {
        mp_pool *pool;
        mp_pool_opts o = {.processes = 1, .start = mp_test_methods[k]};
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        mp_async *a;
        mp_ck_code(mp_pool_apply_async(pool, stop_self, NULL, 0, &a), 0);
        mp_test_sleep(MP_T(0.2)); /* let it stop */
        within(mp_async_wait(a, 0), 0, MP_EBUSY);
        within(mp_async_wait(a, 0.2), 0.2, MP_EBUSY);
        within(mp_async_get(a, NULL, NULL, 0.2), 0.2, MP_EBUSY);
        mp_ck_code(mp_pool_close(pool), 0);
        within(mp_pool_join(pool, 0.2), 0.2, MP_ETIMEDOUT);
        mp_ck_code(mp_pool_terminate(pool), 0);
        mp_ck_code(mp_async_get(a, NULL, NULL, MP_T(5)), MP_EBROKEN);
        mp_async_free(a);
        mp_ck_code(mp_pool_join(pool, MP_T(5)), 0);
        mp_pool_free(pool);
    }
}

/* ---- killed between a commit and its wake-up --------------------------
 */

static int die_at; /* the sync or queue step at which to die */

static void die_hook(int step)
{
    if (step == die_at)
        raise(SIGKILL);
}

static int t_release_and_die(void *arg)
{
    die_at = MP__SYNC_SEM_RELEASED;
    mp__sync_fault_hook = die_hook;
    return mp_semaphore_release(arg);
}

static int t_set_and_die(void *arg)
{
    die_at = MP__SYNC_EVENT_SET;
    mp__sync_fault_hook = die_hook;
    return mp_event_set(arg);
}

static int t_task_done_and_die(void *arg)
{
    die_at = MP__QT_COUNTED;
    mp__queue_fault_hook = die_hook;
    return mp_queue_task_done(arg);
}

/* The sleeper is this process, asleep before the killer commits. */
MP_TEST(killed_releaser_does_not_strand_sleepers)
{
    mp_semaphore *s;
    mp_ck_code(mp_semaphore_new(&s, 0, 0), 0);
    mp_process *p = mp_test_start(t_release_and_die, s, 0, MP_START_FORK);
    double t0 = mp_test_now();
    mp_ck_code(mp_semaphore_acquire(s, MP_T(5)), 0);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGKILL);
    ck_assert_msg(mp_test_now() - t0 < MP_T(1), "stranded %.3f s",
                  mp_test_now() - t0);
    mp_semaphore_free(s);
}

MP_TEST(killed_setter_does_not_strand_sleepers)
{
    mp_event *e;
    mp_ck_code(mp_event_new(&e), 0);
    mp_process *p = mp_test_start(t_set_and_die, e, 0, MP_START_FORK);
    double t0 = mp_test_now();
    ck_assert_int_eq(mp_event_wait(e, MP_T(5)), 1);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGKILL);
    ck_assert_msg(mp_test_now() - t0 < MP_T(1), "stranded");
    mp_event_free(e);
}

MP_TEST(killed_task_done_caller_does_not_strand_joiners)
{
    mp_queue *q;
    mp_queue_opts o = {.joinable = 1};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    char m[8] = "job";
    mp_ck_code(mp_queue_put(q, m, sizeof m, 0), 0);
    ck_assert_int_eq(mp_queue_get(q, m, sizeof m, 0), (ssize_t)sizeof m);
    mp_process *p = mp_test_start(t_task_done_and_die, q, 0, MP_START_FORK);
    double t0 = mp_test_now();
    mp_ck_code(mp_queue_join(q, MP_T(5)), 0);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGKILL);
    ck_assert_msg(mp_test_now() - t0 < MP_T(1), "stranded");
    mp_queue_free(q);
}

/* ---- a program that reaps with its own SIGCHLD handler ----------------
 */

static void reap_all(int sig)
{
    (void)sig;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = e;
}

static int exit7(void *arg)
{
    (void)arg;
    return 7;
}

static int triple(const void *in, void *out)
{
    *(int64_t *)out = *(const int64_t *)in * 3;
    return 0;
}

MP_TEST(sigchld_reaper_does_not_hang_joins)
{
    struct sigaction sa = {.sa_handler = reap_all, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    struct sigaction old;
    sigaction(SIGCHLD, &sa, &old);
    for (int k = 0; k < 3; k++) {
        mp_start_method m = mp_test_methods[k];
        mp_process *p = mp_test_start(exit7, NULL, 0, m);
        mp_test_sleep(MP_T(0.3)); /* ended, and maybe reaped by the handler */
        within(mp_process_join(p, 0.2), 0, 0);
        ck_assert_int_eq(mp_process_is_alive(p), 0);
        int code = -1;
        int r = mp_process_exitcode(p, &code);
        /* The handler steals fork and spawn children's statuses; a
           forkserver child is the server's child, not ours. */
        if (r == 0)
            ck_assert_int_eq(code, 7);
        else
            mp_ck_code(r, MP_ECHILD);
        ck_assert_msg(m == MP_START_FORKSERVER ? r == 0 : 1,
                      "forkserver code lost");
        mp_process_free(p);
        mp_pool *pool;
        mp_pool_opts o = {.processes = 2, .start = m};
        mp_ck_code(mp_pool_new(&pool, &o), 0);
        int64_t in[100], out[100];
        for (int i = 0; i < 100; i++)
            in[i] = i;
        mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, 100, NULL), 0);
        for (int i = 0; i < 100; i++)
            ck_assert_int_eq(out[i], 3 * i);
        /* Workers dying while the handler takes their statuses (a
           replacement may even die before its start adopts it): exactly
           those items fail, nothing hangs. Eight rounds: it was a race. */
        for (int round = 0; round < 8; round++) {
            struct item it[50];
            int64_t o2[50];
            int st[50];
            for (int i = 0; i < 50; i++)
                it[i] = (struct item){i % 7 == 3 ? L_ABORT : -1, i};
            mp_map_opts mo = {.chunksize = 1, .status = st};
            mp_ck_code(
                mp_pool_map(pool, leaver, it, sizeof it[0], o2, 8, 50, &mo),
                MP_EWORKERDIED);
            for (int i = 0; i < 50; i++)
                mp_ck_code(st[i], i % 7 == 3 ? MP_EWORKERDIED : 0);
        }
        mp_ck_code(mp_pool_close(pool), 0);
        mp_ck_code(mp_pool_join(pool, MP_T(10)), 0);
        mp_pool_free(pool);
    }
    sigaction(SIGCHLD, &old, NULL);
}

/* ---- absurd lengths --------------------------------------------------
 */

static int init_nothing(void *arg)
{
    (void)arg;
    return 0;
}

static const size_t absurd[] = {SIZE_MAX, SIZE_MAX / 2, (size_t)SSIZE_MAX + 1};

static int echo(const void *arg, size_t len, mp_result *res)
{
    return mp_result_set(res, arg, len);
}

/* An apply function that sets absurd result lengths: 0 when every one
   was refused, else 1. */
static int absurd_result(const void *arg, size_t len, mp_result *res)
{
    (void)arg;
    (void)len;
    for (size_t i = 0; i < sizeof absurd / sizeof absurd[0]; i++)
        if (mp_result_set(res, "x", absurd[i]) >= 0)
            return 1;
    return mp_result_set(res, "ok", 2);
}

MP_TEST(absurd_lengths_are_refused_and_objects_stay_intact)
{
    char buf[64] = "intact";
    mp_queue *q;
    mp_queue_opts o = {.capacity = 4096};
    mp_ck_code(mp_queue_new(&q, &o), 0);
    void *blk = mp_shared_alloc(64);
    mp_conn *a, *b;
    mp_ck_code(mp_pipe_new(&a, &b, 1), 0);
    mp_pool *pool;
    mp_pool_opts po = {.processes = 1};
    mp_ck_code(mp_pool_new(&pool, &po), 0);
    size_t lens[4] = {absurd[0], absurd[1], absurd[2], 4096 + 1};
    for (int i = 0; i < 4; i++) {
        size_t n = lens[i];
        mp_ck_code(mp_queue_put(q, buf, n, 0), MP_EMSGSIZE);
        int r = mp_queue_put_ref(q, blk, n, 0);
        ck_assert_msg(r == MP_EINVAL || r == MP_EMSGSIZE, "put_ref: %s",
                      mp_err_name(r));
        if (i < 3) {
            /* (capacity + 1 is a fine message for a connection.) */
            r = mp_conn_send(a, buf, n, 0);
            ck_assert_msg(r == MP_EMSGSIZE || r == MP_EINVAL, "send: %s",
                          mp_err_name(r));
            ck_assert_ptr_null(mp_shared_alloc(n));
            r = mp_pool_apply(pool, echo, buf, n, NULL, NULL);
            ck_assert_msg(r == MP_EMSGSIZE || r == MP_EINVAL || r == MP_ENOMEM,
                          "apply: %s", mp_err_name(r));
            int64_t one = 1, out;
            r = mp_pool_map(pool, triple, &one, n, &out, 8, 1, NULL);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "map in: %s",
                          mp_err_name(r));
            r = mp_pool_map(pool, triple, &one, 8, &out, n, 1, NULL);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "map out: %s",
                          mp_err_name(r));
            r = mp_pool_map(pool, triple, &one, 8, &out, 8, n, NULL);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "map n: %s",
                          mp_err_name(r));
            mp_imap *it;
            r = mp_pool_imap(pool, triple, &one, n, 8, 1, NULL, &it);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "imap in: %s",
                          mp_err_name(r));
            r = mp_pool_imap(pool, triple, &one, 8, n, 1, NULL, &it);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "imap out: %s",
                          mp_err_name(r));
            int fd0 = 0;
            mp_ck_code(mp_wait(&fd0, n, NULL, 0), MP_EINVAL);
            mp_pool *bad;
            mp_pool_opts bo = {.processes = 1,
                               .initializer = init_nothing,
                               .initarg = buf,
                               .initarg_size = n};
            r = mp_pool_new(&bad, &bo);
            if (r == 0)
                mp_pool_free(bad);
            ck_assert_msg(r == MP_EINVAL || r == MP_ENOMEM, "pool_new: %s",
                          mp_err_name(r));
            mp_process *p;
            mp_process_opts popt = {.start = MP_START_SPAWN, .arg_size = n};
            mp_ck_code(mp_process_new(&p, exit7, buf, &popt), 0);
            r = mp_process_start(p);
            ck_assert_msg(r == MP_ENOMEM || r == MP_EINVAL, "start: %s",
                          mp_err_name(r));
            mp_process_free(p);
        }
    }
    void *res = NULL;
    size_t rl = 0;
    mp_ck_code(mp_pool_apply(pool, absurd_result, NULL, 0, &res, &rl), 0);
    ck_assert_int_eq(rl, 2);
    free(res);
    /* Everything still works. */
    mp_ck_code(mp_queue_put(q, buf, 7, 0), 0);
    ck_assert_int_eq(mp_queue_qsize(q), 1);
    char got[64];
    ck_assert_int_eq(mp_queue_get(q, got, sizeof got, 0), 7);
    ck_assert_str_eq(got, "intact");
    mp_ck_code(mp_conn_send(a, buf, 7, 0), 0);
    ck_assert_int_eq(mp_conn_recv(b, got, sizeof got, MP_T(5)), 7);
    ck_assert_str_eq(got, "intact");
    mp_ck_code(mp_pool_apply(pool, echo, buf, 7, &res, &rl), 0);
    ck_assert_int_eq(rl, 7);
    ck_assert_str_eq(res, "intact");
    free(res);
    mp_pool_free(pool);
    mp_conn_close(a);
    mp_conn_close(b);
    mp_shared_free(blk);
    mp_queue_free(q);
}

/* ---- forged boot values and descriptors --------------------------------
 */

/* Run BOOT_VICTIM_PATH (a program that calls mp_init and says what it
   did) with MP__BOOT=boot (NULL: unset) and, when memfd >= 0, memfd and
   lifeline at descriptors 3 and 4; as user uid when uid >= 0 (needs
   root). Returns its exit status (-signal), its output in out. */
static int run_victim(const char *path, const char *boot, int memfd,
                      int lifeline, int uid, char *out, size_t outlen)
{
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        if (memfd >= 0) {
            dup2(memfd, 3);
            dup2(lifeline, 4);
            fcntl(3, F_SETFD, 0);
            fcntl(4, F_SETFD, 0);
        }
        if (boot != NULL)
            setenv("MP__BOOT", boot, 1);
        else
            unsetenv("MP__BOOT");
        if (uid >= 0 && (setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
            _exit(120);
        execl(path, path, (char *)NULL);
        _exit(121);
    }
    close(pfd[1]);
    size_t n = 0;
    ssize_t k;
    while (n + 1 < outlen && (k = read(pfd[0], out + n, outlen - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = '\0';
    close(pfd[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

MP_TEST(stray_and_malformed_boot_values_are_ignored)
{
    char huge[600];
    memset(huge, 'c', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    char plausible[128];
    snprintf(plausible, sizeof plausible,
             "c,3,7f0000000000,100000000,0,4,%d,-1", (int)getpid());
    const char *values[] = {"1",
                            "",
                            "c",
                            "s,3,4",
                            huge,
                            plausible,
                            "c,3,0,0,0,4,1,-1",
                            "c,3,7f0000000000,100000000,0,4,1,-1,extra",
                            "c,3,7f0000000000,100000000,0,4,1,-1,",
                            "c,,7f0000000000,100000000,0,4,1,-1",
                            "c,3,7F0000000000,100000000,0,4,1,-1",
                            "c,3,17f0000000000000,100000000,0,4,1,-1",
                            "c,3,7f0000000000,100000000,0,4,99999999999,-1",
                            "c,-3,7f0000000000,100000000,0,4,1,-1",
                            "c,3,7f0000000000,100000000,0,4,1,--1",
                            "c,3,7f0000000000,100000000,0,4,1,-1 ",
                            "s,3,7f0000000000,100000000,41,4,1,5",
                            "x,3,7f0000000000,100000000,0,4,1,-1"};
    char out[256];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int code = run_victim(BOOT_VICTIM_PATH, values[i], -1, -1, -1, out,
                              sizeof out);
        ck_assert_msg(code == 0 && strstr(out, "victim: main ran") != NULL,
                      "MP__BOOT=\"%.40s\": status %d, output \"%s\"", values[i],
                      code, out);
        ck_assert_msg(strstr(out, "MP__BOOT gone") != NULL,
                      "MP__BOOT=\"%.40s\" left in the environment", values[i]);
    }
    /* Forged descriptors that pass the name and size checks but are no
       arena (zeros), naming a starter that is not the parent: main. */
    size_t size = 1 << 20;
    int memfd = memfd_create(MP__ARENA_NAME, 0), life[2];
    ck_assert_int_ge(memfd, 0);
    ck_assert_int_eq(ftruncate(memfd, (off_t)size), 0);
    ck_assert_int_eq(pipe(life), 0);
    snprintf(plausible, sizeof plausible, "c,3,100000000000,%zx,1000,4,%d,-1",
             size, 999999);
    int code = run_victim(BOOT_VICTIM_PATH, plausible, memfd, life[0], -1, out,
                          sizeof out);
    ck_assert_msg(code == 0 && strstr(out, "victim: main ran") != NULL,
                  "unformatted forged arena: status %d, output \"%s\"", code,
                  out);
    close(memfd);
    close(life[0]);
    close(life[1]);
}

/* A forged boot, as an attacker with its own family would make it: this
   process's real arena (dup'ed to an inheritable descriptor), a launch
   block in it naming boot_evil_target in BOOT_EVIL_PATH, and a pipe as
   the lifeline; the value names this process as the parent. */
struct forged {
    int memfd, life[2];
    mp_process *p;
    struct mp__launch *L;
    char boot[160];
};

static void forge(struct forged *f)
{
    void *so = dlopen(BOOT_EVIL_PATH, RTLD_NOW);
    ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
    mp_target_fn fn;
    void *sym = dlsym(so, "boot_evil_target");
    ck_assert_ptr_nonnull(sym);
    memcpy(&fn, &sym, sizeof fn);
    mp_process_opts o = {.start = MP_START_SPAWN};
    mp_ck_code(mp_process_new(&f->p, fn, NULL, &o), 0);
    int err = 0;
    f->L = mp__launch_new(f->p, &err);
    ck_assert_msg(f->L != NULL, "launch block: %s", mp_err_name(err));
    f->memfd = dup(mp__g.arena_fd); /* without close-on-exec */
    ck_assert_int_ge(f->memfd, 0);
    ck_assert_int_eq(pipe(f->life), 0);
    snprintf(f->boot, sizeof f->boot, "c,3,%lx,%zx,%llx,4,%d,-1",
             (unsigned long)(uintptr_t)mp__g.arena, mp__g.arena_size,
             (unsigned long long)mp__arena_off(f->L), (int)getpid());
}

static void unforge(struct forged *f)
{
    close(f->memfd);
    close(f->life[0]);
    close(f->life[1]);
    mp_shared_free(f->L);
    mp_process_free(f->p);
}

MP_TEST(forged_boot_in_privileged_program_is_refused)
{
    if (geteuid() != 0) {
        printf("skipped: needs root to make a setuid-root copy and run it "
               "as another user\n");
        return;
    }
    struct forged f;
    forge(&f);
    char out[512];
    /* The control: the same forgery against the program run plainly is
       taken for a real boot (the attacker gains nothing there: it is its
       own program), which shows the forgery is good enough to matter. */
    int code = run_victim(BOOT_VICTIM_PATH, f.boot, f.memfd, f.life[0], -1, out,
                          sizeof out);
    ck_assert_msg(code == 42 && strstr(out, "evil ran") != NULL,
                  "control: status %d, output \"%s\"", code, out);
    /* A setuid-root copy, run by an unprivileged user with that forgery:
       refused, nothing loaded, main runs. */
    char dir[] = "/var/tmp/mp-setuid-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_eq(chmod(dir, 0755), 0);
    char copy[128], cmd[512];
    snprintf(copy, sizeof copy, "%s/victim", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", BOOT_VICTIM_PATH, copy);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(chown(copy, 0, 0), 0);
    ck_assert_int_eq(chmod(copy, 04755), 0);
    code = run_victim(copy, f.boot, f.memfd, f.life[0], 65534, out, sizeof out);
    unlink(copy);
    rmdir(dir);
    unforge(&f);
    if (strstr(out, "euid 0") == NULL) {
        printf("skipped: the setuid copy did not run as root here (%s)\n", out);
        return;
    }
    ck_assert_msg(code == 0 && strstr(out, "victim: main ran") != NULL &&
                      strstr(out, "evil") == NULL,
                  "status %d, output \"%s\"", code, out);
}

/* ---- descriptors of spawned children -----------------------------------
 */

/* In the child: 1 if descriptor 57 is open. */
static int t_fd57_open(void *arg)
{
    (void)arg;
    return fcntl(57, F_GETFD) >= 0;
}

/* In the child: the number of its open descriptors. */
static int t_count_fds(void *arg)
{
    (void)arg;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

MP_TEST(spawned_children_get_only_their_own_descriptors)
{
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: inheritable */
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 57), 57);
    close(fd);
    for (int k = 1; k < 3; k++) {
        mp_start_method m = mp_test_methods[k];
        ck_assert_int_eq(
            mp_test_finish(mp_test_start(t_fd57_open, NULL, 0, m), MP_T(10)),
            0);
        /* Standard input, output, error; the arena; the armed lifeline.
         */
        int n =
            mp_test_finish(mp_test_start(t_count_fds, NULL, 0, m), MP_T(10));
        ck_assert_msg(n <= 5, "method %d: %d descriptors", k, n);
    }
    close(57);
}

/* ---- a worker stopped between its claim and its first item ------------
 */

static int *stop_once; /* shared: the first worker to claim stops */

static void stop_first_claim(int step)
{
    if (step == MP__PW_CLAIMED && __atomic_exchange_n(stop_once, 0, 0))
        raise(SIGSTOP);
}

MP_TEST(worker_stopped_after_claim_is_seen_by_task_timeout)
{
    stop_once = mp_shared_alloc(sizeof *stop_once);
    *stop_once = 1;
    mp__pool_fault_hook = stop_first_claim; /* fork workers inherit it */
    mp_pool *pool;
    mp_pool_opts o = {
        .processes = 2, .start = MP_START_FORK, .task_timeout = 0.3};
    mp_ck_code(mp_pool_new(&pool, &o), 0);
    enum { N = 64 };
    int64_t in[N], out[N];
    int st[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    mp_map_opts mo = {.chunksize = 4, .status = st};
    double t0 = mp_test_now();
    /* The stopped worker's chunk runs again elsewhere once the timeout
       kills it: nothing fails, nothing hangs. */
    mp_ck_code(mp_pool_map(pool, triple, in, 8, out, 8, N, &mo), 0);
    ck_assert_msg(mp_test_now() - t0 < MP_T(5), "map took %.2f s",
                  mp_test_now() - t0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(out[i], 3 * i);
    ck_assert_int_eq(*stop_once, 0); /* it did stop */
    mp_pool_free(pool);
    mp__pool_fault_hook = NULL;
    mp_shared_free(stop_once);
}

/* ---- a task that forks, and whose fork child returns from it too ------
 */

static int fork_in_task(const void *in, void *out)
{
    int64_t v = *(const int64_t *)in;
    if (v == 5)
        fork(); /* both copies return into the worker */
    *(int64_t *)out = v * 3;
    return 0;
}

MP_TEST(task_fork_child_does_not_act_as_a_worker)
{
    enum { N = 40 };
    int64_t in[N], out[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    for (int k = 0; k < 3; k++) {
        for (int round = 0; round < 3; round++) {
            mp_pool *pool;
            mp_pool_opts o = {.processes = 2, .start = mp_test_methods[k]};
            mp_ck_code(mp_pool_new(&pool, &o), 0);
            mp_map_opts mo = {.chunksize = 1};
            mp_ck_code(mp_pool_map(pool, fork_in_task, in, 8, out, 8, N, &mo),
                       0);
            for (int i = 0; i < N; i++)
                ck_assert_int_eq(out[i], 3 * i);
            mp_ck_code(mp_pool_close(pool), 0);
            mp_ck_code(mp_pool_join(pool, MP_T(10)), 0);
            mp_pool_free(pool);
            const char *why = NULL;
            mp_ck_code(mp__arena_check(&why), 0);
        }
    }
    /* The fork children left at once; as zombies of workers that never
       waited, they came back to this process (a subreaper): reap them. */
    for (int i = 0; i < 30; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        mp_test_sleep(0.01);
    }
}
