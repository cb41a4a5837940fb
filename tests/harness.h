/* harness.h - the shared main() of the test programs: one test per
   process, then checks that nothing was left behind. */
#ifndef MP_TEST_HARNESS_H
#define MP_TEST_HARNESS_H

#include <check.h>

#include "multiproc.h"

/* mp_test_suite - the tests of one test program (each file defines it). */
Suite *mp_test_suite(void);

/* mp_test_add - add test t to s in a test case of its own name, so that
   CTest can run it alone ("prog name"). */
#define mp_test_add(s, t) mp_test_add_(s, t, #t)
void mp_test_add_(Suite *s, const TTest *t, const char *name);

/* mp_test_methods - the three start methods, for loop tests. */
extern const mp_start_method mp_test_methods[3];

/* mp_test_wait_gone - wait up to timeout seconds for pid (not our child)
   to disappear; 1 if it did. */
int mp_test_wait_gone(pid_t pid, double timeout);

/* mp_test_now - CLOCK_MONOTONIC seconds. */
double mp_test_now(void);

/* mp_test_sleep - sleep s seconds. */
void mp_test_sleep(double s);

/* mp_test_start - new + start a child running fn(arg) (arg_size bytes
   copied when nonzero) with method m; fails the test on error. */
mp_process *mp_test_start(mp_target_fn fn, void *arg, size_t arg_size,
                          mp_start_method m);

/* mp_test_finish - join p (at most timeout seconds, failing the test
   otherwise), free it, return its exit code. */
int mp_test_finish(mp_process *p, double timeout);

#endif
