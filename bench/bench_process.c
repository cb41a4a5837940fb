/* bench_process.c - start+join of a no-op process under each start method,
   and from a parent with 1 GiB of touched heap; "raw" runs the plain
   Linux calls (fork+waitpid, posix_spawn+waitpid) for comparison.
   Usage: bench_process multiproc|raw [runs] */
#include "bench_util.h"

#include <multiproc.h>

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int noop(void *arg)
{
    (void)arg;
    return 0;
}

static double mp_once(mp_start_method how)
{
    mp_process *p;
    mp_process_opts o = {.start = how};
    double t0 = bench_now();
    if (mp_process_new(&p, noop, NULL, &o) != 0 || mp_process_start(p) != 0 ||
        mp_process_join(p, MP_FOREVER) != 0) {
        fprintf(stderr, "bench_process: start failed\n");
        exit(1);
    }
    double t = bench_now() - t0;
    mp_process_free(p);
    return t;
}

static double raw_fork_once(void)
{
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return bench_now() - t0;
}

static char *self_path;

static double raw_spawn_once(void)
{
    char *argv[] = {self_path, "--exit", NULL};
    double t0 = bench_now();
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        exit(1);
    waitpid(pid, NULL, 0);
    return bench_now() - t0;
}

/* The median in ms of runs calls of one way of starting, after warm-up. */
static double median_ms(int runs, double (*once)(int), int arg)
{
    double *v = malloc(sizeof(double) * (size_t)runs);
    for (int i = 0; i < 3; i++)
        once(arg);
    for (int i = 0; i < runs; i++)
        v[i] = once(arg) * 1e3;
    double m = bench_median(v, (size_t)runs);
    free(v);
    return m;
}

static double mp_fork(int a)
{
    (void)a;
    return mp_once(MP_START_FORK);
}
static double mp_spawn(int a)
{
    (void)a;
    return mp_once(MP_START_SPAWN);
}
static double mp_fs(int a)
{
    (void)a;
    return mp_once(MP_START_FORKSERVER);
}
static double raw_fork(int a)
{
    (void)a;
    return raw_fork_once();
}
static double raw_spawn(int a)
{
    (void)a;
    return raw_spawn_once();
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exit") == 0)
        return 0; /* the raw spawn child: exec, then exit at once */
    if (mp_init(&argc, &argv, NULL) != 0)
        return 1;
    const char *impl = argc > 1 ? argv[1] : "multiproc";
    int runs = argc > 2 ? atoi(argv[2]) : 50;
    self_path = argv[0];
    if (strcmp(impl, "raw") == 0) {
        bench_report("process.start_join.fork", "raw",
                     median_ms(runs, raw_fork, 0), "ms");
        bench_report("process.start_join.spawn", "raw",
                     median_ms(runs, raw_spawn, 0), "ms");
        char *big = bench_touch((size_t)1 << 30);
        bench_report("process.start_join.fork_1g", "raw",
                     median_ms(runs / 5 + 1, raw_fork, 0), "ms");
        free(big);
        return 0;
    }
    bench_report("process.start_join.fork", "multiproc",
                 median_ms(runs, mp_fork, 0), "ms");
    bench_report("process.start_join.spawn", "multiproc",
                 median_ms(runs, mp_spawn, 0), "ms");
    bench_report("process.start_join.forkserver", "multiproc",
                 median_ms(runs, mp_fs, 0), "ms");
    char *big = bench_touch((size_t)1 << 30);
    bench_report("process.start_join.forkserver_1g", "multiproc",
                 median_ms(runs, mp_fs, 0), "ms");
    bench_report("process.start_join.fork_1g", "multiproc",
                 median_ms(runs / 5 + 1, mp_fork, 0), "ms");
    free(big);
    return 0;
}
