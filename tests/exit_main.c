/* exit_main.c - a program that starts a daemon child and a worker child
   and returns from main without joining: the library must terminate the
   daemon and join the worker. Run by test_process_lifetime. */
#include "multiproc.h"

#include <stdio.h>
#include <time.h>

static int sleeper(void *arg)
{
    struct timespec ts = {0, 300000000};
    if (arg != NULL)
        ts.tv_sec = 60;
    nanosleep(&ts, NULL);
    if (arg == NULL)
        printf("worker finished\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (mp_init(&argc, &argv, NULL) != 0)
        return 2;
    mp_process *d, *w;
    mp_process_opts dopt = {.daemon = 1};
    static int forever = 1;
    if (mp_process_new(&d, sleeper, &forever, &dopt) != 0 ||
        mp_process_new(&w, sleeper, NULL, NULL) != 0 ||
        mp_process_start(d) != 0 || mp_process_start(w) != 0)
        return 3;
    printf("daemon %d\nworker %d\nmain returned\n", (int)mp_process_pid(d),
           (int)mp_process_pid(w));
    fflush(stdout);
    /* Freeing a running process detaches it, as dropping a Process does
       in Python: the exit handling still terminates or joins it. */
    mp_process_free(d);
    mp_process_free(w);
    return 0;
}
