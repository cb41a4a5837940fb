/* test_process_noinit.c - a program that forgot mp_init gets MP_ENOINIT, never
   a hang or a crash; then the options of mp_init the harness cannot take
   (it calls mp_init itself). Plain main. */
#include "multiproc.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int target(void *arg)
{
    return arg != NULL ? *(int *)arg : 0;
}

/* The children of pid, as /proc lists them, in buf; how many. */
static int children_of(pid_t pid, char *buf, size_t cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    FILE *f = fopen(path, "r");
    buf[0] = '\0';
    if (f == NULL)
        return 0;
    if (fgets(buf, (int)cap, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    int n = 0;
    char *c = buf, *end;
    while (strtol(c, &end, 10) > 0) {
        c = end;
        n++;
    }
    return n;
}

/* Once pid has at least least children (a forkserver's spares; loans are
   answered while we go on: up to 10 s), kill every one and wait until
   each is dead. Returns how many were killed. */
static int kill_children_of(pid_t pid, int least)
{
    char buf[1024];
    for (int i = 0; i < 1000 && children_of(pid, buf, sizeof buf) < least; i++)
        usleep(10000);
    int n = 0;
    char *c = buf, *end;
    for (long v; (v = strtol(c, &end, 10)) > 0; c = end, n++) {
        kill((pid_t)v, SIGKILL);
        int fd = (int)syscall(SYS_pidfd_open, (pid_t)v, 0);
        if (fd >= 0) { /* until it is dead */
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            poll(&pf, 1, 5000);
            close(fd);
        }
    }
    return n;
}

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(void)
{
    mp_process *p = NULL;
    EXPECT(mp_process_new(&p, target, NULL, NULL) == MP_ENOINIT);
    EXPECT(p == NULL);
    EXPECT(mp_process_start(NULL) == MP_EINVAL);
    EXPECT(mp_current_process() == NULL);
    EXPECT(mp_shared_alloc(64) == NULL);
    mp_shared_free(NULL);
    EXPECT(mp_shared_contains(&p) == 0);
    EXPECT(mp_active_children(NULL, 0) == 0);
    EXPECT(mp_cpu_count() >= 1);
    /* A forkserver that keeps four children ready: more is refused. */
    mp_config bad = {.forkserver_spares = 65};
    EXPECT(mp_init(NULL, NULL, &bad) == MP_EINVAL);
    mp_config four = {.start = MP_START_FORKSERVER, .forkserver_spares = 4};
    EXPECT(mp_init(NULL, NULL, &four) == 0);
    /* Ten warm starts, each with its own code; then the spares lent to
       us are killed while they wait (the server is our only child) and
       starts go on, with their own codes. */
    mp_process_opts o = {.arg_size = sizeof(int)};
    for (int i = 0; i < 20; i++) {
        if (i == 10) {
            char buf[64];
            EXPECT(children_of(getpid(), buf, sizeof buf) == 1);
            EXPECT(kill_children_of((pid_t)atoi(buf), 4) >= 4);
        }
        int code = -1, want = 30 + i;
        EXPECT(mp_process_new(&p, target, &want, &o) == 0);
        EXPECT(mp_process_start(p) == 0);
        EXPECT(mp_process_join(p, 10) == 0);
        EXPECT(mp_process_exitcode(p, &code) == 0 && code == want);
        mp_process_free(p);
    }
    puts("ok: MP_ENOINIT without mp_init; warm starts");
    return 0;
}
