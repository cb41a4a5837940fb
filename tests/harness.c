/* harness.c - main() of every test program: read the time scale, mp_init,
   run the named test alone, then fail it if a child process, a file
   descriptor or a /dev/shm name was left behind.

   The time scale. MP_TEST_TIME_SCALE (a positive number, default 1)
   multiplies what MP_T() scales. Run by hand:
       MP_TEST_TIME_SCALE=4 build/tests/test_sync_lock lock_basics
   Under CTest it comes from the build: tests/CMakeLists.txt puts it in
   every test's ENVIRONMENT and multiplies the CTest TIMEOUTs by it: 3 in
   an MP_SANITIZE build, else 1. To choose another value, have
   MP_TEST_TIME_SCALE in the environment when CMake configures (make
   configures on every run: MP_TEST_TIME_SCALE=5 make test, or make asan),
   or configure with -DMP_TEST_TIME_SCALE=5 (kept in the cache). A value
   set only when ctest runs is overridden by ENVIRONMENT. */
#include "harness.h"

#include "../src/process/process_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const mp_start_method mp_test_methods[3] = {MP_START_FORK, MP_START_SPAWN,
                                            MP_START_FORKSERVER};

/* Check's runner installs SIGTERM and SIGINT handlers that kill the whole
   process group; fork children would inherit them (handlers survive
   fork, as in Python), so a test that terminates a child would take the
   test down. No test here needs them. */
static void default_signals(void)
{
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}

/* tests, ntests, tests_cap - the tests MP_TEST registered (sorted by
   main() into the order of definition), their count, the room. */
static const TTest **tests;
static size_t ntests, tests_cap;

void mp_test_register_(const TTest *t)
{
    if (ntests == tests_cap) {
        tests_cap = tests_cap ? tests_cap * 2 : 64;
        tests = realloc(tests, tests_cap * sizeof *tests);
        if (tests == NULL) {
            fprintf(stderr, "harness: out of memory registering %s\n", t->name);
            abort();
        }
    }
    tests[ntests++] = t;
}

/* by_place - qsort order by file, then line: the order of definition,
   whatever order the constructors ran in (the C standard does not say). */
static int by_place(const void *a, const void *b)
{
    const TTest *x = *(const TTest *const *)a, *y = *(const TTest *const *)b;
    int c = strcmp(x->file, y->file);
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* registered_suite - a suite of every registered test, each in a test
   case of its own name, so that srunner_run can run one alone by that
   name. */
static Suite *registered_suite(const char *prog)
{
    Suite *s = suite_create(prog);
    for (size_t i = 0; i < ntests; i++) {
        TCase *tc = tcase_create(tests[i]->name);
        tcase_set_timeout(tc, 0);
        tcase_add_checked_fixture(tc, default_signals, NULL);
        tcase_add_test(tc, tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

/* find_test - the test called name, or NULL. */
static const TTest *find_test(const char *name)
{
    for (size_t i = 0; i < ntests; i++)
        if (strcmp(tests[i]->name, name) == 0)
            return tests[i];
    return NULL;
}

const char *mp_test_code_str(long long code, char *buf, size_t n)
{
    if (code > 0)
        snprintf(buf, n, "%lld", code);
    else
        snprintf(buf, n, "%s (%lld)",
                 code < INT_MIN ? "MP_E?" : mp_err_name((int)code), code);
    return buf;
}

/* scale - the time scale; set once by read_scale before anything runs. */
static double scale = 1;

double mp_test_scale(void)
{
    return scale;
}

/* read_scale - read MP_TEST_TIME_SCALE into scale; 0, or -1 after saying
   why it is invalid. The bound keeps scaled waits within what poll's int
   milliseconds and CTest's timeouts can hold. */
static int read_scale(void)
{
    const char *v = getenv("MP_TEST_TIME_SCALE");
    if (v == NULL)
        return 0;
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0' || errno != 0 || !isfinite(d) || d <= 0 ||
        d > 1000) {
        fprintf(stderr,
                "harness: MP_TEST_TIME_SCALE=\"%s\" is invalid: it must be a "
                "number greater than 0 and at most 1000 (unset: 1)\n",
                v);
        return -1;
    }
    scale = d;
    return 0;
}

double mp_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void mp_test_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

mp_process *mp_test_start(mp_target_fn fn, void *arg, size_t arg_size,
                          mp_start_method m)
{
    mp_process *p = NULL;
    mp_process_opts o = {.start = m, .arg_size = arg_size};
    mp_ck_code(mp_process_new(&p, fn, arg, &o), 0);
    mp_ck_code(mp_process_start(p), 0);
    return p;
}

int mp_test_finish(mp_process *p, double timeout)
{
    mp_ck_code(mp_process_join(p, timeout), 0);
    int code = -1000;
    mp_ck_code(mp_process_exitcode(p, &code), 0);
    mp_process_free(p);
    return code;
}

int mp_test_wait_gone(pid_t pid, double timeout)
{
    int fd = pidfd_open(pid, 0);
    if (fd < 0)
        return errno == ESRCH;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r = poll(&p, 1, (int)(timeout * 1000));
    close(fd);
    return r == 1;
}

/* A listing of a directory as one sorted string, for before/after. */
static char *listing(const char *dir)
{
    DIR *d = opendir(dir);
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);
    if (d == NULL)
        return out;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(e->d_name);
        if (len + n + 2 >= cap) {
            cap = (cap + n) * 2;
            out = realloc(out, cap);
        }
        memcpy(out + len, e->d_name, n);
        len += n;
        out[len++] = ' ';
        out[len] = '\0';
    }
    closedir(d);
    return out;
}

/* The fd list without the descriptor opendir itself used. */
static char *fd_listing(void)
{
    char *l = listing("/proc/self/fd");
    /* The highest entry is opendir's own: drop the last number. */
    int max = -1;
    for (char *p = l; *p;) {
        int v = atoi(p);
        if (v > max)
            max = v;
        p = strchr(p, ' ') + 1;
    }
    char *out = calloc(1, strlen(l) + 1);
    for (char *p = l; *p;) {
        int v = atoi(p);
        if (v != max) {
            char num[16];
            snprintf(num, sizeof num, "%d ", v);
            strcat(out, num);
        }
        p = strchr(p, ' ') + 1;
    }
    free(l);
    return out;
}

static int count_children(int report)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", getpid());
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int count = 0;
    for (char *p = strtok(buf, " \n"); p; p = strtok(NULL, " \n")) {
        pid_t pid = atoi(p);
        if (report) {
            fprintf(stderr, "harness: child %d left behind; killing it\n", pid);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        count++;
    }
    return count;
}

/* Reap children that already ended (orphaned grandchildren come to us:
   we are a subreaper). */
static void reap_zombies(void)
{
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) != 0 || si.si_pid == 0)
            break;
    }
}

int main(int argc, char **argv)
{
    /* Before mp_init: a spawn or forkserver child never returns from it,
       and inherits a value the parent has already accepted. */
    if (read_scale() != 0)
        return 2;
    if (ntests > 1)
        qsort(tests, ntests, sizeof *tests, by_place);
    int r = mp_init(&argc, &argv, NULL);
    if (r != 0) {
        fprintf(stderr, "mp_init: %s\n", mp_strerror(r));
        return 2;
    }
    if (argc > 2) {
        fprintf(stderr, "usage: %s [TEST]\n", argv[0]);
        return 2;
    }
    if (argc == 2 && find_test(argv[1]) == NULL) {
        fprintf(stderr,
                "harness: %s has no test named \"%s\"; its tests:", argv[0],
                argv[1]);
        for (size_t i = 0; i < ntests; i++)
            fprintf(stderr, " %s", tests[i]->name);
        fprintf(stderr, "\n");
        return 2;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    char *fds0 = fd_listing();
    char *shm0 = listing("/dev/shm");
    const char *prog = strrchr(argv[0], '/');
    SRunner *sr = srunner_create(registered_suite(prog ? prog + 1 : argv[0]));
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run(sr, NULL, argc > 1 ? argv[1] : NULL, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int ran = srunner_ntests_run(sr);
    srunner_free(sr);
    /* Not one test ran: the program defines none, or Check skipped it
       (CK_RUN_CASE or CK_RUN_SUITE in the environment). */
    if (ran == 0) {
        fprintf(stderr, "harness: no test ran\n");
        return 1;
    }
    /* What the library keeps for the whole process (its forkserver) is
       not a leak of the test. */
    mp__forkserver_stop();
    int leaks = 0;
    /* Children the test ended may still be on their way out: 2 s,
       scaled. */
    for (int i = 0; i < 200 && count_children(0) > 0; i++) {
        reap_zombies();
        if (count_children(0) == 0)
            break;
        mp_test_sleep(MP_T(0.01));
    }
    if (count_children(0) > 0) {
        leaks++;
        count_children(1);
    }
    char *fds1 = fd_listing();
    if (strcmp(fds0, fds1) != 0) {
        fprintf(stderr,
                "harness: descriptors before: %s\n"
                "harness: descriptors after:  %s\n",
                fds0, fds1);
        leaks++;
    }
    char *shm1 = listing("/dev/shm");
    if (strcmp(shm0, shm1) != 0) {
        fprintf(stderr, "harness: /dev/shm before: %s\nafter: %s\n", shm0,
                shm1);
        leaks++;
    }
    free(fds0);
    free(fds1);
    free(shm0);
    free(shm1);
    return failed || leaks ? 1 : 0;
}
