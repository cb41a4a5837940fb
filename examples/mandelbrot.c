/* mandelbrot.c - the Benchmarks Game's mandelbrot: `mandelbrot N` writes
   the N x N Mandelbrot set to stdout as a binary PBM, its rows computed
   by a pool's map into an arena array that is written out once. */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>

#define ITERATIONS 50
#define MAX_N      65536 /* 512 MiB of bits: far below the arena's 4 GiB */

/* One row's work. Under spawn and forkserver a worker is a fresh run of
   this program whose globals were never set by main, so the item carries
   everything the worker needs: the size and the row. */
typedef struct row_item {
    int n;
    int y;
} row_item;

static void check(int r, const char *what)
{
    if (r < 0) {
        fprintf(stderr, "mandelbrot: %s: %s\n", what, mp_strerror(r));
        exit(1);
    }
}

/* 1 when c = cr + ci i stays within radius 2 (|z|^2 <= 4) for 50
   iterations of z = z^2 + c from 0, computed as the benchmark does (the
   squares are kept, so each iteration multiplies three times). */
static int in_set(double cr, double ci)
{
    double zr = 0.0, zi = 0.0, tr = 0.0, ti = 0.0;
    for (int i = 0; i < ITERATIONS && tr + ti <= 4.0; i++) {
        zi = 2.0 * zr * zi + ci;
        zr = tr - ti + cr;
        tr = zr * zr;
        ti = zi * zi;
    }
    return tr + ti <= 4.0;
}

/* The map function: row y of the picture, x in [-1.5, 0.5) and y in
   [-1, 1), 8 pixels a byte with the leftmost in the high bit; the last
   byte of a row is padded with zeros when n is not a multiple of 8. */
static int render_row(const void *in, void *out)
{
    const row_item *it = in;
    unsigned char *row = out;
    double ci = 2.0 * it->y / it->n - 1.0;
    for (int x0 = 0; x0 < it->n; x0 += 8) {
        unsigned bits = 0;
        for (int x = x0; x < x0 + 8; x++) {
            bits <<= 1;
            if (x < it->n && in_set(2.0 * x / it->n - 1.5, ci))
                bits |= 1;
        }
        row[x0 / 8] = (unsigned char)bits;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* First: a spawned or forkserver worker starts here too, and never
       returns from this call (it runs its pool's loop instead). */
    check(mp_init(&argc, &argv, NULL), "mp_init");
    char *end;
    long n = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || *end != '\0' || n < 1 || n > MAX_N) {
        fprintf(stderr, "usage: mandelbrot N (1 to %d)\n", MAX_N);
        return 1;
    }
    size_t row_bytes = ((size_t)n + 7) / 8;

    row_item *items = malloc((size_t)n * sizeof *items);
    if (items == NULL)
        check(MP_ENOMEM, "malloc");
    for (long y = 0; y < n; y++)
        items[y] = (row_item){.n = (int)n, .y = (int)y};
    /* The picture lives in the arena: the workers write their rows in
       place, and nothing is copied back. */
    unsigned char *bits = mp_shared_alloc((size_t)n * row_bytes);
    if (bits == NULL)
        check(MP_ENOMEM, "mp_shared_alloc");

    /* Defaults: mp_cpu_count() workers (MP_CPU_COUNT overrides), started
       by the default method (MP_START_METHOD overrides). Rows in the
       middle cost more than those at the edges: the automatic (guided)
       chunks hand out small pieces at the end, so no worker idles long. */
    mp_pool *pool;
    check(mp_pool_new(&pool, NULL), "mp_pool_new");
    check(mp_pool_map(pool, render_row, items, sizeof *items, bits, row_bytes,
                      (size_t)n, NULL),
          "mp_pool_map");
    check(mp_pool_close(pool), "mp_pool_close");
    check(mp_pool_join(pool, MP_FOREVER), "mp_pool_join");
    mp_pool_free(pool);
    free(items);

    printf("P4\n%ld %ld\n", n, n);
    fwrite(bits, row_bytes, (size_t)n, stdout);
    int failed = fflush(stdout) != 0 || ferror(stdout);
    if (failed)
        perror("mandelbrot: stdout");
    mp_shared_free(bits);
    return failed;
}
