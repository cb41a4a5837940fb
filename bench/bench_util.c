/* bench_util.c - timing, medians and output lines for the benchmarks. */
#include "bench_util.h"

#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_report(const char *name, const char *impl, double value,
                  const char *unit)
{
    printf("bench=%s impl=%s value=%.6g unit=%s\n", name, impl, value, unit);
    fflush(stdout);
}

char *bench_touch(size_t n)
{
    char *p = malloc(n);
    if (p != NULL)
        memset(p, 1, n);
    return p;
}

static const char *selected;

void bench_select(const char *prefix)
{
    selected = prefix != NULL && prefix[0] != '\0' ? prefix : NULL;
}

int bench_want(const char *name)
{
    return selected == NULL || strncmp(name, selected, strlen(selected)) == 0;
}

int bench_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int bench_write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r <= 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

struct mp_process *bench_start(int (*fn)(void *), void *arg)
{
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORK};
    if (mp_process_new(&p, fn, arg, &o) != 0 || mp_process_start(p) != 0) {
        fprintf(stderr, "bench: cannot start a child\n");
        exit(1);
    }
    return p;
}

void bench_finish(struct mp_process *p, const char *who)
{
    int code = -1;
    mp_process_join(p, MP_FOREVER);
    mp_process_exitcode(p, &code);
    mp_process_free(p);
    if (code != 0) {
        fprintf(stderr, "%s: a child failed\n", who);
        exit(1);
    }
}

const char *bench_init(int *argc, char ***argv, double dflt, double *scale)
{
    if (mp_init(argc, argv, NULL) != 0) {
        fprintf(stderr, "bench: mp_init failed\n");
        exit(1);
    }
    int n = *argc;
    char **v = *argv;
    *scale = n > 2 ? atof(v[2]) : dflt;
    bench_select(n > 3 ? v[3] : NULL);
    return n > 1 ? v[1] : "multiproc";
}
