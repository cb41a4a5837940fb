/* test_core.c - the small parts of the core module: error names and
   messages (error.c), mp_cpu_count and the cgroup quota (cpu.c), and
   timeouts turned into deadlines (deadline.c). */
#include "harness.h"

#include "../src/core/core.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

MP_TEST(every_code_has_name_and_text)
{
    struct {
        int code;
        const char *name;
    } all[] = {
#define ROW(name, value, text) {value, #name},
        MP_ERROR_LIST(ROW)
#undef ROW
    };
    size_t n = sizeof all / sizeof all[0];
    ck_assert_int_gt(n, 30);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_lt(all[i].code, 0);
        ck_assert_str_eq(mp_err_name(all[i].code), all[i].name);
        ck_assert_str_ne(mp_strerror(all[i].code), "unknown error");
        for (size_t j = 0; j < i; j++)
            ck_assert_int_ne(all[i].code, all[j].code);
    }
    ck_assert_int_eq(MP_ETIMEDOUT, -ETIMEDOUT);
    ck_assert_int_eq(MP_EOWNERDEAD, -EOWNERDEAD);
    ck_assert_int_le(MP_EOF, -1000);
    ck_assert_str_eq(mp_err_name(0), "MP_OK");
    ck_assert_str_eq(mp_strerror(0), "success");
    ck_assert_str_eq(mp_err_name(-99999), "MP_E?");
    ck_assert_str_eq(mp_strerror(-99999), "unknown error");
    ck_assert_str_eq(mp_err_name(MP_ENOINIT), "MP_ENOINIT");
}

MP_TEST(cpu_count_override)
{
    int base = mp_cpu_count();
    ck_assert_int_ge(base, 1);
    setenv("MP_CPU_COUNT", "37", 1);
    ck_assert_int_eq(mp_cpu_count(), 37);
    setenv("MP_CPU_COUNT", "0", 1);
    ck_assert_int_eq(mp_cpu_count(), base);
    setenv("MP_CPU_COUNT", "-3", 1);
    ck_assert_int_eq(mp_cpu_count(), base);
    setenv("MP_CPU_COUNT", "4x", 1);
    ck_assert_int_eq(mp_cpu_count(), base);
    unsetenv("MP_CPU_COUNT");
    ck_assert_int_eq(mp_cpu_count(), base);
}

MP_TEST(cpu_count_follows_affinity)
{
    /* In a child pinned to one CPU, the count is 1. */
    pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            _exit(2);
        _exit(mp_cpu_count() == 1 ? 0 : 1);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 0);
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
    ck_assert_int_le(mp_cpu_count(), CPU_COUNT(&set));
}

MP_TEST(cpu_quota_parsing)
{
    ck_assert_int_eq(mp__cpu_quota_from("max 100000\n"), 0);
    ck_assert_int_eq(mp__cpu_quota_from("150000 100000\n"), 2);
    ck_assert_int_eq(mp__cpu_quota_from("100000 100000"), 1);
    ck_assert_int_eq(mp__cpu_quota_from("50000 100000"), 1);
    ck_assert_int_eq(mp__cpu_quota_from("400000 100000"), 4);
    ck_assert_int_eq(mp__cpu_quota_from(""), 0);
    ck_assert_int_eq(mp__cpu_quota_from("garbage"), 0);
    ck_assert_int_eq(mp__cpu_quota_from("100 0"), 0);
}

MP_TEST(deadlines)
{
    uint64_t dl;
    mp_ck_code(mp__deadline(-1, &dl), 0);
    ck_assert(dl == MP__NO_DEADLINE);
    mp_ck_code(mp__deadline(MP_FOREVER, &dl), 0);
    ck_assert(dl == MP__NO_DEADLINE);
    mp_ck_code(mp__deadline(0, &dl), 0);
    ck_assert(dl == 0);
    mp_ck_code(mp__deadline(1e300, &dl), 0);
    ck_assert(dl == MP__NO_DEADLINE);
    mp_ck_code(mp__deadline(0.0 / 0.0, &dl), MP_EINVAL);
    mp_ck_code(mp__deadline(1.5, &dl), 0);
    ck_assert(dl > 1500000000u);
}

/* A waiter whose spins go unanswered stops spinning, looks again on one
   wait in 64, and spins again once a look is answered. */
MP_TEST(spinner_learns_when_spinning_pays)
{
    struct mp__spinner s = {0};
    int misses = 0;
    while (mp__spin_worth(&s)) {
        mp__spin_learn(&s, 0);
        misses++;
        ck_assert_int_lt(misses, 100);
    }
    ck_assert_int_ge(misses, 5); /* one slow answer is not a pattern */
    int probes = 0;
    for (int i = 0; i < 640; i++)
        if (mp__spin_worth(&s)) {
            probes++;
            mp__spin_learn(&s, 0);
        }
    ck_assert_int_eq(probes, 10);
    while (!mp__spin_worth(&s))
        ;
    mp__spin_learn(&s, 1); /* the probe was answered */
    ck_assert_int_eq(mp__spin_worth(&s), 1);
    for (int i = 0; i < 20; i++)
        mp__spin_learn(&s, i % 2); /* half answered: worth spinning */
    ck_assert_int_eq(mp__spin_worth(&s), 1);
}
