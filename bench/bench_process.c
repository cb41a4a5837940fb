/* bench_process.c - start+join of a no-op process under each start method,
   and from a parent with 1 GiB of touched heap; "raw" runs the plain
   Linux calls (fork, vfork, posix_spawn, each + waitpid) for comparison.
   Usage: bench_process multiproc|warm|raw [runs [figure-prefix]] (warm:
   forkserver_spares = 4, the warm start; a prefix selects only the
   figures whose names start with the prefix). */
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

static double raw_vfork_once(void)
{
    double t0 = bench_now();
    pid_t pid = vfork();
    if (pid == 0)
        _exit(0);
    waitpid(pid, NULL, 0);
    return bench_now() - t0;
}

static double mp_fork(void)
{
    return mp_once(MP_START_FORK);
}

static double mp_spawn(void)
{
    return mp_once(MP_START_SPAWN);
}

static double mp_forkserver(void)
{
    return mp_once(MP_START_FORKSERVER);
}

/* A warm start (mp_config.forkserver_spares > 0): the start call alone,
   then the join; start+join is mp_forkserver's in a warm run. */
static double mp_warm_start(void)
{
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORKSERVER};
    if (mp_process_new(&p, noop, NULL, &o) != 0)
        exit(1);
    double t0 = bench_now();
    if (mp_process_start(p) != 0)
        exit(1);
    double t = bench_now() - t0;
    if (mp_process_join(p, MP_FOREVER) != 0)
        exit(1);
    mp_process_free(p);
    return t;
}

/* figure - one line of output: its name, one start+join, and how. */
struct figure {
    const char *name;
    double (*once)(void);
    int flags;
};

enum {
    BIG = 1, /* from a parent with 1 GiB of touched heap */
    FEW = 2  /* slow: runs / 5 + 1 runs */
};

/* In order; the BIG ones last (the heap is touched once and kept). A new
   figure, such as another start of the library, is one more line. */
static const struct figure mp_figures[] = {
    {"process.start_join.fork", mp_fork, 0},
    {"process.start_join.spawn", mp_spawn, 0},
    {"process.start_join.forkserver", mp_forkserver, 0},
    {"process.start_join.forkserver_1g", mp_forkserver, BIG},
    {"process.start_join.fork_1g", mp_fork, BIG | FEW},
};

/* The same process run as "warm": four forkserver children lent ahead. */
static const struct figure warm_figures[] = {
    {"process.start_join.warm", mp_forkserver, 0},
    {"process.start_call.warm", mp_warm_start, 0},
};

/* The raw Linux calls: fork, posix_spawn of this program, and vfork (the
   floor of "a new process runs": no copy of the page tables). */
static const struct figure raw_figures[] = {
    {"process.start_join.fork", raw_fork_once, 0},
    {"process.start_join.spawn", raw_spawn_once, 0},
    {"process.start_join.vfork", raw_vfork_once, 0},
    {"process.start_join.fork_1g", raw_fork_once, BIG | FEW},
};

/* The median in ms of runs calls of once, after 3 warm-ups. */
static double median_ms(int runs, double (*once)(void))
{
    double *v = malloc(sizeof(double) * (size_t)runs);
    for (int i = 0; i < 3; i++)
        once();
    for (int i = 0; i < runs; i++)
        v[i] = once() * 1e3;
    double m = bench_median(v, (size_t)runs);
    free(v);
    return m;
}

static void run(const struct figure *f, size_t n, const char *impl, int runs)
{
    char *big = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!bench_want(f[i].name))
            continue;
        if ((f[i].flags & BIG) && big == NULL &&
            (big = bench_touch((size_t)1 << 30)) == NULL) {
            fprintf(stderr, "bench_process: no memory for 1 GiB\n");
            exit(1);
        }
        int r = f[i].flags & FEW ? runs / 5 + 1 : runs;
        bench_report(f[i].name, impl, median_ms(r, f[i].once), "ms");
    }
    free(big);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exit") == 0)
        return 0; /* the raw spawn child: exec, then exit at once */
    const char *impl = argc > 1 ? argv[1] : "multiproc";
    int warm = strcmp(impl, "warm") == 0;
    mp_config cfg = {.forkserver_spares = warm ? 4 : 0};
    if (mp_init(&argc, &argv, &cfg) != 0)
        return 1;
    int runs = argc > 2 ? atoi(argv[2]) : 50;
    bench_select(argc > 3 ? argv[3] : NULL);
    self_path = argv[0];
    if (strcmp(impl, "raw") == 0)
        run(raw_figures, sizeof raw_figures / sizeof *raw_figures, impl, runs);
    else if (warm)
        run(warm_figures, sizeof warm_figures / sizeof *warm_figures,
            "multiproc", runs);
    else
        run(mp_figures, sizeof mp_figures / sizeof *mp_figures, impl, runs);
    return 0;
}
