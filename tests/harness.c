/* harness.c - main() of every test program: mp_init, run the named test
   alone, then fail it if a child process, a file descriptor or a
   /dev/shm name was left behind. */
#include "harness.h"

#include "../src/process/process_internal.h"

#include <dirent.h>
#include <errno.h>
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

void mp_test_add_(Suite *s, const TTest *t, const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 0);
    tcase_add_checked_fixture(tc, default_signals, NULL);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
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
    ck_assert_int_eq(mp_process_new(&p, fn, arg, &o), 0);
    ck_assert_int_eq(mp_process_start(p), 0);
    return p;
}

int mp_test_finish(mp_process *p, double timeout)
{
    ck_assert_int_eq(mp_process_join(p, timeout), 0);
    int code = -1000;
    ck_assert_int_eq(mp_process_exitcode(p, &code), 0);
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
    int r = mp_init(&argc, &argv, NULL);
    if (r != 0) {
        fprintf(stderr, "mp_init: %s\n", mp_strerror(r));
        return 2;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    char *fds0 = fd_listing();
    char *shm0 = listing("/dev/shm");
    Suite *s = mp_test_suite();
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run(sr, NULL, argc > 1 ? argv[1] : NULL, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    int ran = srunner_ntests_run(sr);
    srunner_free(sr);
    if (ran == 0) {
        fprintf(stderr, "harness: no test named %s\n", argv[1]);
        return 1;
    }
    /* What the library keeps for the whole process (its forkserver) is
       not a leak of the test. */
    mp__forkserver_stop();
    int leaks = 0;
    for (int i = 0; i < 200 && count_children(0) > 0; i++) {
        reap_zombies();
        if (count_children(0) == 0)
            break;
        usleep(10000);
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
