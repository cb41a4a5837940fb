/* spectral_norm.c - the Benchmarks Game's spectral-norm: `spectral_norm N`
   prints the spectral norm of the N x N corner of an infinite matrix, its
   matrix-vector products split into row ranges run by a pool's map over
   vectors that live in the family arena. */
#include <multiproc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_N 1000000
#define ROWS  16 /* rows per item: the pool groups items into chunks */

/* A range of rows of one product, out = A in (or A^T in). The vectors are
   arena pointers: the same address in every process of the family, so
   the item can carry them to a worker started by any method (a spawned
   worker sees none of main's variables). */
typedef struct rows_item {
    const double *in;
    double *out;
    int n, lo, hi, transposed;
} rows_item;

static void check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "spectral_norm: %s: %s\n", what, mp_strerror(r));
        exit(1);
    }
}

/* A(i, j) = 1 / ((i + j)(i + j + 1) / 2 + i + 1), from 0: the entries of
   the infinite matrix 1, 1/2, 1/4, 1/7 ... (long: i + j squared passes
   INT_MAX from N = 32768). */
static double a(long i, long j)
{
    return 1.0 / (double)((i + j) * (i + j + 1) / 2 + i + 1);
}

/* The map function: rows lo to hi of the product, each a sum over j in
   order, as the serial program adds them: the result is the same bits
   however the rows are split. */
static int product_rows(const void *in, void *out)
{
    (void)out; /* the result is written to the arena vector */
    const rows_item *r = in;
    for (int i = r->lo; i < r->hi; i++) {
        double sum = 0.0;
        if (r->transposed)
            for (int j = 0; j < r->n; j++)
                sum += a(j, i) * r->in[j];
        else
            for (int j = 0; j < r->n; j++)
                sum += a(i, j) * r->in[j];
        r->out[i] = sum;
    }
    return 0;
}

/* out = A in, or A^T in, in parallel: one map over the row ranges. */
static void multiply(mp_pool *pool, rows_item *items, size_t count,
                     const double *in, double *out, int transposed)
{
    for (size_t k = 0; k < count; k++) {
        items[k].in = in;
        items[k].out = out;
        items[k].transposed = transposed;
    }
    check(mp_pool_map(pool, product_rows, items, sizeof *items, NULL, 0, count,
                      NULL),
          "mp_pool_map");
}

/* out = A^T A in, through tmp: two maps, since the second product needs
   every row of the first. */
static void multiply_ata(mp_pool *pool, rows_item *items, size_t count,
                         const double *in, double *out, double *tmp)
{
    multiply(pool, items, count, in, tmp, 0);
    multiply(pool, items, count, tmp, out, 1);
}

int main(int argc, char **argv)
{
    /* First: a spawned or forkserver worker starts here too, and never
       returns from this call (it runs its pool's loop instead). */
    check(mp_init(&argc, &argv, NULL), "mp_init");
    char *end;
    long n = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || n < 1 || n > MAX_N) {
        fprintf(stderr, "usage: spectral_norm N (1 to %d)\n", MAX_N);
        return 1;
    }

    /* u, v and tmp, one block of the arena; the items too, so that a map
       reads them in place instead of copying them in. */
    double *u = mp_shared_alloc(3 * (size_t)n * sizeof *u);
    size_t count = ((size_t)n + ROWS - 1) / ROWS;
    rows_item *items = mp_shared_alloc(count * sizeof *items);
    if (u == NULL || items == NULL)
        check(MP_ENOMEM, "mp_shared_alloc");
    double *v = u + n, *tmp = v + n;
    for (long i = 0; i < n; i++)
        u[i] = 1.0;
    for (size_t k = 0; k < count; k++) {
        long lo = (long)k * ROWS, hi = lo + ROWS < n ? lo + ROWS : n;
        items[k] = (rows_item){.n = (int)n, .lo = (int)lo, .hi = (int)hi};
    }

    /* Defaults: mp_cpu_count() workers (MP_CPU_COUNT overrides), started
       by the default method (MP_START_METHOD overrides). */
    mp_pool *pool;
    check(mp_pool_new(&pool, NULL), "mp_pool_new");
    for (int k = 0; k < 10; k++) {
        multiply_ata(pool, items, count, u, v, tmp);
        multiply_ata(pool, items, count, v, u, tmp);
    }
    check(mp_pool_close(pool), "mp_pool_close");
    check(mp_pool_join(pool, MP_FOREVER), "mp_pool_join");
    mp_pool_free(pool);

    /* The power method's estimate of the largest eigenvalue of A^T A,
       whose square root is the norm of A. */
    double vbv = 0.0, vv = 0.0;
    for (long i = 0; i < n; i++) {
        vbv += u[i] * v[i];
        vv += v[i] * v[i];
    }
    printf("%0.9f\n", sqrt(vbv / vv));
    int failed = fflush(stdout) != 0;
    if (failed)
        perror("spectral_norm: stdout");
    mp_shared_free(items);
    mp_shared_free(u);
    return failed;
}
