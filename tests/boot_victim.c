/* boot_victim.c - a program that calls mp_init first and then says what
   happened, for the tests that forge its boot value and descriptors (a
   forged boot must never take the child path: it never returns here). */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int r = mp_init(&argc, &argv, NULL);
    printf("victim: main ran, mp_init %s, euid %d, %s\n", mp_err_name(r),
           (int)geteuid(),
           getenv("MP__BOOT") == NULL ? "MP__BOOT gone" : "MP__BOOT left");
    return r == 0 ? 0 : 1;
}
