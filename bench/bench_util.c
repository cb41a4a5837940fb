/* bench_util.c - timing, medians and output lines for the benchmarks. */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
