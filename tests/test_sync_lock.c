/* test_sync_lock.c - Lock, RLock and Condition across processes: exclusion,
   timeouts, Python's semantics, dead holders and waiters, bad inputs. */
#include "harness.h"

#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Lock ----------------------------------------------------------------
 */

MP_TEST(lock_basics)
{
    /* CPython's test_lock, with C's answers. */
    mp_lock *l;
    mp_ck_code(mp_lock_new(&l), 0);
    ck_assert_int_eq(mp_lock_locked(l), 0);
    mp_ck_code(mp_lock_acquire(l, MP_FOREVER), 0);
    ck_assert_int_eq(mp_lock_locked(l), 1);
    /* Not recursive: a second acquire by the holder would never end. */
    mp_ck_code(mp_lock_acquire(l, 0), MP_EDEADLK);
    mp_ck_code(mp_lock_acquire(l, 0.1), MP_EDEADLK);
    mp_ck_code(mp_lock_release(l), 0);
    ck_assert_int_eq(mp_lock_locked(l), 0);
    mp_ck_code(mp_lock_release(l), MP_EPERM);
    mp_ck_code(mp_lock_acquire(l, 0), 0);
    mp_ck_code(mp_lock_release(l), 0);
    mp_lock_free(l);
}

/* shared - state the lock tests share with their children. */
struct shared {
    mp_lock *lock;
    mp_rlock *rlock;
    mp_condition *cond;
    mp_semaphore *sem;   /* "holding" / "sleeping" signals */
    mp_semaphore *woken; /* condition waiters that returned */
    long counter;
    int state;
    int how; /* how a holder dies, or a flag */
    double timeout;
};

static struct shared *new_shared(void)
{
    struct shared *s = mp_shared_alloc(sizeof *s);
    ck_assert_ptr_nonnull(s);
    mp_ck_code(mp_lock_new(&s->lock), 0);
    mp_ck_code(mp_rlock_new(&s->rlock), 0);
    mp_ck_code(mp_semaphore_new(&s->sem, 0, 0), 0);
    mp_ck_code(mp_semaphore_new(&s->woken, 0, 0), 0);
    return s;
}

static void free_shared(struct shared *s)
{
    mp_lock_free(s->lock);
    mp_rlock_free(s->rlock);
    mp_condition_free(s->cond);
    mp_semaphore_free(s->sem);
    mp_semaphore_free(s->woken);
    mp_shared_free(s);
}

/* A child that must find the lock busy, at once and after a timeout. */
static int t_lock_busy(void *arg)
{
    struct shared *s = arg;
    if (mp_lock_acquire(s->lock, 0) != MP_ETIMEDOUT)
        return 1;
    if (mp_lock_release(s->lock) != MP_EPERM) /* not ours to release */
        return 2;
    double t0 = mp_test_now();
    if (mp_lock_acquire(s->lock, 0.2) != MP_ETIMEDOUT)
        return 3;
    double el = mp_test_now() - t0;
    return el >= 0.2 && el < MP_T(1.5) ? 0 : 4;
}

MP_TEST(lock_timeout_across_processes)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_lock_acquire(s->lock, MP_FOREVER), 0);
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(
            mp_test_finish(mp_test_start(t_lock_busy, s, 0, mp_test_methods[k]),
                           MP_T(30)),
            0);
    mp_ck_code(mp_lock_release(s->lock), 0);
    free_shared(s);
}

enum { INCREMENTS = 20000 };

/* Increment a plain counter under the lock. */
static int t_increment(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < INCREMENTS; i++) {
        if (mp_lock_acquire(s->lock, MP_FOREVER) != 0)
            return 1;
        s->counter++; /* not atomic: only the lock makes it exact */
        if (mp_lock_release(s->lock) != 0)
            return 2;
    }
    return 0;
}

MP_TEST(mutual_exclusion_every_method)
{
    /* 4 processes x 20,000 increments, for each start method. */
    for (int k = 0; k < 3; k++) {
        struct shared *s = new_shared();
        mp_process *p[4];
        for (int i = 0; i < 4; i++)
            p[i] = mp_test_start(t_increment, s, 0, mp_test_methods[k]);
        for (int i = 0; i < 4; i++)
            ck_assert_int_eq(mp_test_finish(p[i], MP_T(120)), 0);
        ck_assert_int_eq(s->counter, 4L * INCREMENTS);
        free_shared(s);
    }
}

/* How a holder dies with the lock held. */
enum { DIE_KILLED, DIE_SEGV, DIE_EXIT, DIE_RETURN };

static int t_hold_and_die(void *arg)
{
    struct shared *s = arg;
    if (mp_lock_acquire(s->lock, MP_FOREVER) != 0)
        return 100;
    mp_semaphore_release(s->sem); /* tell the test we hold it */
    switch (s->how) {
    case DIE_SEGV:
        signal(SIGSEGV, SIG_DFL);
        *(volatile int *)(uintptr_t)4096 = 1;
        break;
    case DIE_EXIT:
        exit(7);
    case DIE_RETURN:
        return 0;
    default:
        mp_test_sleep(60); /* until killed */
    }
    return 1;
}

MP_TEST(dead_holder_hands_lock_on)
{
    for (int how = DIE_KILLED; how <= DIE_RETURN; how++) {
        for (int k = 0; k < 3; k++) {
            struct shared *s = new_shared();
            s->how = how;
            mp_process *p =
                mp_test_start(t_hold_and_die, s, 0, mp_test_methods[k]);
            mp_ck_code(mp_semaphore_acquire(s->sem, MP_T(30)), 0);
            if (how == DIE_KILLED)
                mp_process_kill(p);
            mp_test_finish(p, MP_T(30));
            double t0 = mp_test_now();
            mp_ck_code(mp_lock_acquire(s->lock, MP_T(5)), MP_EOWNERDEAD);
            ck_assert(mp_test_now() - t0 < MP_T(1.0));
            /* The lock stays usable. */
            mp_ck_code(mp_lock_release(s->lock), 0);
            mp_ck_code(mp_lock_acquire(s->lock, 0), 0);
            mp_ck_code(mp_lock_release(s->lock), 0);
            free_shared(s);
        }
    }
}

static int t_hold_then_die(void *arg)
{
    struct shared *s = arg;
    if (mp_lock_acquire(s->lock, MP_FOREVER) != 0)
        return 100;
    mp_semaphore_release(s->sem);
    mp_test_sleep(MP_T(0.3)); /* the test is asleep in acquire by then */
    raise(SIGKILL);
    return 1;
}

MP_TEST(waiter_woken_when_holder_dies)
{
    /* Already asleep in acquire when the holder is killed: the kernel
       wakes the waiter at once. */
    struct shared *s = new_shared();
    mp_process *p = mp_test_start(t_hold_then_die, s, 0, MP_START_FORK);
    mp_ck_code(mp_semaphore_acquire(s->sem, MP_T(30)), 0);
    double t0 = mp_test_now();
    mp_ck_code(mp_lock_acquire(s->lock, MP_T(10)), MP_EOWNERDEAD);
    double el = mp_test_now() - t0;
    ck_assert_msg(el < MP_T(1.0), "woke after %.3f s", el);
    ck_assert_int_eq(mp_test_finish(p, MP_T(10)), -SIGKILL);
    mp_ck_code(mp_lock_release(s->lock), 0);
    free_shared(s);
}

static void *thread_takes_lock(void *arg)
{
    mp_lock_acquire(arg, MP_FOREVER);
    return NULL; /* the thread ends holding it */
}

MP_TEST(dead_thread_hands_lock_on)
{
    mp_lock *l;
    mp_ck_code(mp_lock_new(&l), 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_takes_lock, l);
    pthread_join(t, NULL);
    mp_ck_code(mp_lock_acquire(l, MP_T(1)), MP_EOWNERDEAD);
    mp_ck_code(mp_lock_release(l), 0);
    mp_lock_free(l);
}

/* mailbox - where a lock made later by one child reaches another. */
struct mailbox {
    mp_lock *volatile lock;
    volatile int stage; /* 1: lock posted, 2: taken by the user */
};

static int t_make_lock(void *arg)
{
    struct mailbox *m = arg;
    mp_lock *l;
    if (mp_lock_new(&l) != 0 || mp_lock_acquire(l, 0) != 0)
        return 1;
    m->lock = l;
    m->stage = 1;
    for (int i = 0; i < 10000 && m->stage != 2; i++)
        mp_test_sleep(MP_T(0.001)); /* 10 s in all, scaled */
    /* The user timed out on it while we held it; now let it in. */
    if (mp_lock_release(l) != 0)
        return 2;
    for (int i = 0; i < 10000 && m->stage != 3; i++)
        mp_test_sleep(MP_T(0.001)); /* 10 s in all, scaled */
    mp_lock_free(l);
    return m->stage == 3 ? 0 : 3;
}

static int t_use_posted_lock(void *arg)
{
    struct mailbox *m = arg;
    for (int i = 0; i < 10000 && m->stage != 1; i++)
        mp_test_sleep(MP_T(0.001)); /* 10 s in all, scaled */
    if (m->stage != 1 || mp_lock_acquire(m->lock, 0.05) != MP_ETIMEDOUT)
        return 1;
    m->stage = 2;
    if (mp_lock_acquire(m->lock, MP_T(10)) != 0)
        return 2;
    mp_lock_release(m->lock);
    m->stage = 3;
    return 0;
}

MP_TEST(lock_reaches_process_through_shared_memory)
{
    /* The user starts before the lock exists; the lock's pointer reaches
       it through shared memory, not inheritance. Every method pair. */
    for (int k = 0; k < 3; k++) {
        struct mailbox *m = mp_shared_alloc(sizeof *m);
        mp_process *user =
            mp_test_start(t_use_posted_lock, m, 0, mp_test_methods[k]);
        mp_process *maker =
            mp_test_start(t_make_lock, m, 0, mp_test_methods[(k + 1) % 3]);
        ck_assert_int_eq(mp_test_finish(user, MP_T(60)), 0);
        ck_assert_int_eq(mp_test_finish(maker, MP_T(60)), 0);
        mp_shared_free(m);
    }
}

/* ---- RLock -------------------------------------------------------------
 */

static int t_rlock_busy(void *arg)
{
    struct shared *s = arg;
    return mp_rlock_acquire(s->rlock, 0) == MP_ETIMEDOUT ? 0 : 1;
}

static int t_rlock_free(void *arg)
{
    struct shared *s = arg;
    if (mp_rlock_acquire(s->rlock, 0) != 0)
        return 1;
    return mp_rlock_release(s->rlock) == 0 ? 0 : 2;
}

MP_TEST(rlock_basics)
{
    /* CPython's test_rlock. */
    struct shared *s = new_shared();
    for (int i = 0; i < 3; i++)
        mp_ck_code(mp_rlock_acquire(s->rlock, MP_FOREVER), 0);
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    ck_assert_int_eq(
        mp_test_finish(mp_test_start(t_rlock_busy, s, 0, MP_START_FORK),
                       MP_T(30)),
        0);
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    mp_ck_code(mp_rlock_release(s->rlock), MP_EPERM);
    ck_assert_int_eq(
        mp_test_finish(mp_test_start(t_rlock_free, s, 0, MP_START_SPAWN),
                       MP_T(30)),
        0);
    free_shared(s);
}

static int t_rlock_hold_and_die(void *arg)
{
    struct shared *s = arg;
    for (int i = 0; i < 3; i++)
        mp_rlock_acquire(s->rlock, MP_FOREVER);
    mp_semaphore_release(s->sem);
    mp_test_sleep(60);
    return 1;
}

MP_TEST(rlock_dead_holder)
{
    struct shared *s = new_shared();
    mp_process *p =
        mp_test_start(t_rlock_hold_and_die, s, 0, MP_START_FORKSERVER);
    mp_ck_code(mp_semaphore_acquire(s->sem, MP_T(30)), 0);
    mp_process_kill(p);
    mp_test_finish(p, MP_T(30));
    mp_ck_code(mp_rlock_acquire(s->rlock, MP_T(5)), MP_EOWNERDEAD);
    /* Depth 1, whatever the dead holder's depth: one release frees it. */
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    ck_assert_int_eq(
        mp_test_finish(mp_test_start(t_rlock_free, s, 0, MP_START_FORK),
                       MP_T(30)),
        0);
    free_shared(s);
}

/* ---- Condition ---------------------------------------------------------
 */

/* CPython's worker f: tell we are about to sleep, wait, tell we woke. */
static int t_cond_waiter(void *arg)
{
    struct shared *s = arg;
    if (mp_condition_acquire(s->cond, MP_FOREVER) != 0)
        return 1;
    mp_semaphore_release(s->sem);
    int r = mp_condition_wait(s->cond, s->timeout);
    mp_semaphore_release(s->woken);
    mp_condition_release(s->cond);
    return r == 0 || r == MP_ETIMEDOUT ? 0 : 2;
}

static void *thread_cond_waiter(void *arg)
{
    return (void *)(intptr_t)t_cond_waiter(arg);
}

/* Wait until the woken count reaches n (or 10 s pass, scaled); its
   value. */
static int woken_reaches(struct shared *s, int n)
{
    for (int i = 0; i < 1000 && mp_semaphore_value(s->woken) < n; i++)
        mp_test_sleep(MP_T(0.01));
    return mp_semaphore_value(s->woken);
}

/* Start np processes (methods in turn) and nt threads of t_cond_waiter
   and wait until all of them are about to sleep. */
static void start_waiters(struct shared *s, mp_process **p, int np,
                          pthread_t *t, int nt)
{
    for (int i = 0; i < np; i++)
        p[i] = mp_test_start(t_cond_waiter, s, 0, mp_test_methods[i % 3]);
    for (int i = 0; i < nt; i++)
        pthread_create(&t[i], NULL, thread_cond_waiter, s);
    for (int i = 0; i < np + nt; i++)
        mp_ck_code(mp_semaphore_acquire(s->sem, MP_T(30)), 0);
}

static void finish_waiters(mp_process **p, int np, pthread_t *t, int nt)
{
    for (int i = 0; i < np; i++)
        ck_assert_int_eq(mp_test_finish(p[i], MP_T(30)), 0);
    for (int i = 0; i < nt; i++) {
        void *r;
        pthread_join(t[i], &r);
        ck_assert_int_eq((int)(intptr_t)r, 0);
    }
}

static void notify(struct shared *s, int n)
{
    mp_ck_code(mp_condition_acquire(s->cond, MP_FOREVER), 0);
    if (n < 0)
        mp_ck_code(mp_condition_notify_all(s->cond), 0);
    else
        mp_ck_code(mp_condition_notify(s->cond, n), 0);
    mp_ck_code(mp_condition_release(s->cond), 0);
}

MP_TEST(condition_notify)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    s->timeout = MP_FOREVER;
    mp_process *p[1];
    pthread_t t[1];
    start_waiters(s, p, 1, t, 1);
    mp_test_sleep(MP_T(0.1)); /* the waiters are asleep by then */
    ck_assert_int_eq(mp_semaphore_value(s->woken), 0);
    notify(s, 1);
    ck_assert_int_eq(woken_reaches(s, 1), 1);
    notify(s, 1);
    ck_assert_int_eq(woken_reaches(s, 2), 2);
    finish_waiters(p, 1, t, 1);
    free_shared(s);
}

MP_TEST(condition_notify_all)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    mp_process *p[3];
    pthread_t t[3];
    /* Six waiters that time out. */
    s->timeout = 0.1;
    start_waiters(s, p, 3, t, 3);
    for (int i = 0; i < 6; i++)
        mp_ck_code(mp_semaphore_acquire(s->woken, MP_T(30)), 0);
    finish_waiters(p, 3, t, 3);
    /* Six that wait for good, all woken by one notify_all. */
    s->timeout = MP_FOREVER;
    start_waiters(s, p, 3, t, 3);
    mp_test_sleep(MP_T(0.1)); /* the waiters are asleep by then */
    ck_assert_int_eq(mp_semaphore_value(s->woken), 0);
    notify(s, -1);
    ck_assert_int_eq(woken_reaches(s, 6), 6);
    finish_waiters(p, 3, t, 3);
    free_shared(s);
}

MP_TEST(condition_notify_n)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    s->timeout = MP_FOREVER;
    mp_process *p[3];
    pthread_t t[3];
    start_waiters(s, p, 3, t, 3);
    mp_test_sleep(MP_T(0.1)); /* the waiters are asleep by then */
    ck_assert_int_eq(mp_semaphore_value(s->woken), 0);
    notify(s, 2);
    ck_assert_int_eq(woken_reaches(s, 2), 2);
    mp_test_sleep(MP_T(0.1));
    ck_assert_int_eq(mp_semaphore_value(s->woken), 2); /* not more */
    notify(s, 4);
    ck_assert_int_eq(woken_reaches(s, 6), 6);
    finish_waiters(p, 3, t, 3);
    /* No waiters: nothing happens and nothing is kept for later. */
    notify(s, 3);
    start_waiters(s, p, 1, t, 0);
    mp_test_sleep(MP_T(0.2));
    ck_assert_int_eq(mp_semaphore_value(s->woken), 6);
    notify(s, 1);
    ck_assert_int_eq(woken_reaches(s, 7), 7);
    finish_waiters(p, 1, t, 0);
    free_shared(s);
}

MP_TEST(condition_timeout_and_result)
{
    /* CPython's test_timeout and the first half of test_wait_result. */
    mp_condition *c;
    mp_ck_code(mp_condition_new(&c, NULL, NULL), 0);
    mp_ck_code(mp_condition_acquire(c, MP_FOREVER), 0);
    double t0 = mp_test_now();
    mp_ck_code(mp_condition_wait(c, 0), MP_ETIMEDOUT);
    ck_assert(mp_test_now() - t0 < MP_T(0.05));
    t0 = mp_test_now();
    mp_ck_code(mp_condition_wait(c, 0.1), MP_ETIMEDOUT);
    double el = mp_test_now() - t0;
    ck_assert_msg(el >= 0.1 && el < MP_T(1.5), "%.3f", el);
    mp_ck_code(mp_condition_release(c), 0);
    mp_condition_free(c);
}

static int t_notify_once(void *arg)
{
    struct shared *s = arg;
    mp_condition_acquire(s->cond, MP_FOREVER);
    int r = mp_condition_notify(s->cond, 1);
    mp_condition_release(s->cond);
    return r == 0 ? 0 : 1;
}

MP_TEST(condition_wait_notified)
{
    /* The second half of CPython's test_wait_result, every method. */
    for (int k = 0; k < 3; k++) {
        struct shared *s = new_shared();
        mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
        mp_ck_code(mp_condition_acquire(s->cond, MP_FOREVER), 0);
        mp_process *p = mp_test_start(t_notify_once, s, 0, mp_test_methods[k]);
        mp_ck_code(mp_condition_wait(s->cond, MP_T(60)), 0);
        mp_ck_code(mp_condition_release(s->cond), 0);
        ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
        free_shared(s);
    }
}

/* want - a predicate's argument: the state it waits for. Private to
   the waiting process (the predicate runs there). */
struct want {
    struct shared *s;
    int state;
};

static int state_is(void *arg)
{
    struct want *w = arg;
    return w->s->state == w->state;
}

/* CPython's test_waitfor child: announce state 0, wait for state 4. */
static int t_waitfor(void *arg)
{
    struct shared *s = arg;
    mp_condition_acquire(s->cond, MP_FOREVER);
    s->state = 0;
    mp_condition_notify(s->cond, 1);
    struct want w = {s, 4};
    int r = mp_condition_wait_for(s->cond, state_is, &w, MP_FOREVER);
    int ok = r == 1 && s->state == 4;
    mp_condition_release(s->cond);
    return ok ? 0 : 1;
}

MP_TEST(condition_wait_for)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    s->state = -1;
    mp_process *p = mp_test_start(t_waitfor, s, 0, MP_START_SPAWN);
    mp_ck_code(mp_condition_acquire(s->cond, MP_FOREVER), 0);
    struct want w = {s, 0};
    ck_assert_int_eq(mp_condition_wait_for(s->cond, state_is, &w, MP_T(30)), 1);
    ck_assert_int_eq(s->state, 0);
    mp_ck_code(mp_condition_release(s->cond), 0);
    for (int i = 0; i < 4; i++) {
        mp_test_sleep(0.01);
        mp_condition_acquire(s->cond, MP_FOREVER);
        s->state++;
        mp_condition_notify(s->cond, 1);
        mp_condition_release(s->cond);
    }
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    free_shared(s);
}

/* CPython's test_waitfor_timeout child. */
static int t_waitfor_timeout(void *arg)
{
    struct shared *s = arg;
    mp_semaphore_release(s->sem);
    mp_condition_acquire(s->cond, MP_FOREVER);
    double t0 = mp_test_now();
    struct want w = {s, 4};
    int r = mp_condition_wait_for(s->cond, state_is, &w, 0.1);
    double dt = mp_test_now() - t0;
    mp_condition_release(s->cond);
    return r == 0 && dt >= 0.1 && dt < MP_T(1.5) ? 0 : 1;
}

MP_TEST(condition_wait_for_timeout)
{
    /* Notified three times, the state never reaches 4: the timeout is
       one overall deadline, not restarted by each wake-up. */
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    s->state = 0;
    mp_process *p = mp_test_start(t_waitfor_timeout, s, 0, MP_START_FORK);
    mp_ck_code(mp_semaphore_acquire(s->sem, MP_T(30)), 0);
    for (int i = 0; i < 3; i++) {
        mp_test_sleep(0.01);
        mp_condition_acquire(s->cond, MP_FOREVER);
        s->state++;
        mp_condition_notify(s->cond, 1);
        mp_condition_release(s->cond);
    }
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    free_shared(s);
}

static int always_false(void *arg)
{
    (void)arg;
    return 0;
}

MP_TEST(condition_needs_the_lock)
{
    mp_condition *c;
    mp_ck_code(mp_condition_new(&c, NULL, NULL), 0);
    mp_ck_code(mp_condition_wait(c, 0), MP_EPERM);
    mp_ck_code(mp_condition_wait_for(c, always_false, NULL, 0), MP_EPERM);
    mp_ck_code(mp_condition_notify(c, 1), MP_EPERM);
    mp_ck_code(mp_condition_notify_all(c), MP_EPERM);
    mp_ck_code(mp_condition_release(c), MP_EPERM);
    mp_ck_code(mp_condition_acquire(c, 0), 0);
    mp_ck_code(mp_condition_notify(c, -1), MP_EINVAL);
    mp_ck_code(mp_condition_wait_for(c, NULL, NULL, 0), MP_EINVAL);
    mp_ck_code(mp_condition_wait(c, NAN), MP_EINVAL);
    ck_assert_int_eq(mp_condition_wait_for(c, always_false, NULL, 0), 0);
    mp_ck_code(mp_condition_release(c), 0);
    mp_condition_free(c);
}

static int t_take_lock(void *arg)
{
    struct shared *s = arg;
    if (mp_lock_acquire(s->lock, MP_T(10)) != 0)
        return 1;
    s->state = 1;
    mp_lock_release(s->lock);
    return 0;
}

MP_TEST(condition_releases_given_lock)
{
    /* On a plain lock: while waiting, others can take the lock. */
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, s->lock, NULL), 0);
    mp_ck_code(mp_lock_acquire(s->lock, MP_FOREVER), 0);
    mp_process *p = mp_test_start(t_take_lock, s, 0, MP_START_FORK);
    mp_ck_code(mp_condition_wait(s->cond, 0.5), MP_ETIMEDOUT);
    ck_assert_int_eq(mp_lock_locked(s->lock), 1); /* ours again */
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    ck_assert_int_eq(s->state, 1);
    mp_ck_code(mp_lock_release(s->lock), 0);
    free_shared(s);
}

static int t_take_rlock(void *arg)
{
    struct shared *s = arg;
    if (mp_rlock_acquire(s->rlock, MP_T(10)) != 0)
        return 1;
    s->state = 2;
    mp_rlock_release(s->rlock);
    return 0;
}

MP_TEST(condition_restores_rlock_depth)
{
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, s->rlock), 0);
    mp_ck_code(mp_rlock_acquire(s->rlock, MP_FOREVER), 0);
    mp_ck_code(mp_rlock_acquire(s->rlock, MP_FOREVER), 0);
    mp_process *p = mp_test_start(t_take_rlock, s, 0, MP_START_FORK);
    /* Every level is released while waiting, so the child gets in. */
    mp_ck_code(mp_condition_wait(s->cond, 0.5), MP_ETIMEDOUT);
    ck_assert_int_eq(mp_test_finish(p, MP_T(30)), 0);
    ck_assert_int_eq(s->state, 2);
    /* Back at depth 2. */
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    mp_ck_code(mp_rlock_release(s->rlock), 0);
    mp_ck_code(mp_rlock_release(s->rlock), MP_EPERM);
    free_shared(s);
}

MP_TEST(condition_dead_waiter_does_not_wedge)
{
    /* A waiter is killed while it sleeps; the next notify still wakes a
       live waiter. */
    struct shared *s = new_shared();
    mp_ck_code(mp_condition_new(&s->cond, NULL, NULL), 0);
    s->timeout = MP_FOREVER;
    mp_process *p[2];
    pthread_t t[1];
    start_waiters(s, p, 1, t, 0);
    mp_test_sleep(MP_T(0.1)); /* asleep in the wait */
    mp_process_kill(p[0]);
    ck_assert_int_eq(mp_test_finish(p[0], MP_T(30)), -SIGKILL);
    start_waiters(s, p + 1, 1, t, 0);
    mp_test_sleep(MP_T(0.1));
    notify(s, 1);
    ck_assert_int_eq(woken_reaches(s, 1), 1);
    finish_waiters(p + 1, 1, t, 0);
    /* The condition goes on working. */
    start_waiters(s, p, 1, t, 1);
    mp_test_sleep(MP_T(0.1));
    notify(s, -1);
    ck_assert_int_eq(woken_reaches(s, 3), 3);
    finish_waiters(p, 1, t, 1);
    free_shared(s);
}

/* ---- placement in memory the caller provides ----------------------------
 */

MP_TEST(placed_objects_work_in_plain_memory)
{
    /* In a process's own memory (threads only), and in the arena. */
    _Alignas(8) char buf[4096];
    mp_lock *l;
    mp_rlock *rl;
    mp_condition *c;
    ck_assert_uint_ge(sizeof buf, mp_condition_size() + mp_lock_size());
    mp_ck_code(mp_lock_init_at(&l, buf, mp_lock_size()), 0);
    ck_assert_ptr_eq(l, (void *)buf);
    mp_ck_code(mp_lock_acquire(l, 0), 0);
    mp_ck_code(mp_lock_release(l), 0);
    mp_ck_code(mp_condition_init_at(&c, buf + 64, mp_condition_size(), l, NULL),
               0);
    mp_ck_code(mp_lock_acquire(l, 0), 0);
    mp_ck_code(mp_condition_wait(c, 0.01), MP_ETIMEDOUT);
    mp_ck_code(mp_lock_release(l), 0);
    mp_condition_free(c);
    mp_lock_free(l); /* invalidates, frees nothing */
    mp_ck_code(mp_lock_acquire(l, 0), MP_EINVAL);
    mp_ck_code(mp_rlock_init_at(&rl, buf + 1, 64), MP_EINVAL);
    mp_ck_code(mp_rlock_init_at(&rl, buf, mp_rlock_size() - 1), MP_EINVAL);
    mp_ck_code(mp_rlock_init_at(&rl, NULL, 64), MP_EINVAL);
    mp_ck_code(mp_lock_init_at(NULL, buf, 64), MP_EINVAL);
    mp_ck_code(mp_condition_init_at(NULL, buf, mp_condition_size(), NULL, NULL),
               MP_EINVAL);
}

/* The segment layout agreed with shm_peer.c. */
#define OFF_LOCK    0
#define OFF_SEM     64
#define OFF_EVENT   128
#define OFF_COUNTER 256
#define PEER_ROUNDS 100000

/* Run shm_peer NAME mode; its pid. */
static pid_t run_peer(const char *name, const char *mode)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(SHM_PEER_PATH, SHM_PEER_PATH, name, mode, (char *)NULL);
        _exit(127);
    }
    ck_assert_int_gt(pid, 0);
    return pid;
}

static int peer_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

MP_TEST(placed_objects_shared_with_unrelated_process)
{
    /* A named segment: an unrelated program (no mp_init, not of this
       family, the segment at another address) shares a lock, a semaphore
       and an event with us; then it dies holding the lock. */
    char name[64];
    snprintf(name, sizeof name, "/mp-test-%d", (int)getpid());
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 4096), 0);
    char *seg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    ck_assert_ptr_ne(seg, MAP_FAILED);
    mp_lock *lock;
    mp_semaphore *sem;
    mp_event *go;
    mp_ck_code(mp_lock_init_at(&lock, seg + OFF_LOCK, 64), 0);
    mp_ck_code(mp_semaphore_init_at(&sem, seg + OFF_SEM, 64, 0, 0), 0);
    mp_ck_code(mp_event_init_at(&go, seg + OFF_EVENT, 64), 0);
    volatile long *counter = (volatile long *)(seg + OFF_COUNTER);

    pid_t peer = run_peer(name, "count");
    mp_ck_code(mp_semaphore_acquire(sem, MP_T(30)), 0);
    mp_ck_code(mp_event_set(go), 0);
    for (int i = 0; i < PEER_ROUNDS; i++) {
        mp_lock_acquire(lock, MP_FOREVER);
        (*counter)++;
        mp_lock_release(lock);
    }
    ck_assert_int_eq(peer_status(peer), 0);
    ck_assert_int_eq(*counter, 2L * PEER_ROUNDS);

    peer = run_peer(name, "die");
    mp_ck_code(mp_semaphore_acquire(sem, MP_T(30)), 0);
    ck_assert_int_eq(peer_status(peer), -SIGKILL);
    mp_ck_code(mp_lock_acquire(lock, MP_T(5)), MP_EOWNERDEAD);
    mp_ck_code(mp_lock_release(lock), 0);

    mp_lock_free(lock);
    mp_semaphore_free(sem);
    mp_event_free(go);
    munmap(seg, 4096);
    ck_assert_int_eq(shm_unlink(name), 0);
}

/* ---- bad inputs ---------------------------------------------------------
 */

MP_TEST(bad_inputs)
{
    mp_lock *l;
    mp_rlock *rl;
    mp_condition *c;
    mp_ck_code(mp_lock_new(NULL), MP_EINVAL);
    mp_ck_code(mp_rlock_new(NULL), MP_EINVAL);
    mp_ck_code(mp_condition_new(NULL, NULL, NULL), MP_EINVAL);
    mp_ck_code(mp_lock_acquire(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_lock_release(NULL), MP_EINVAL);
    mp_ck_code(mp_lock_locked(NULL), MP_EINVAL);
    mp_ck_code(mp_rlock_acquire(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_rlock_release(NULL), MP_EINVAL);
    mp_ck_code(mp_condition_acquire(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_condition_release(NULL), MP_EINVAL);
    mp_ck_code(mp_condition_wait(NULL, 0), MP_EINVAL);
    mp_ck_code(mp_condition_notify(NULL, 1), MP_EINVAL);
    mp_ck_code(mp_condition_notify_all(NULL), MP_EINVAL);
    mp_lock_free(NULL);
    mp_rlock_free(NULL);
    mp_condition_free(NULL);

    mp_ck_code(mp_lock_new(&l), 0);
    mp_ck_code(mp_rlock_new(&rl), 0);
    mp_ck_code(mp_lock_acquire(l, NAN), MP_EINVAL);
    mp_ck_code(mp_rlock_acquire(rl, NAN), MP_EINVAL);
    /* The wrong kind of object. */
    mp_ck_code(mp_rlock_acquire((mp_rlock *)l, 0), MP_EINVAL);
    mp_ck_code(mp_lock_acquire((mp_lock *)rl, 0), MP_EINVAL);
    mp_ck_code(mp_condition_new(&c, l, rl), MP_EINVAL);
    mp_ck_code(mp_condition_new(&c, (mp_lock *)rl, NULL), MP_EINVAL);
    mp_ck_code(mp_condition_wait((mp_condition *)l, 0), MP_EINVAL);
    /* Freed objects, while their memory still says so. */
    mp_lock_free(l);
    mp_rlock_free(rl);
    mp_ck_code(mp_lock_acquire(l, 0), MP_EINVAL);
    mp_ck_code(mp_rlock_acquire(rl, 0), MP_EINVAL);
}

/* hold - a thread holding a lock until told to let go. */
struct hold {
    mp_lock *lock;
    mp_semaphore *taken, *go;
    int released;
};

static void *thread_holds_lock(void *arg)
{
    struct hold *h = arg;
    mp_lock_acquire(h->lock, MP_FOREVER);
    mp_semaphore_release(h->taken);
    mp_semaphore_acquire(h->go, MP_FOREVER);
    h->released = mp_lock_release(h->lock);
    return NULL;
}

MP_TEST(free_while_held)
{
    /* Freeing one's own held lock releases it first; a lock held by
       another live thread is left alone rather than pulled from under it
       (its node is in that thread's robust list). */
    mp_lock *l;
    mp_ck_code(mp_lock_new(&l), 0);
    mp_ck_code(mp_lock_acquire(l, 0), 0);
    mp_lock_free(l);
    struct hold h = {.released = 1};
    mp_ck_code(mp_lock_new(&h.lock), 0);
    mp_ck_code(mp_semaphore_new(&h.taken, 0, 0), 0);
    mp_ck_code(mp_semaphore_new(&h.go, 0, 0), 0);
    pthread_t t;
    pthread_create(&t, NULL, thread_holds_lock, &h);
    mp_ck_code(mp_semaphore_acquire(h.taken, MP_T(10)), 0);
    mp_lock_free(h.lock); /* left alone */
    ck_assert_int_eq(mp_lock_locked(h.lock), 1);
    mp_semaphore_release(h.go);
    pthread_join(t, NULL);
    mp_ck_code(h.released, 0);
    mp_lock_free(h.lock); /* now it goes */
    mp_ck_code(mp_lock_acquire(h.lock, 0), MP_EINVAL);
    mp_semaphore_free(h.taken);
    mp_semaphore_free(h.go);
}

/* lost_wake - the lock and the times of timed_out_waiter_passes_wakeup. */
static mp_lock *lw_lock;
static volatile int lw_w1, lw_w2;
static volatile double lw_t1, lw_w2_at;

static void *lw_timed(void *arg)
{
    (void)arg;
    /* A coarse timer: the release below reaches it before its own
       time-out does, and it finds its time up all the same. */
    prctl(PR_SET_TIMERSLACK, 2000000UL);
    lw_t1 = mp_test_now();
    lw_w1 = mp_lock_acquire(lw_lock, 0.1);
    if (lw_w1 == 0)
        mp_lock_release(lw_lock);
    return NULL;
}

static void *lw_patient(void *arg)
{
    (void)arg;
    lw_w2 = mp_lock_acquire(lw_lock, MP_T(10.0));
    lw_w2_at = mp_test_now();
    if (lw_w2 == 0)
        mp_lock_release(lw_lock);
    return NULL;
}

MP_TEST(timed_out_waiter_passes_wakeup_on)
{
    /* W1 (timed) and W2 sleep; the holder lets go just as W1's time runs
       out (waking W1) and takes the lock back at once, without the
       waiters bit. W1 times out: the wake-up it took must reach W2 when
       the holder lets go again. */
    for (int trial = 0; trial < 5; trial++) {
        mp_ck_code(mp_lock_new(&lw_lock), 0);
        lw_w1 = lw_w2 = 99;
        mp_ck_code(mp_lock_acquire(lw_lock, MP_FOREVER), 0);
        pthread_t a, b;
        pthread_create(&a, NULL, lw_timed, NULL);
        mp_test_sleep(0.02);
        pthread_create(&b, NULL, lw_patient, NULL);
        mp_test_sleep(0.02);
        while (mp_test_now() < lw_t1 + 0.1005)
            ;
        mp_lock_release(lw_lock);
        mp_ck_code(mp_lock_acquire(lw_lock, MP_FOREVER), 0);
        pthread_join(a, NULL);
        double rel = mp_test_now();
        mp_lock_release(lw_lock);
        pthread_join(b, NULL);
        mp_ck_code(lw_w2, 0);
        ck_assert_msg(lw_w2_at - rel < MP_T(2.0),
                      "W2 slept %.3f s on a free lock", lw_w2_at - rel);
        mp_lock_free(lw_lock);
    }
}

static mp_rlock *rf_lock;

static void *rf_free(void *arg)
{
    (void)arg;
    mp_rlock_free(rf_lock); /* held by the main thread: left alone */
    return NULL;
}

static int rf_try;

static void *rf_acquire(void *arg)
{
    (void)arg;
    rf_try = mp_rlock_acquire(rf_lock, MP_T(5.0));
    if (rf_try == 0)
        mp_rlock_release(rf_lock);
    return NULL;
}

MP_TEST(rlock_free_by_other_thread_keeps_depth)
{
    mp_ck_code(mp_rlock_new(&rf_lock), 0);
    mp_ck_code(mp_rlock_acquire(rf_lock, MP_FOREVER), 0);
    mp_ck_code(mp_rlock_acquire(rf_lock, MP_FOREVER), 0);
    pthread_t t;
    pthread_create(&t, NULL, rf_free, NULL);
    pthread_join(t, NULL);
    mp_ck_code(mp_rlock_release(rf_lock), 0);
    mp_ck_code(mp_rlock_release(rf_lock), 0);
    mp_ck_code(mp_rlock_release(rf_lock), MP_EPERM);
    pthread_create(&t, NULL, rf_acquire, NULL);
    pthread_join(t, NULL);
    mp_ck_code(rf_try, 0); /* free again after two releases */
    mp_rlock_free(rf_lock);
}

/* The kernel's robust list head of this thread. */
struct robust_head_view {
    void *list;
    long offset;
    void *pending;
};

MP_TEST(condition_freed_while_its_lock_held)
{
    mp_condition *c;
    mp_ck_code(mp_condition_new(&c, NULL, NULL), 0);
    mp_ck_code(mp_condition_acquire(c, MP_FOREVER), 0);
    uintptr_t lo = (uintptr_t)c, hi = lo + mp_condition_size();
    mp_condition_free(c); /* `with cond:` ... freed inside */
    struct robust_head_view *h;
    size_t len;
    ck_assert_int_eq(syscall(SYS_get_robust_list, 0, &h, &len), 0);
    /* The list no longer runs through the freed block. */
    for (void *n = h->list; n != (void *)h; n = *(void **)n)
        ck_assert_msg((uintptr_t)n < lo || (uintptr_t)n >= hi,
                      "robust list still in the freed condition");
    /* And the memory can serve again without the kernel touching it. */
    mp_lock *l;
    mp_ck_code(mp_lock_new(&l), 0);
    mp_ck_code(mp_lock_acquire(l, MP_FOREVER), 0);
    mp_ck_code(mp_lock_release(l), 0);
    mp_lock_free(l);
}
