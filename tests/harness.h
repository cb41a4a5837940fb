/* harness.h - what every test program shares: the MP_TEST definition that
   registers a test, the code assertion, the time scale, and helpers. */
#ifndef MP_TEST_HARNESS_H
#define MP_TEST_HARNESS_H

#include <check.h>

#include "multiproc.h"

/* MP_TEST - define the test name; its body follows in braces:
       MP_TEST(lock_basics)
       {
           ...
       }
   Writing it is the whole registration: a constructor adds it to the
   harness's table before main(), main() runs it alone when the program is
   called as "prog name" (each in a test case of its own name), and
   tests/CMakeLists.txt finds "MP_TEST(name)" in the source with a regex and
   makes it the CTest test "prog.name". So the name must be written plainly
   ([A-Za-z0-9_], no macro) at the start of a line. */
#define MP_TEST(name)                                                          \
    static void name##_fn(int _i CK_ATTRIBUTE_UNUSED);                         \
    static const TTest name##_ttest = {#name, name##_fn, __FILE__, __LINE__};  \
    __attribute__((constructor)) static void name##_register(void)             \
    {                                                                          \
        mp_test_register_(&name##_ttest);                                      \
    }                                                                          \
    static void name##_fn(int _i CK_ATTRIBUTE_UNUSED)

/* mp_test_register_ - add t to the table main() runs from (MP_TEST's
   constructors call it; nothing else should). */
void mp_test_register_(const TTest *t);

/* mp_ck_code - fail the test unless the result code got equals want (0 or
   an MP_E* code). Each is evaluated once. On a mismatch the message names
   both codes, e.g.
       mp_queue_get(q, buf, 8, 0) returned MP_EEMPTY (-1004), want MP_OK (0)
   (a positive value, a length or count where a code was wanted, is
   written as a plain number). It is ck_assert_msg underneath, so it
   behaves as ck_assert does wherever it is used. For counts, lengths,
   indexes, flags and exit codes, use ck_assert_int_eq. */
#define mp_ck_code(got, want)                                                  \
    do {                                                                       \
        long long mp_ck_got_ = (long long)(got);                               \
        long long mp_ck_want_ = (long long)(want);                             \
        char mp_ck_gs_[64], mp_ck_ws_[64];                                     \
        ck_assert_msg(                                                         \
            mp_ck_got_ == mp_ck_want_, "%s returned %s, want %s", #got,        \
            mp_test_code_str(mp_ck_got_, mp_ck_gs_, sizeof mp_ck_gs_),         \
            mp_test_code_str(mp_ck_want_, mp_ck_ws_, sizeof mp_ck_ws_));       \
    } while (0)

/* mp_test_code_str - code as "MP_EEMPTY (-1004)" (a positive value as
   just its number) in buf of n bytes; returns buf. For mp_ck_code. */
const char *mp_test_code_str(long long code, char *buf, size_t n);

/* mp_test_scale - the time multiplier: MP_TEST_TIME_SCALE from the
   environment (a positive number, at most 1000; default 1), read once when
   the program starts, which exits with a message when it is invalid.
   Slow machines and sanitizer builds set it (tests/CMakeLists.txt sets it
   to 3 for MP_SANITIZE builds). */
double mp_test_scale(void);

/* MP_T - seconds scaled by mp_test_scale(): for what depends on how fast
   the machine is (how long a call may take at most, how long to wait for
   a child to end, sleeps that give something time to happen), never for
   a timeout that is itself under test (mp_lock_acquire(l, 0.2) must still
   time out after 0.2 s; only the bound on how long it took is scaled). */
#define MP_T(seconds) ((seconds)*mp_test_scale())

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
