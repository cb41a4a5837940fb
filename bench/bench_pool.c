/* bench_pool.c - Pool costs: map with chunksize 1 (per task), apply_async
   of 10,000 tasks (per task), a default-chunksize map of a million trivial
   items (items per second), a map of a million byte strings of 10 to
   100 bytes (items per second), a context map's time over a plain map's at
   chunksize 0 and 1 (interleaved; below 1.05 is the bar), a range map
   against an array map of 10 million items, the speed-up of a CPU-bound
   map from 1 to 2 workers, and Pool(2) create+close+join. Usage:
   bench_pool [scale] */
#include "bench_util.h"

#include <multiproc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void check(int r)
{
    if (r != 0) {
        fprintf(stderr, "bench_pool: %s\n", mp_err_name(r));
        exit(1);
    }
}

static int twice(const void *in, void *out)
{
    *(int64_t *)out = *(const int64_t *)in * 2;
    return 0;
}

/* The same work through a context (the factor) and over a range. */
static int times(const void *ctx, const void *in, void *out)
{
    *(int64_t *)out = *(const int64_t *)in * *(const int64_t *)ctx;
    return 0;
}

static int index_times(const void *ctx, size_t i, void *out)
{
    *(int64_t *)out = (int64_t)i * *(const int64_t *)ctx;
    return 0;
}

/* Interleaved rounds of a plain map and a context map of n items with
   chunksize cs: the context map's time over the plain one's (medians). */
static double ctx_over_plain(mp_pool *pool, const int64_t *in, int64_t *out,
                             size_t n, size_t cs)
{
    int64_t two = 2;
    mp_map_opts plain = {.chunksize = cs};
    mp_map_opts ctx = {.chunksize = cs, .ctx = &two, .ctx_size = sizeof two};
    double a[7], b[7];
    for (int i = 0; i < 7; i++) {
        double t0 = bench_now();
        check(mp_pool_map(pool, twice, in, 8, out, 8, n, &plain));
        double t1 = bench_now();
        check(mp_pool_map_ctx(pool, times, in, 8, out, 8, n, &ctx));
        a[i] = t1 - t0;
        b[i] = bench_now() - t1;
    }
    return bench_median(b, 7) / bench_median(a, 7);
}

/* A byte string reversed (Python: s[::-1]). */
static int rev(const void *ctx, const void *in, size_t len, mp_result *res)
{
    (void)ctx;
    char buf[128];
    for (size_t i = 0; i < len; i++)
        buf[i] = ((const char *)in)[len - 1 - i];
    return mp_result_set(res, buf, len);
}

static int echo(const void *arg, size_t len, mp_result *res)
{
    return mp_result_set(res, arg, len);
}

/* About 2 ms of arithmetic. */
static int burn(const void *in, void *out)
{
    uint64_t x = (uint64_t) * (const int64_t *)in;
    for (int i = 0; i < 2000000; i++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    *(uint64_t *)out = x;
    return 0;
}

static mp_pool *pool_of(int n)
{
    mp_pool *p;
    mp_pool_opts o = {.processes = n};
    if (mp_pool_new(&p, &o) != 0)
        exit(1);
    return p;
}

int main(int argc, char **argv)
{
    if (mp_init(&argc, &argv, NULL) != 0)
        return 1;
    double scale = argc > 1 ? atof(argv[1]) : 1;
    const char *impl = "multiproc";
    double v[5];
    /* First, from a small parent: with fork, a pool's start cost grows
       with the parent's memory (page tables), which is not the pool's. */
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        mp_pool *p = pool_of(2);
        check(mp_pool_close(p));
        check(mp_pool_join(p, MP_FOREVER));
        v[i] = (bench_now() - t0) * 1e3;
        mp_pool_free(p);
    }
    bench_report("pool.create_close_join", impl, bench_median(v, 5), "ms");
    size_t n = (size_t)(1000000 * scale);
    int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        in[i] = (int64_t)i;
    mp_pool *pool = pool_of(2);

    size_t n1 = (size_t)(200000 * scale);
    mp_map_opts one = {.chunksize = 1};
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        check(mp_pool_map(pool, twice, in, 8, out, 8, n1, &one));
        v[i] = (bench_now() - t0) / (double)n1 * 1e6;
    }
    bench_report("pool.map_chunksize1", impl, bench_median(v, 5), "us/task");

    enum { NA = 10000 };
    mp_async **as = malloc(NA * sizeof *as);
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        for (int k = 0; k < NA; k++)
            check(mp_pool_apply_async(pool, echo, &k, sizeof k, &as[k]));
        for (int k = 0; k < NA; k++) {
            void *r = NULL;
            check(mp_async_get(as[k], &r, NULL, MP_FOREVER));
            free(r);
            mp_async_free(as[k]);
        }
        v[i] = (bench_now() - t0) / NA * 1e6;
    }
    free(as);
    bench_report("pool.apply_async", impl, bench_median(v, 5), "us/task");

    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        check(mp_pool_map(pool, twice, in, 8, out, 8, n, NULL));
        v[i] = (double)n / (bench_now() - t0) / 1e6;
    }
    bench_report("pool.map_default_1M", impl, bench_median(v, 5), "Mitems/s");

    /* A million byte strings of 10 to 100 bytes, in one private buffer
       (as a program's strings are), reversed. */
    char *text = malloc(n * 100);
    mp_bytes *strs = malloc(n * sizeof *strs);
    if (text == NULL || strs == NULL)
        check(MP_ENOMEM);
    for (size_t i = 0; i < n; i++) {
        size_t len = 10 + i % 91;
        for (size_t k = 0; k < len; k++)
            text[i * 100 + k] = (char)('a' + (i + k) % 26);
        strs[i] = (mp_bytes){text + i * 100, len};
    }
    for (int i = 0; i < 5; i++) {
        mp_bytes *res;
        double t0 = bench_now();
        check(mp_pool_map_bytes(pool, rev, strs, n, &res, NULL));
        v[i] = (double)n / (bench_now() - t0) / 1e6;
        mp_bytes_free(res);
    }
    bench_report("pool.map_bytes_1M", impl, bench_median(v, 5), "Mitems/s");
    free(text);
    free(strs);

    /* A context costs (nearly) nothing: same run, interleaved. */
    bench_report("pool.ctx_over_plain_cs0", impl,
                 ctx_over_plain(pool, in, out, n, 0), "x");
    bench_report("pool.ctx_over_plain_cs1", impl,
                 ctx_over_plain(pool, in, out, n1, 1), "x");

    /* A range map against an array map of the same items, arrays in the
       arena for both (no staging): 10 million trivial items. */
    size_t nr = (size_t)(10000000 * scale);
    int64_t *ain = mp_shared_alloc(nr * 8), *aout = mp_shared_alloc(nr * 8);
    if (ain == NULL || aout == NULL)
        check(MP_ENOMEM);
    for (size_t i = 0; i < nr; i++)
        ain[i] = (int64_t)i;
    int64_t two = 2;
    mp_map_opts rmo = {.ctx = &two, .ctx_size = sizeof two};
    double ra[5], rr[5];
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now();
        check(mp_pool_map(pool, twice, ain, 8, aout, 8, nr, NULL));
        double t1 = bench_now();
        check(mp_pool_map_range(pool, index_times, 0, nr, aout, 8, &rmo));
        ra[i] = (double)nr / (t1 - t0) / 1e6;
        rr[i] = (double)nr / (bench_now() - t1) / 1e6;
    }
    bench_report("pool.array_map_10M", impl, bench_median(ra, 5), "Mitems/s");
    bench_report("pool.range_map_10M", impl, bench_median(rr, 5), "Mitems/s");
    mp_shared_free(ain);
    mp_shared_free(aout);
    mp_pool_free(pool);

    size_t nc = (size_t)(200 * scale) + 2;
    double t[2];
    for (int w = 1; w <= 2; w++) {
        mp_pool *p = pool_of(w);
        for (int i = 0; i < 3; i++) {
            double t0 = bench_now();
            check(mp_pool_map(p, burn, in, 8, out, 8, nc, NULL));
            v[i] = bench_now() - t0;
        }
        t[w - 1] = bench_median(v, 3);
        mp_pool_free(p);
    }
    bench_report("pool.cpu_speedup_1to2", impl, t[0] / t[1], "x");

    free(in);
    free(out);
    return 0;
}
