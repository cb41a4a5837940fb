/* bench_util.h - timing, medians and the one output line format shared by
   the benchmark programs. */
#ifndef MP_BENCH_UTIL_H
#define MP_BENCH_UTIL_H

#include <stddef.h>

/* bench_now - CLOCK_MONOTONIC seconds. */
double bench_now(void);

/* bench_median - the median of n values (sorts them in place). */
double bench_median(double *v, size_t n);

/* bench_report - print "bench=<name> impl=<impl> value=<v> unit=<unit>". */
void bench_report(const char *name, const char *impl, double value,
                  const char *unit);

/* bench_touch - n bytes of heap, every page written (a big parent). */
char *bench_touch(size_t n);

#endif
