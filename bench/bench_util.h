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

/* bench_init - mp_init, then the arguments every benchmark program takes:
   returns the impl (argv[1], default "multiproc"), sets *scale (argv[2],
   default dflt) and selects the figures named by argv[3] (bench_select).
   Exits the program when mp_init fails. */
const char *bench_init(int *argc, char ***argv, double dflt, double *scale);

/* bench_start - a fork child running fn(arg), started; exits the program
   on failure. */
struct mp_process;
struct mp_process *bench_start(int (*fn)(void *), void *arg);

/* bench_finish - join p and free it; exits the program with a message
   naming who when the child did not return 0. */
void bench_finish(struct mp_process *p, const char *who);

/* bench_touch - n bytes of heap, every page written (a big parent). */
char *bench_touch(size_t n);

/* bench_select - measure only the figures whose names start with prefix
   (NULL or "": all); run.py's shared pass uses it to pick the round
   trips. */
void bench_select(const char *prefix);

/* bench_want - whether the figure name was selected. */
int bench_want(const char *name);

/* bench_read_full, bench_write_full - n bytes from (to) fd, looping over
   short reads and writes; 0, or -1 on an error or end of file. */
int bench_read_full(int fd, void *buf, size_t n);
int bench_write_full(int fd, const void *buf, size_t n);

#endif
