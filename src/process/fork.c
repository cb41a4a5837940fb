/* fork.c - the fork start method: the child is a copy of the caller. */
#include "process_internal.h"

#include "../platform/platform.h"

int mp__start_fork(mp_process *p)
{
    pid_t parent = mp__getpid();
    mp__forking_child = 1;
    pid_t pid = mp__fork();
    mp__forking_child = 0;
    if (pid < 0)
        return pid;
    if (pid == 0) {
        mp__child_after_fork();
        mp__become(p->name, p->identity, parent, p->daemon);
        mp__child_run(p->fn, p->arg);
    }
    /* The pidfd first: a short child may end, and a SIGCHLD handler of
       the program reap it, while we do anything else. */
    int r = mp__adopt_child(pid, &p->pidfd);
    mp__lifeline_handed();
    if (r < 0)
        return r;
    p->pid = pid;
    return r;
}
