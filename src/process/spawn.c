/* spawn.c - the spawn start method: this program executed afresh, told
   through the environment where the arena and its target are. */
#include "process_internal.h"

#include "../platform/platform.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

/* cmdline - argv read from /proc/self/cmdline when mp_init got none. */
static char **cmdline;
static pthread_once_t cmdline_once = PTHREAD_ONCE_INIT;

static void read_cmdline(void)
{
    if (mp__self_cmdline(&cmdline) != 0)
        cmdline = NULL;
}

static char **spawn_argv(void)
{
    if (mp__g.argv != NULL && mp__g.argc > 0)
        return mp__g.argv;
    pthread_once(&cmdline_once, read_cmdline);
    return cmdline;
}

pid_t mp__spawn_boot(const char *bootvar, const int *keep, int nkeep)
{
    char **argv = spawn_argv();
    static char *fallback[] = {"multiproc-child", NULL};
    if (argv == NULL || argv[0] == NULL)
        argv = fallback;
    size_t n = 0;
    while (environ != NULL && environ[n] != NULL)
        n++;
    char **envp = malloc((n + 2) * sizeof *envp);
    if (envp == NULL)
        return MP_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "MP__BOOT=", 9) != 0)
            envp[k++] = environ[i];
    envp[k++] = (char *)bootvar;
    envp[k] = NULL;
    pid_t pid = mp__spawn_self(argv, envp, keep, nkeep);
    free(envp);
    return pid;
}

struct mp__launch *mp__launch_new(mp_process *p, int *err)
{
    size_t asz = p->arg_size;
    if (asz == 0 && p->arg != NULL && !mp_shared_contains(p->arg)) {
        /* A private pointer means nothing in a fresh process. */
        *err = MP_EINVAL;
        return NULL;
    }
    if (asz > mp__g.arena_size) {
        *err = MP_ENOMEM;
        return NULL;
    }
    struct mp__launch *L = mp__arena_alloc(sizeof *L + asz, 64);
    if (L == NULL) {
        *err = MP_ENOMEM;
        return NULL;
    }
    int r = mp__fnref_make((void *)p->fn, &L->fn);
    if (r != 0) {
        mp_shared_free(L);
        *err = r;
        return NULL;
    }
    L->magic = MP__LAUNCH_MAGIC;
    L->parent = mp__getpid();
    L->daemon = p->daemon;
    L->start = mp__g.start;
    L->arg = asz ? 0 : (uint64_t)(uintptr_t)p->arg;
    L->arg_size = asz;
    if (asz)
        memcpy(L->data, p->arg, asz);
    memcpy(L->name, p->name, sizeof L->name);
    memcpy(L->identity, p->identity, sizeof L->identity);
    return L;
}

/* Open a pidfd for a child just started, or kill and reap it. */
int mp__adopt_child(pid_t pid, int *pidfd)
{
    int fd = mp__pidfd_open(pid);
    if (fd == MP_ESRCH) {
        /* Our own child, so it existed: a short one that ended and was
           reaped at once by another wait (a SIGCHLD handler). */
        fd = mp__ended_fd();
        if (fd >= 0) {
            *pidfd = fd;
            return MP__STARTED_GONE;
        }
    }
    if (fd < 0) {
        int code;
        mp__kill_pid(pid, SIGKILL);
        mp__reap_pid(pid, &code);
        return fd;
    }
    *pidfd = fd;
    return 0;
}

int mp__start_spawn(mp_process *p)
{
    int err = 0;
    struct mp__launch *L = mp__launch_new(p, &err);
    if (L == NULL)
        return err;
    char bootvar[192];
    /* The child finds the kept descriptors from MP__SPAWN_FD0 on. */
    snprintf(bootvar, sizeof bootvar,
             "MP__BOOT=c,%d,%" PRIxPTR ",%zx,%" PRIx64 ",%d,%d,-1",
             MP__SPAWN_FD0, (uintptr_t)mp__g.arena, mp__g.arena_size,
             mp__arena_off(L), MP__SPAWN_FD0 + 1, (int)mp__getpid());
    int lf = mp__lifeline_spare_fd();
    if (lf < 0) {
        mp_shared_free(L);
        return lf;
    }
    int keep[2] = {mp__g.arena_fd, lf};
    pid_t pid = mp__spawn_boot(bootvar, keep, 2);
    int r = pid < 0 ? pid : mp__adopt_child(pid, &p->pidfd);
    if (pid >= 0)
        mp__lifeline_handed(); /* after the pidfd: see fork.c */
    if (r < 0) {
        mp_shared_free(L);
        return r;
    }
    p->pid = pid;
    p->launch = L;
    return r;
}
