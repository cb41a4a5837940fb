/* mandelbrot_ref.c - a serial mandelbrot, the Benchmarks Game's algorithm
   written out pixel by pixel as its reference program does: the bytes
   examples/mandelbrot must produce (tests/examples_check.sh). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2 || atoi(argv[1]) < 1) {
        fprintf(stderr, "usage: mandelbrot_ref N\n");
        return 1;
    }
    int w = atoi(argv[1]), h = w;
    printf("P4\n%d %d\n", w, h);
    /* Pixels are shifted into a byte as they come; a row's last byte is
       shifted the rest of the way, so its padding bits are zeros. */
    for (int y = 0; y < h; y++) {
        unsigned byte = 0;
        int bit = 0;
        for (int x = 0; x < w; x++) {
            double zr = 0.0, zi = 0.0, tr = 0.0, ti = 0.0;
            double cr = 2.0 * x / w - 1.5, ci = 2.0 * y / h - 1.0;
            for (int i = 0; i < 50 && tr + ti <= 4.0; i++) {
                zi = 2.0 * zr * zi + ci;
                zr = tr - ti + cr;
                tr = zr * zr;
                ti = zi * zi;
            }
            byte = byte << 1 | (tr + ti <= 4.0);
            if (++bit == 8) {
                putchar((int)byte);
                byte = 0;
                bit = 0;
            } else if (x == w - 1) {
                putchar((int)((byte << (8 - w % 8)) & 0xff));
                byte = 0;
                bit = 0;
            }
        }
    }
    return fflush(stdout) != 0;
}
