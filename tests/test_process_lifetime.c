/* test_process_lifetime.c - children die with their parent, daemon
   children are terminated and the others joined at exit. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* family - what a middle process tells the test through the arena. */
struct family {
    int method; /* how the middle starts the grandchild */
    volatile pid_t grandchild;
    volatile int done;  /* set by a grandchild that finished its sleep */
    volatile int ready; /* set by a grandchild once its handlers are set */
    double sleep;       /* how long the grandchild sleeps */
    int daemon;         /* whether the grandchild is a daemon */
    int ignore_term;    /* the grandchild ignores SIGTERM */
    int use_exit;       /* the middle leaves through exit() */
};

static int t_grandchild(void *arg)
{
    struct family *f = arg;
    if (f->ignore_term)
        signal(SIGTERM, SIG_IGN);
    f->ready = 1;
    sleep_s(f->sleep);
    f->done = 1;
    return 0;
}

static int t_middle(void *arg)
{
    struct family *f = arg;
    mp_process *p;
    mp_process_opts o = {.start = (mp_start_method)f->method,
                         .daemon = f->daemon};
    if (mp_process_new(&p, t_grandchild, f, &o) != 0 ||
        mp_process_start(p) != 0)
        return 1;
    f->grandchild = mp_process_pid(p);
    for (int i = 0; i < 10000 && f->ignore_term && !f->ready; i++)
        sleep_s(MP_T(0.001)); /* 10 s in all, scaled */
    if (f->use_exit)
        exit(0);
    return 0; /* without joining: the exit handling must */
}

static int t_middle_then_sleep(void *arg)
{
    t_middle(arg);
    sleep_s(60);
    return 0;
}

/* Wait for a pid to be set in shared memory (3 s, scaled). */
static pid_t wait_pid_set(volatile pid_t *where)
{
    for (int i = 0; i < 3000 && *where == 0; i++)
        sleep_s(MP_T(0.001));
    return *where;
}

/* The grandchild became our child when its parent died (we are a
   subreaper in tests): reap it once it is gone. */
static int reap_orphan(pid_t pid, double timeout)
{
    double end = mp_test_now() + timeout;
    while (mp_test_now() < end) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno == ECHILD)
            return mp_test_wait_gone(pid, end - mp_test_now());
        sleep_s(0.005);
    }
    return 0;
}

/* A family record in the arena for a middle of method m. */
static struct family *new_family(mp_start_method m, double sleep)
{
    struct family *f = mp_shared_alloc(sizeof *f);
    ck_assert_ptr_nonnull(f);
    f->method = (int)m;
    f->sleep = sleep;
    return f;
}

MP_TEST(children_die_with_killed_parent)
{
    for (int k = 0; k < 3; k++) {
        for (int mid = 0; mid < 3; mid++) {
            struct family *f = new_family(mp_test_methods[k], 60);
            mp_process *p;
            mp_process_opts o = {.start = mp_test_methods[mid]};
            mp_ck_code(mp_process_new(&p, t_middle_then_sleep, f, &o), 0);
            mp_ck_code(mp_process_start(p), 0);
            pid_t g = wait_pid_set(&f->grandchild);
            ck_assert_int_gt(g, 0);
            double t0 = mp_test_now();
            mp_ck_code(mp_process_kill(p), 0);
            mp_ck_code(mp_process_join(p, MP_T(10)), 0);
            ck_assert_msg(reap_orphan(g, MP_T(5)), "grandchild %d survived", g);
            ck_assert(mp_test_now() - t0 < MP_T(1.0));
            ck_assert_int_eq(f->done, 0);
            mp_process_free(p);
            mp_shared_free(f);
        }
    }
}

/* brood - grandchildren started back to back by one middle, each by
   its own method: each must get its own lifeline (a description shared
   by two would signal only the one that armed it last). */
struct brood {
    struct family f[6];
    volatile int started;
};

static int t_middle_of_six(void *arg)
{
    struct brood *b = arg;
    for (int i = 0; i < 6; i++) {
        mp_process *p;
        mp_process_opts o = {.start = mp_test_methods[i % 3]};
        if (mp_process_new(&p, t_grandchild, &b->f[i], &o) != 0 ||
            mp_process_start(p) != 0)
            return 1;
        b->f[i].grandchild = mp_process_pid(p);
    }
    b->started = 1;
    sleep_s(60);
    return 0;
}

MP_TEST(every_child_of_a_killed_parent_dies)
{
    struct brood *b = mp_shared_alloc(sizeof *b);
    ck_assert_ptr_nonnull(b);
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 6; i++)
        b->f[i].sleep = 60;
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORK};
    mp_ck_code(mp_process_new(&p, t_middle_of_six, b, &o), 0);
    mp_ck_code(mp_process_start(p), 0);
    for (int i = 0; i < 3000 && !b->started; i++)
        sleep_s(MP_T(0.001));
    ck_assert_int_eq(b->started, 1);
    mp_ck_code(mp_process_kill(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    for (int i = 0; i < 6; i++)
        ck_assert_msg(reap_orphan(b->f[i].grandchild, MP_T(5)),
                      "grandchild %d (%d) survived", i, b->f[i].grandchild);
    mp_process_free(p);
    mp_shared_free(b);
}

/* Run t_middle as a fork child for f; the seconds until it was joined. */
static double run_middle(struct family *f)
{
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORK};
    mp_ck_code(mp_process_new(&p, t_middle, f, &o), 0);
    double t0 = mp_test_now();
    mp_ck_code(mp_process_start(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(30)), 0);
    double el = mp_test_now() - t0;
    int code;
    mp_ck_code(mp_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 0);
    mp_process_free(p);
    return el;
}

MP_TEST(exit_joins_non_daemon_children)
{
    for (int k = 0; k < 3; k++) {
        for (int use_exit = 0; use_exit < 2; use_exit++) {
            struct family *f = new_family(mp_test_methods[k], 0.3);
            f->use_exit = use_exit;
            double el = run_middle(f);
            /* The middle returned at once but waited for its child. */
            ck_assert_int_eq(f->done, 1);
            ck_assert_msg(el >= 0.3, "middle ended after %.3f s", el);
            mp_shared_free(f);
        }
    }
}

MP_TEST(exit_terminates_daemon_children)
{
    for (int k = 0; k < 3; k++) {
        struct family *f = new_family(mp_test_methods[k], 60);
        f->daemon = 1;
        ck_assert(run_middle(f) < MP_T(2.0));
        pid_t g = f->grandchild;
        ck_assert_int_gt(g, 0);
        ck_assert_int_eq(mp_test_wait_gone(g, MP_T(5)), 1);
        ck_assert_int_eq(f->done, 0);
        mp_shared_free(f);
    }
}

MP_TEST(daemon_ignoring_sigterm_is_killed)
{
    struct family *f = new_family(MP_START_FORK, 60);
    f->daemon = 1;
    f->ignore_term = 1;
    double el = run_middle(f);
    ck_assert_msg(el >= 1.5 && el < MP_T(10), "took %.3f s", el);
    ck_assert_int_eq(mp_test_wait_gone(f->grandchild, MP_T(5)), 1);
    mp_shared_free(f);
}

MP_TEST(main_return_runs_exit_handling)
{
    /* A real program returning from main: exit_main starts a daemon and
       a non-daemon child and returns. */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(EXIT_MAIN_PATH, EXIT_MAIN_PATH, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    char buf[512] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    close(fds[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    int dpid = 0, npid = 0;
    ck_assert_ptr_nonnull(strstr(buf, "daemon "));
    sscanf(strstr(buf, "daemon "), "daemon %d", &dpid);
    sscanf(strstr(buf, "worker "), "worker %d", &npid);
    ck_assert_int_gt(dpid, 0);
    ck_assert_ptr_nonnull(strstr(buf, "worker finished"));
    ck_assert_ptr_nonnull(strstr(buf, "main returned"));
    /* The worker finished before the program ended; the daemon died. */
    ck_assert(strstr(buf, "main returned") < strstr(buf, "worker finished"));
    ck_assert_int_eq(mp_test_wait_gone(dpid, MP_T(5)), 1);
    ck_assert_int_eq(mp_test_wait_gone(npid, MP_T(5)), 1);
}
