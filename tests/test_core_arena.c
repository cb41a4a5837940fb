/* test_core_arena.c - the family arena allocator: basics, sharing across
   start methods, concurrent use, and processes killed inside it. */
#include "harness.h"

#include "../src/core/core.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void assert_consistent(void)
{
    const char *why = NULL;
    int r = mp__arena_check(&why);
    ck_assert_msg(r == 0, "arena inconsistent: %s", why ? why : "?");
}

MP_TEST(alloc_free_basics)
{
    ck_assert_ptr_null(mp_shared_alloc(0));
    ck_assert_ptr_null(mp_shared_alloc((size_t)1 << 62));
    ck_assert_ptr_null(mp_shared_alloc(SIZE_MAX));
    char *a = mp_shared_alloc(100);
    char *b = mp_shared_alloc(5000);
    char *c = mp_shared_alloc(1);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq((uintptr_t)a % 16, 0);
    ck_assert_int_eq((uintptr_t)b % 16, 0);
    ck_assert_int_eq(mp_shared_contains(a), 1);
    ck_assert_int_eq(mp_shared_contains(&a), 0);
    ck_assert_int_eq(mp_shared_contains(NULL), 0);
    int dirty = 0;
    for (int i = 0; i < 100; i++)
        dirty += a[i] != 0;
    ck_assert_int_eq(dirty, 0);
    memset(a, 0xab, 100);
    memset(b, 0xcd, 5000);
    mp_shared_free(a);
    /* Recycled memory comes back zeroed. */
    char *a2 = mp_shared_alloc(100);
    ck_assert_ptr_eq(a2, a);
    int nonzero = 0, changed = 0;
    for (int i = 0; i < 100; i++)
        nonzero += a2[i] != 0;
    for (int i = 0; i < 5000; i++)
        changed += (unsigned char)b[i] != 0xcd;
    ck_assert_int_eq(nonzero, 0);
    ck_assert_int_eq(changed, 0);
    mp_shared_free(a2);
    mp_shared_free(b);
    mp_shared_free(c);
    assert_consistent();
    struct mp__arena_stats st;
    mp__arena_stats(&st);
    ck_assert_int_eq(st.blocks, 0);
}

MP_TEST(bad_frees_ignored)
{
    struct mp__arena_stats st0, st1;
    mp__arena_stats(&st0);
    char *a = mp_shared_alloc(64);
    char *keep = mp_shared_alloc(64); /* so that a is not at the top */
    mp_shared_free(NULL);
    int local;
    mp_shared_free(&local); /* not in the arena */
    mp_shared_free(a + 16); /* inside a block */
    mp_shared_free(a + 3);  /* misaligned */
    mp_shared_free(a);
    mp_shared_free(a); /* double free */
    mp__arena_stats(&st1);
    /* Counted: the frees of arena addresses that are not live blocks
       (the other two are refused before the allocator is entered). */
    ck_assert_int_eq(st1.bad_frees - st0.bad_frees, 2);
    assert_consistent();
    mp_shared_free(keep);
    assert_consistent();
}

MP_TEST(random_alloc_free_consistent)
{
    enum { N = 4000 };
    static void *ptrs[N];
    static size_t sizes[N];
    srand(1234);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            if (ptrs[i] != NULL && rand() % 2) {
                unsigned char *p = ptrs[i];
                size_t bad = 0;
                for (size_t k = 0; k < sizes[i]; k++)
                    bad += p[k] != (unsigned char)i;
                ck_assert_msg(bad == 0, "block %d: %zu bytes changed", i, bad);
                mp_shared_free(ptrs[i]);
                ptrs[i] = NULL;
            } else if (ptrs[i] == NULL) {
                size_t sz = (size_t)(rand() % 4) == 0
                                ? (size_t)(rand() % 200000) + 1
                                : (size_t)(rand() % 300) + 1;
                ptrs[i] = mp_shared_alloc(sz);
                ck_assert_ptr_nonnull(ptrs[i]);
                sizes[i] = sz;
                memset(ptrs[i], (unsigned char)i, sz);
            }
        }
        assert_consistent();
    }
    for (int i = 0; i < N; i++)
        mp_shared_free(ptrs[i]);
    assert_consistent();
    struct mp__arena_stats st;
    mp__arena_stats(&st);
    ck_assert_int_eq(st.blocks, 0);
    ck_assert_int_eq(st.free_bytes, 0); /* all merged back into the top */
}

MP_TEST(aligned_allocations)
{
    void *p[64];
    for (int i = 0; i < 64; i++) {
        size_t align = (size_t)16 << (i % 9);
        p[i] = mp__arena_alloc((size_t)(i * 37 + 1), align);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_int_eq((uintptr_t)p[i] % align, 0);
    }
    for (int i = 0; i < 64; i += 2)
        mp_shared_free(p[i]);
    for (int i = 0; i < 64; i += 2) {
        p[i] = mp__arena_alloc(100, 4096);
        ck_assert_int_eq((uintptr_t)p[i] % 4096, 0);
    }
    assert_consistent();
    for (int i = 0; i < 64; i++)
        mp_shared_free(p[i]);
    assert_consistent();
    ck_assert_ptr_null(mp__arena_alloc(10, 24)); /* not a power of two */
}

/* shared_msg - what a child leaves in memory it allocated itself. */
static int t_alloc_child(void *arg)
{
    void **slot = arg;
    char *p = mp_shared_alloc(4096);
    if (p == NULL)
        return 1;
    strcpy(p, "from the child");
    *slot = p;
    return 0;
}

MP_TEST(cross_process_every_method)
{
    for (int k = 0; k < 3; k++) {
        void **slot = mp_shared_alloc(sizeof *slot);
        mp_process *p;
        mp_process_opts o = {.start = mp_test_methods[k]};
        mp_ck_code(mp_process_new(&p, t_alloc_child, slot, &o), 0);
        mp_ck_code(mp_process_start(p), 0);
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        int code;
        mp_process_exitcode(p, &code);
        ck_assert_int_eq(code, 0);
        ck_assert_ptr_nonnull(*slot);
        ck_assert_str_eq((char *)*slot, "from the child");
        mp_shared_free(*slot); /* freed by another process than its owner */
        mp_shared_free(slot);
        mp_process_free(p);
    }
    assert_consistent();
}

static int t_churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *mine[64] = {0};
    for (int i = 0; i < 50000; i++) {
        int k = (int)(rand_r(&seed) % 64);
        if (mine[k]) {
            if (*(unsigned *)mine[k] != (unsigned)k)
                return 2; /* someone else wrote into our block */
            mp_shared_free(mine[k]);
            mine[k] = NULL;
        } else {
            mine[k] = mp_shared_alloc(16 + rand_r(&seed) % 3000);
            if (mine[k] == NULL)
                return 1;
            *(unsigned *)mine[k] = (unsigned)k;
        }
    }
    for (int k = 0; k < 64; k++)
        mp_shared_free(mine[k]);
    return 0;
}

MP_TEST(concurrent_processes)
{
    mp_process *p[3];
    for (int i = 0; i < 3; i++) {
        mp_process_opts o = {.start = MP_START_FORK};
        mp_ck_code(
            mp_process_new(&p[i], t_churn, (void *)(uintptr_t)(i + 1), &o), 0);
        mp_ck_code(mp_process_start(p[i]), 0);
    }
    int r = t_churn((void *)(uintptr_t)99);
    ck_assert_int_eq(r, 0);
    for (int i = 0; i < 3; i++) {
        mp_ck_code(mp_process_join(p[i], MP_T(60)), 0);
        int code;
        mp_process_exitcode(p[i], &code);
        ck_assert_int_eq(code, 0);
        mp_process_free(p[i]);
    }
    assert_consistent();
    struct mp__arena_stats st;
    mp__arena_stats(&st);
    ck_assert_int_eq(st.blocks, 0);
}

/* die_at - the step at which the child kills itself in the allocator. */
static int die_at;

static void die_hook(int step)
{
    if (step == die_at)
        raise(SIGKILL);
}

static int t_die_inside(void *arg)
{
    die_at = *(int *)arg;
    mp__arena_fault_hook = die_hook;
    void *keep[8];
    /* Exercise every path: fresh blocks, splits, merges, top returns. */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 8; i++)
            keep[i] = mp__arena_alloc(100 + (size_t)i * 300, i % 2 ? 16 : 256);
        for (int i = 0; i < 8; i += 2)
            mp_shared_free(keep[i]);
        for (int i = 1; i < 8; i += 2)
            mp_shared_free(keep[i]);
    }
    return 0; /* the hook never fired */
}

MP_TEST(killed_inside_allocator_every_step)
{
    /* Pre-fragment so that the child meets free blocks to split. */
    void *frag[16];
    for (int i = 0; i < 16; i++)
        frag[i] = mp_shared_alloc(512);
    for (int i = 0; i < 16; i += 2)
        mp_shared_free(frag[i]);
    for (int step = 1; step <= 7; step++) {
        struct mp__arena_stats st0, st1;
        mp__arena_stats(&st0);
        mp_process *p;
        mp_process_opts o = {.start = MP_START_FORK, .arg_size = sizeof step};
        mp_ck_code(mp_process_new(&p, t_die_inside, &step, &o), 0);
        mp_ck_code(mp_process_start(p), 0);
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        int code;
        mp_process_exitcode(p, &code);
        ck_assert_msg(code == -SIGKILL, "step %d: code %d", step, code);
        mp_process_free(p);
        /* The next user takes over the lock and repairs the heap. */
        void *x = mp_shared_alloc(777);
        ck_assert_ptr_nonnull(x);
        mp__arena_stats(&st1);
        ck_assert_int_eq(st1.recoveries, st0.recoveries + 1);
        assert_consistent();
        mp_shared_free(x);
        assert_consistent();
    }
    for (int i = 1; i < 16; i += 2)
        mp_shared_free(frag[i]);
    assert_consistent();
}

static int t_die_carving_top(void *arg)
{
    (void)arg;
    die_at = 4; /* headers written above the top, the top not yet moved */
    mp__arena_fault_hook = die_hook;
    mp__arena_alloc(100, 4096);
    return 0;
}

MP_TEST(killed_carving_top_leaves_no_dirt)
{
    /* The top ends 64 bytes past a page: the child's page-aligned block
       leaves a gap, whose header and its own land in fresh memory. */
    void *anchor = mp__arena_alloc(64, 4096);
    ck_assert_ptr_nonnull(anchor);
    struct mp__arena_stats st;
    mp__arena_stats(&st);
    ck_assert_uint_eq(st.top % 4096, 64);
    mp_process *p;
    mp_process_opts o = {.start = MP_START_FORK};
    mp_ck_code(mp_process_new(&p, t_die_carving_top, NULL, &o), 0);
    mp_ck_code(mp_process_start(p), 0);
    mp_ck_code(mp_process_join(p, MP_T(30)), 0);
    int code;
    mp_process_exitcode(p, &code);
    ck_assert_int_eq(code, -SIGKILL);
    mp_process_free(p);
    /* Whatever covers the dead child's headers now must read as zero:
       new blocks are promised cleared. */
    unsigned char *b[8];
    for (int i = 0; i < 8; i++) {
        b[i] = mp_shared_alloc(1000);
        ck_assert_ptr_nonnull(b[i]);
        for (int j = 0; j < 1000; j++)
            ck_assert_msg(b[i][j] == 0, "block %d byte %d is %#x", i, j,
                          b[i][j]);
    }
    for (int i = 0; i < 8; i++)
        mp_shared_free(b[i]);
    mp_shared_free(anchor);
    assert_consistent();
}

MP_TEST(killed_at_random_moments)
{
    /* 20 children churning, each SIGKILLed at a random moment: the arena
       stays consistent and usable after every one. */
    srand((unsigned)time(NULL));
    for (int trial = 0; trial < 20; trial++) {
        mp_process *p;
        mp_process_opts o = {.start = MP_START_FORK};
        mp_ck_code(
            mp_process_new(&p, t_churn, (void *)(uintptr_t)(trial + 7), &o), 0);
        mp_ck_code(mp_process_start(p), 0);
        struct timespec ts = {0, (long)(rand() % 20000) * 1000};
        nanosleep(&ts, NULL);
        mp_process_kill(p);
        mp_ck_code(mp_process_join(p, MP_T(30)), 0);
        mp_process_free(p);
        void *x = mp_shared_alloc(1234);
        ck_assert_ptr_nonnull(x);
        mp_shared_free(x);
        assert_consistent();
    }
}

MP_TEST(exhaustion_returns_null)
{
    /* The arena is 4 GiB of address space; ask for more in pieces. */
    void *big[8];
    int n = 0;
    for (; n < 8; n++) {
        big[n] = mp_shared_alloc((size_t)1 << 30);
        if (big[n] == NULL)
            break;
    }
    ck_assert_int_lt(n, 8);
    ck_assert_int_ge(n, 2);
    void *small = mp_shared_alloc(64); /* small ones may still fit */
    for (int i = 0; i < n; i++)
        mp_shared_free(big[i]);
    mp_shared_free(small);
    assert_consistent();
    struct mp__arena_stats st;
    mp__arena_stats(&st);
    ck_assert_int_eq(st.blocks, 0);
}
