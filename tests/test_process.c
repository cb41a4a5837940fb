/* test_process.c - mp_process under every start method: exit codes, join,
   signals, names, sentinels, bad inputs; after CPython's
   _test_multiprocessing process tests. */
#include "harness.h"

#include "../src/process/process_internal.h"

#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int t_exit(void *arg)
{
    return *(int *)arg;
}

static int t_sleep(void *arg)
{
    sleep_s(*(double *)arg);
    return 0;
}

static int t_segv(void *arg)
{
    (void)arg;
    /* Sanitizer runtimes catch SIGSEGV; the test is about the kernel's
       verdict reaching the parent, so restore the default first. */
    signal(SIGSEGV, SIG_DFL);
    /* An unmapped page that is not NULL: UBSan would stop a NULL store. */
    volatile int *volatile p = (volatile int *)(uintptr_t)4096;
    *p = 1;
    return 0;
}

static int t_abort(void *arg)
{
    (void)arg;
    signal(SIGABRT, SIG_DFL);
    abort();
}

static int t_raise(void *arg)
{
    raise(*(int *)arg);
    sleep_s(10);
    return 0;
}

static int t_call_exit(void *arg)
{
    exit(*(int *)arg);
}

static int start_one(mp_process **p, mp_target_fn fn, void *arg, size_t sz,
                     mp_start_method m)
{
    mp_process_opts o = {.start = m, .arg_size = sz};
    int r = mp_process_new(p, fn, arg, &o);
    if (r != 0)
        return r;
    return mp_process_start(*p);
}

static int run_for_code(mp_target_fn fn, void *arg, size_t sz,
                        mp_start_method m)
{
    mp_process *p;
    mp_ck_code(start_one(&p, fn, arg, sz, m), 0);
    mp_ck_code(mp_process_join(p, MP_T(30)), 0);
    int code = 12345;
    mp_ck_code(mp_process_exitcode(p, &code), 0);
    mp_process_free(p);
    return code;
}

MP_TEST(exit_status_every_method)
{
    static const int codes[] = {0, 1, 7, 255};
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
            int c = codes[i];
            ck_assert_int_eq(
                run_for_code(t_exit, &c, sizeof c, mp_test_methods[k]), c);
        }
    }
}

MP_TEST(exit_by_signal_every_method)
{
    for (int k = 0; k < 3; k++) {
        mp_start_method m = mp_test_methods[k];
        ck_assert_int_eq(run_for_code(t_segv, NULL, 0, m), -SIGSEGV);
        ck_assert_int_eq(run_for_code(t_abort, NULL, 0, m), -SIGABRT);
        int s = SIGKILL;
        ck_assert_int_eq(run_for_code(t_raise, &s, sizeof s, m), -SIGKILL);
        s = SIGTERM;
        ck_assert_int_eq(run_for_code(t_raise, &s, sizeof s, m), -SIGTERM);
    }
}

MP_TEST(exit_call_in_target)
{
    for (int k = 0; k < 3; k++) {
        int c = 3;
        ck_assert_int_eq(
            run_for_code(t_call_exit, &c, sizeof c, mp_test_methods[k]), 3);
    }
}

MP_TEST(terminate_and_kill)
{
    for (int k = 0; k < 3; k++) {
        double s = 30;
        mp_process *a, *b;
        mp_ck_code(start_one(&a, t_sleep, &s, sizeof s, mp_test_methods[k]), 0);
        mp_ck_code(start_one(&b, t_sleep, &s, sizeof s, mp_test_methods[k]), 0);
        ck_assert_int_eq(mp_process_is_alive(a), 1);
        int code;
        mp_ck_code(mp_process_exitcode(a, &code), MP_EBUSY);
        mp_ck_code(mp_process_terminate(a), 0);
        mp_ck_code(mp_process_kill(b), 0);
        mp_ck_code(mp_process_join(a, MP_T(10)), 0);
        mp_ck_code(mp_process_join(b, MP_T(10)), 0);
        mp_ck_code(mp_process_exitcode(a, &code), 0);
        ck_assert_int_eq(code, -SIGTERM);
        mp_ck_code(mp_process_exitcode(b, &code), 0);
        ck_assert_int_eq(code, -SIGKILL);
        ck_assert_int_eq(mp_process_is_alive(a), 0);
        /* Signalling an ended child is a no-op, like Python. */
        mp_ck_code(mp_process_terminate(a), 0);
        mp_ck_code(mp_process_kill(b), 0);
        /* join again returns at once */
        mp_ck_code(mp_process_join(a, 0), 0);
        mp_process_free(a);
        mp_process_free(b);
    }
}

MP_TEST(join_timeout_honoured)
{
    for (int k = 0; k < 3; k++) {
        double s = 30;
        mp_process *p;
        mp_ck_code(start_one(&p, t_sleep, &s, sizeof s, mp_test_methods[k]), 0);
        double t0 = mp_test_now();
        mp_ck_code(mp_process_join(p, 0), MP_ETIMEDOUT);
        ck_assert(mp_test_now() - t0 < MP_T(0.05));
        t0 = mp_test_now();
        mp_ck_code(mp_process_join(p, 0.2), MP_ETIMEDOUT);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.2 && el < MP_T(1.0), "join(0.2) took %.3f s", el);
        mp_ck_code(mp_process_join(p, NAN), MP_EINVAL);
        mp_ck_code(mp_process_kill(p), 0);
        mp_ck_code(mp_process_join(p, MP_FOREVER), 0);
        mp_process_free(p);
    }
}

MP_TEST(join_waits_for_end)
{
    for (int k = 0; k < 3; k++) {
        double s = 0.3;
        mp_process *p;
        double t0 = mp_test_now();
        mp_ck_code(start_one(&p, t_sleep, &s, sizeof s, mp_test_methods[k]), 0);
        mp_ck_code(mp_process_join(p, MP_FOREVER), 0);
        double el = mp_test_now() - t0;
        ck_assert_msg(el >= 0.3 && el < MP_T(5), "took %.3f", el);
        int code;
        mp_ck_code(mp_process_exitcode(p, &code), 0);
        ck_assert_int_eq(code, 0);
        mp_process_free(p);
    }
}

/* seen - what a child reports about itself through the arena. */
struct seen {
    char name[256];
    pid_t pid;
    pid_t parent;
    int daemon;
    int value;
};

static int t_report(void *arg)
{
    struct seen *s = arg;
    mp_process *me = mp_current_process();
    snprintf(s->name, sizeof s->name, "%s", mp_process_name(me));
    s->pid = mp_process_pid(me);
    s->parent = mp_parent_pid();
    s->daemon = mp_process_daemon(me);
    return 0;
}

MP_TEST(names_pids_and_parent)
{
    struct seen *s = mp_shared_alloc(sizeof *s);
    ck_assert_ptr_nonnull(s);
    for (int k = 0; k < 3; k++) {
        mp_process *p, *q;
        mp_process_opts o = {.start = mp_test_methods[k]};
        mp_ck_code(mp_process_new(&p, t_report, s, &o), 0);
        ck_assert_int_eq(mp_process_pid(p), 0);
        const char *name = mp_process_name(p);
        ck_assert_int_eq(strncmp(name, "Process-", 8), 0);
        int n = atoi(name + 8);
        ck_assert_int_gt(n, 0);
        mp_ck_code(mp_process_new(&q, t_report, s, &o), 0);
        ck_assert_int_eq(atoi(mp_process_name(q) + 8), n + 1);
        mp_process_free(q);
        mp_ck_code(mp_process_start(p), 0);
        ck_assert_int_gt(mp_process_pid(p), 0);
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        ck_assert_str_eq(s->name, name);
        ck_assert_int_eq(s->pid, mp_process_pid(p));
        ck_assert_int_eq(s->parent, getpid());
        ck_assert_int_eq(s->daemon, 0);
        mp_process_free(p);

        o.name = "worker-α";
        o.daemon = 1;
        mp_ck_code(mp_process_new(&p, t_report, s, &o), 0);
        ck_assert_str_eq(mp_process_name(p), "worker-α");
        ck_assert_int_eq(mp_process_daemon(p), 1);
        mp_ck_code(mp_process_start(p), 0);
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        ck_assert_str_eq(s->name, "worker-α");
        ck_assert_int_eq(s->daemon, 1);
        mp_process_free(p);
    }
    mp_shared_free(s);
}

MP_TEST(current_process_is_main)
{
    mp_process *me = mp_current_process();
    ck_assert_ptr_nonnull(me);
    ck_assert_str_eq(mp_process_name(me), "MainProcess");
    ck_assert_int_eq(mp_process_pid(me), getpid());
    ck_assert_int_eq(mp_parent_pid(), 0);
    ck_assert_int_eq(mp_process_is_alive(me), 1);
    mp_ck_code(mp_process_join(me, 0), MP_EDEADLK);
    mp_ck_code(mp_process_terminate(me), MP_EINVAL);
    mp_ck_code(mp_process_kill(me), MP_EINVAL);
    mp_ck_code(mp_process_start(me), MP_EINVAL);
    mp_ck_code(mp_process_sentinel(me), MP_ESTATE);
    mp_ck_code(mp_process_close(me), MP_EINVAL);
    int code;
    mp_ck_code(mp_process_exitcode(me, &code), MP_EBUSY);
    mp_process_free(me); /* a no-op */
    ck_assert_ptr_eq(mp_current_process(), me);
}

/* Nested children: the grandchild is "Process-N:1" and its parent is
   the child (CPython's test_recursion). */
static int t_nested(void *arg)
{
    struct seen *s = arg;
    mp_process *p;
    mp_process_opts o = {.start = (mp_start_method)s[0].value};
    if (mp_process_new(&p, t_report, &s[1], &o) != 0 ||
        mp_process_start(p) != 0 || mp_process_join(p, MP_T(30)) != 0)
        return 1;
    int code = -1;
    mp_process_exitcode(p, &code);
    mp_process_free(p);
    t_report(&s[0]);
    return code;
}

MP_TEST(nested_children)
{
    struct seen *s = mp_shared_alloc(2 * sizeof *s);
    for (int k = 0; k < 3; k++) {
        for (int j = 0; j < 3; j++) {
            memset(s, 0, 2 * sizeof *s);
            s[0].value = (int)mp_test_methods[j];
            mp_process *p;
            mp_process_opts o = {.start = mp_test_methods[k]};
            mp_ck_code(mp_process_new(&p, t_nested, s, &o), 0);
            mp_ck_code(mp_process_start(p), 0);
            mp_ck_code(mp_process_join(p, MP_T(60)), 0);
            int code;
            mp_ck_code(mp_process_exitcode(p, &code), 0);
            ck_assert_int_eq(code, 0);
            char want[300];
            snprintf(want, sizeof want, "%s:1", mp_process_name(p));
            ck_assert_str_eq(s[1].name, want);
            ck_assert_int_eq(s[1].parent, mp_process_pid(p));
            ck_assert_int_eq(s[0].pid, mp_process_pid(p));
            mp_process_free(p);
        }
    }
    mp_shared_free(s);
}

MP_TEST(sentinel_polls_at_end)
{
    for (int k = 0; k < 3; k++) {
        double s = MP_T(0.3); /* still running at the first poll */
        mp_process *p;
        mp_process_opts o = {.start = mp_test_methods[k], .arg_size = sizeof s};
        mp_ck_code(mp_process_new(&p, t_sleep, &s, &o), 0);
        mp_ck_code(mp_process_sentinel(p), MP_ESTATE);
        mp_ck_code(mp_process_start(p), 0);
        int fd = mp_process_sentinel(p);
        ck_assert_int_ge(fd, 0);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&pf, 1, 0), 0);
        ck_assert_int_eq(poll(&pf, 1, (int)(MP_T(10) * 1000)), 1);
        int code;
        /* Ended per the sentinel: the exit code is there at once. */
        mp_ck_code(mp_process_exitcode(p, &code), 0);
        ck_assert_int_eq(code, 0);
        mp_ck_code(mp_process_join(p, 0), 0);
        ck_assert_int_eq(poll(&pf, 1, 0), 1); /* stays readable */
        mp_process_free(p);
    }
}

MP_TEST(active_children_reaps)
{
    ck_assert_int_eq(mp_active_children(NULL, 0), 0);
    mp_process *p[3];
    double s = 30, q = 0;
    for (int k = 0; k < 3; k++)
        mp_ck_code(start_one(&p[k], t_sleep, &s, sizeof s, mp_test_methods[k]),
                   0);
    mp_process *quick;
    mp_ck_code(start_one(&quick, t_sleep, &q, sizeof q, MP_START_FORK), 0);
    ck_assert_int_eq(mp_test_wait_gone(mp_process_pid(quick), MP_T(10)), 1);
    mp_process *out[8];
    ck_assert_int_eq(mp_active_children(out, 8), 3);
    for (int k = 0; k < 3; k++) {
        int found = 0;
        for (int i = 0; i < 3; i++)
            found += out[i] == p[k];
        ck_assert_int_eq(found, 1);
    }
    /* The quick one was reaped as a side effect. */
    int code;
    mp_ck_code(mp_process_exitcode(quick, &code), 0);
    ck_assert_int_eq(mp_active_children(out, 1), 3); /* count beyond cap */
    mp_ck_code(mp_active_children(NULL, 1), MP_EINVAL);
    for (int k = 0; k < 3; k++) {
        mp_process_kill(p[k]);
        mp_process_join(p[k], MP_T(10));
        mp_process_free(p[k]);
    }
    mp_process_free(quick);
    ck_assert_int_eq(mp_active_children(NULL, 0), 0);
}

/* blob - a struct argument copied by value. */
struct blob {
    int a;
    char text[40];
};

static int t_check_blob(void *arg)
{
    struct blob *b = arg;
    return b->a == 41 && strcmp(b->text, "bytes") == 0 ? 0 : 1;
}

MP_TEST(arguments_travel)
{
    /* arg_size bytes are copied at start: the child sees them as they
       were then, whatever the parent does next. */
    for (int k = 0; k < 3; k++) {
        struct blob b = {41, "bytes"};
        mp_process *p;
        mp_ck_code(
            start_one(&p, t_check_blob, &b, sizeof b, mp_test_methods[k]), 0);
        b.a = 0;
        strcpy(b.text, "changed");
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        int code;
        mp_ck_code(mp_process_exitcode(p, &code), 0);
        ck_assert_int_eq(code, 0);
        mp_process_free(p);
    }
    /* A private pointer without arg_size cannot reach a fresh process. */
    mp_process *p;
    int priv = 1;
    mp_process_opts o = {.start = MP_START_SPAWN};
    mp_ck_code(mp_process_new(&p, t_exit, &priv, &o), 0);
    mp_ck_code(mp_process_start(p), MP_EINVAL);
    mp_process_free(p);
    o.start = MP_START_FORKSERVER;
    mp_ck_code(mp_process_new(&p, t_exit, &priv, &o), 0);
    mp_ck_code(mp_process_start(p), MP_EINVAL);
    mp_process_free(p);
    /* Under fork it is the child's copy of the parent's memory. */
    o.start = MP_START_FORK;
    mp_ck_code(mp_process_new(&p, t_exit, &priv, &o), 0);
    mp_ck_code(mp_process_start(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    int code;
    mp_process_exitcode(p, &code);
    ck_assert_int_eq(code, 1);
    mp_process_free(p);
}

static int t_write_shared(void *arg)
{
    int *v = arg;
    *v = 4242;
    return 0;
}

MP_TEST(arena_pointer_shared)
{
    for (int k = 0; k < 3; k++) {
        int *v = mp_shared_alloc(sizeof *v);
        ck_assert_int_eq(run_for_code(t_write_shared, v, 0, mp_test_methods[k]),
                         0);
        ck_assert_int_eq(*v, 4242);
        mp_shared_free(v);
    }
}

MP_TEST(bad_inputs)
{
    mp_process *p = NULL;
    int code;
    mp_ck_code(mp_process_new(NULL, t_exit, NULL, NULL), MP_EINVAL);
    mp_ck_code(mp_process_new(&p, NULL, NULL, NULL), MP_EINVAL);
    ck_assert_ptr_null(p);
    mp_process_opts bad = {.start = (mp_start_method)42};
    mp_ck_code(mp_process_new(&p, t_exit, NULL, &bad), MP_EINVAL);
    char longname[300];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    mp_process_opts ln = {.name = longname};
    mp_ck_code(mp_process_new(&p, t_exit, NULL, &ln), MP_ENAMETOOLONG);
    ck_assert_ptr_null(p);

    mp_ck_code(mp_process_start(NULL), MP_EINVAL);
    mp_ck_code(mp_process_join(NULL, 1), MP_EINVAL);
    mp_ck_code(mp_process_is_alive(NULL), MP_EINVAL);
    mp_ck_code(mp_process_terminate(NULL), MP_EINVAL);
    mp_ck_code(mp_process_kill(NULL), MP_EINVAL);
    mp_ck_code(mp_process_exitcode(NULL, &code), MP_EINVAL);
    mp_ck_code(mp_process_pid(NULL), MP_EINVAL);
    ck_assert_ptr_null(mp_process_name(NULL));
    mp_ck_code(mp_process_daemon(NULL), MP_EINVAL);
    mp_ck_code(mp_process_sentinel(NULL), MP_EINVAL);
    mp_ck_code(mp_process_close(NULL), MP_EINVAL);
    mp_process_free(NULL);

    int zero = 0;
    mp_process_opts o = {.arg_size = sizeof zero};
    mp_ck_code(mp_process_new(&p, t_exit, &zero, &o), 0);
    /* Before start. */
    mp_ck_code(mp_process_join(p, 1), MP_ESTATE);
    mp_ck_code(mp_process_exitcode(p, &code), MP_ESTATE);
    mp_ck_code(mp_process_exitcode(p, NULL), MP_EINVAL);
    mp_ck_code(mp_process_terminate(p), MP_ESTATE);
    mp_ck_code(mp_process_kill(p), MP_ESTATE);
    ck_assert_int_eq(mp_process_is_alive(p), 0);
    mp_ck_code(mp_process_sentinel(p), MP_ESTATE);
    mp_ck_code(mp_process_start(p), 0);
    /* Start twice. */
    mp_ck_code(mp_process_start(p), MP_ESTATE);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    mp_ck_code(mp_process_start(p), MP_ESTATE);
    mp_ck_code(mp_process_close(p), 0);

    mp_ck_code(mp_init(NULL, NULL, NULL), MP_EALREADY);
}

MP_TEST(close_while_running_is_busy)
{
    double s = 30;
    mp_process *p;
    mp_ck_code(start_one(&p, t_sleep, &s, sizeof s, MP_START_FORK), 0);
    mp_ck_code(mp_process_close(p), MP_EBUSY);
    mp_ck_code(mp_process_kill(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    mp_ck_code(mp_process_close(p), 0);
}

MP_TEST(free_while_running_detaches)
{
    /* Python's test_lose_target_ref: the process goes on without its
       object and is reaped when it ends. */
    for (int k = 0; k < 3; k++) {
        int *flag = mp_shared_alloc(sizeof *flag);
        mp_process *p;
        mp_ck_code(start_one(&p, t_write_shared, flag, 0, mp_test_methods[k]),
                   0);
        pid_t pid = mp_process_pid(p);
        mp_process_free(p);
        ck_assert_int_eq(mp_test_wait_gone(pid, MP_T(10)), 1);
        ck_assert_int_eq(*flag, 4242);
        /* Reaped here (for forkserver, by its server): not listed. */
        ck_assert_int_eq(mp_active_children(NULL, 0), 0);
        mp_shared_free(flag);
    }
}

MP_TEST(many_processes)
{
    /* CPython's test_many_processes: start many, terminate them all. */
    enum { N = 12 };
    mp_process *p[N];
    double s = 30;
    for (int i = 0; i < N; i++)
        mp_ck_code(
            start_one(&p[i], t_sleep, &s, sizeof s, mp_test_methods[i % 3]), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(mp_process_is_alive(p[i]), 1);
    for (int i = 0; i < N; i++)
        mp_ck_code(mp_process_terminate(p[i]), 0);
    for (int i = 0; i < N; i++) {
        mp_ck_code(mp_process_join(p[i], MP_T(20)), 0);
        int code;
        mp_ck_code(mp_process_exitcode(p[i], &code), 0);
        ck_assert_int_eq(code, -SIGTERM);
        mp_process_free(p[i]);
    }
}

static void *start_from_thread(void *arg)
{
    mp_process **pp = arg;
    double s = MP_T(0.5); /* still running when the thread has ended */
    if (start_one(pp, t_sleep, &s, sizeof s, MP_START_FORK) != 0)
        *pp = NULL;
    return NULL;
}

MP_TEST(child_outlives_starting_thread)
{
    /* The lifeline ties a child to the parent process, not to the thread
       that started it (PR_SET_PDEATHSIG would kill it here). */
    mp_process *p = NULL;
    pthread_t t;
    pthread_create(&t, NULL, start_from_thread, &p);
    pthread_join(t, NULL);
    ck_assert_ptr_nonnull(p);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    int code;
    mp_ck_code(mp_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, 0);
    mp_process_free(p);
}

MP_TEST(sigchld_ignored_is_an_error)
{
    struct sigaction old, ign = {.sa_handler = SIG_IGN};
    sigaction(SIGCHLD, &ign, &old);
    mp_process *p;
    int zero = 0;
    mp_process_opts o = {.arg_size = sizeof zero};
    mp_ck_code(mp_process_new(&p, t_exit, &zero, &o), 0);
    mp_ck_code(mp_process_start(p), MP_ECHILD);
    sigaction(SIGCHLD, &old, NULL);
    mp_ck_code(mp_process_start(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    mp_process_free(p);
}

static int t_print(void *arg)
{
    (void)arg;
    fputs("child-line\n", stdout);
    return 0;
}

MP_TEST(stdio_not_duplicated)
{
    /* Unflushed parent output must not be written again by a fork child. */
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    int saved = dup(1);
    dup2(fds[1], 1);
    close(fds[1]);
    fputs("parent-line\n", stdout); /* buffered: stdout is a pipe now */
    for (int k = 0; k < 3; k++)
        ck_assert_int_eq(run_for_code(t_print, NULL, 0, mp_test_methods[k]), 0);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    char buf[512] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    ck_assert_int_gt(n, 0);
    int parents = 0, children = 0;
    for (char *s = buf; (s = strstr(s, "parent-line")) != NULL; s++)
        parents++;
    for (char *s = buf; (s = strstr(s, "child-line")) != NULL; s++)
        children++;
    ck_assert_int_eq(parents, 1);
    ck_assert_int_eq(children, 3);
}

MP_TEST(forkserver_restarts_after_death)
{
    double s = 30;
    mp_process *p;
    mp_ck_code(start_one(&p, t_sleep, &s, sizeof s, MP_START_FORKSERVER), 0);
    /* The server is our only other child. */
    char path[64], buf[256] = {0};
    snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    pid_t server = atoi(buf);
    ck_assert_int_gt(server, 0);
    ck_assert_int_ne(server, mp_process_pid(p));
    kill(server, SIGKILL);
    /* Its child dies with it and is reported as killed. */
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    int code;
    mp_ck_code(mp_process_exitcode(p, &code), 0);
    ck_assert_int_eq(code, -SIGKILL);
    mp_process_free(p);
    /* A new server serves the next start. */
    int c = 5;
    ck_assert_int_eq(run_for_code(t_exit, &c, sizeof c, MP_START_FORKSERVER),
                     5);
}

/* A child of process parent (from /proc) that is not pid not, or 0. */
static pid_t other_child(pid_t parent, pid_t not )
{
    char path[64], buf[256] = {0};
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", parent, parent);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    if (fgets(buf, sizeof buf, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    char *s = buf, *end;
    for (long v; (v = strtol(s, &end, 10)) > 0; s = end)
        if (v != not )
            return (pid_t)v;
    return 0;
}

/* The server's pid: its starter's child that is not p. */
static pid_t server_of(mp_process *p)
{
    return other_child(getpid(), mp_process_pid(p));
}

/* Start a forkserver child that sleeps 30 s in *p; its server's pid. */
static pid_t sleeper_and_server(mp_process **p)
{
    double s = 30;
    mp_ck_code(start_one(p, t_sleep, &s, sizeof s, MP_START_FORKSERVER), 0);
    pid_t server = server_of(*p);
    ck_assert_int_gt(server, 0);
    return server;
}

static int t_grandchild_then_killed(void *arg)
{
    /* Its own fork child ends first with 7: that status belongs to the
       grandchild, not to us. */
    int seven = 7;
    mp_process *g;
    mp_process_opts o = {.start = MP_START_FORK, .arg_size = sizeof seven};
    (void)arg;
    if (mp_process_new(&g, t_exit, &seven, &o) != 0 ||
        mp_process_start(g) != 0 || mp_process_join(g, MP_T(30)) != 0)
        return 1;
    mp_process_free(g);
    raise(SIGKILL);
    return 2;
}

MP_TEST(forkserver_child_status_is_its_own)
{
    /* Whether the server or the child's own word tells the code is a
       race; repeated, a child's word that was its grandchild's shows. */
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(run_for_code(t_grandchild_then_killed, NULL, 0,
                                      MP_START_FORKSERVER),
                         -SIGKILL);
}

static int t_sigint_as_started(void *arg)
{
    (void)arg;
    struct sigaction sa;
    sigaction(SIGINT, NULL, &sa);
    return sa.sa_handler == SIG_DFL ? 0 : 1;
}

MP_TEST(forkserver_survives_ctrl_c)
{
    mp_process *p;
    pid_t server = sleeper_and_server(&p);
    /* What a terminal's Ctrl-C would send it. */
    ck_assert_int_eq(kill(server, SIGINT), 0);
    sleep_s(MP_T(0.2));
    ck_assert_int_eq(mp_process_is_alive(p), 1); /* no lifeline fired */
    /* The same server starts the next child, which sees SIGINT as its
       starter left it, not ignored. */
    mp_process *q;
    mp_ck_code(start_one(&q, t_sigint_as_started, NULL, 0, MP_START_FORKSERVER),
               0);
    mp_ck_code(mp_process_join(q, MP_T(30)), 0);
    int code = -1;
    mp_ck_code(mp_process_exitcode(q, &code), 0);
    ck_assert_int_eq(code, 0);
    ck_assert_int_eq(server_of(p), server);
    mp_process_free(q);
    mp_process_kill(p);
    mp_ck_code(mp_process_join(p, MP_T(30)), 0);
    mp_process_free(p);
}

/* parents - the two sleepers of fork_child_leaves_parents_children. */
static mp_process *parents[2];

static int t_touch_parents(void *arg)
{
    (void)arg;
    if (mp_process_sentinel(parents[0]) != MP_ECHILD ||
        mp_process_terminate(parents[0]) != MP_ECHILD)
        return 1;
    mp_process_free(parents[0]); /* our copy only */
    if (mp_active_children(NULL, 0) != 0)
        return 2;
    return 0;
}

MP_TEST(fork_child_leaves_parents_children)
{
    double s = 30;
    for (int i = 0; i < 2; i++)
        mp_ck_code(start_one(&parents[i], t_sleep, &s, sizeof s, MP_START_FORK),
                   0);
    ck_assert_int_eq(run_for_code(t_touch_parents, NULL, 0, MP_START_FORK), 0);
    mp_process *seen[4];
    ck_assert_int_eq(mp_active_children(seen, 4), 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(mp_process_is_alive(parents[i]), 1);
        mp_process_kill(parents[i]);
        mp_ck_code(mp_process_join(parents[i], MP_T(30)), 0);
        mp_process_free(parents[i]);
    }
}

MP_TEST(forkserver_from_big_parent)
{
    /* Start cost must not depend on the parent's memory: 256 MiB touched
       here (the benchmark measures 1 GiB). */
    size_t sz = (size_t)256 << 20;
    char *volatile big = malloc(sz); /* volatile: not optimised away */
    ck_assert_ptr_nonnull(big);
    memset(big, 1, sz);
    int c = 9;
    ck_assert_int_eq(run_for_code(t_exit, &c, sizeof c, MP_START_FORKSERVER),
                     9);
    free(big);
}

MP_TEST(forkserver_spare_killed_while_waiting)
{
    mp_process *p;
    pid_t server = sleeper_and_server(&p);
    /* The server's children: p, and the spare it forked after answering
       (the default keeps one). */
    pid_t spare = 0;
    for (int i = 0; i < 3000 && spare == 0; i++)
        if ((spare = other_child(server, mp_process_pid(p))) == 0)
            usleep(1000);
    ck_assert_int_gt(spare, 0);
    kill(spare, SIGKILL);
    /* Once it is dead: a spare killed at the very moment it is handed a
       launch is that child killed, as any. */
    ck_assert(mp_test_wait_gone(spare, MP_T(5)));
    /* The next starts are served all the same, with their own codes. */
    for (int i = 0; i < 3; i++) {
        int c = 40 + i;
        ck_assert_int_eq(
            run_for_code(t_exit, &c, sizeof c, MP_START_FORKSERVER), 40 + i);
    }
    mp_ck_code(mp_process_terminate(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(10)), 0);
    mp_process_free(p);
}
