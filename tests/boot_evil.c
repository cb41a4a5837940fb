/* boot_evil.c - the attacker's shared object for the forged-boot tests:
   loading it, or running its target, says so on standard output. */
#include <stdio.h>
#include <unistd.h>

__attribute__((constructor)) static void loaded(void)
{
    printf("victim: evil loaded, euid %d\n", (int)geteuid());
    fflush(stdout);
}

/* boot_evil_target - the target a forged launch block names. */
int boot_evil_target(void *arg);

int boot_evil_target(void *arg)
{
    (void)arg;
    printf("victim: evil ran, euid %d\n", (int)geteuid());
    fflush(stdout);
    return 42;
}
