/* process_internal.h - what the process module's files share: the process
   object, the launch block that carries a target to a spawn or forkserver
   child, and the start methods. */
#ifndef MP_PROCESS_INTERNAL_H
#define MP_PROCESS_INTERNAL_H

#include "../core/core.h"
#include "../core/list.h"

#include <pthread.h>
#include <stdint.h>

/* MP__NAME_MAX, MP__IDENT_MAX - longest process name and identity. */
#define MP__NAME_MAX  255
#define MP__IDENT_MAX 128

/* MP__CODE_STOLEN - the exit code of a child whose status another wait
   in this process (not ours) collected: unknown. */
#define MP__CODE_STOLEN INT32_MIN

/* MP__EXIT_BOOT - exit status of a child that could not reach its target
   (arena range taken, target not found); it also writes why to stderr. */
#define MP__EXIT_BOOT 255

/* mp__pstate - the life of a child. */
enum mp__pstate {
    MP__P_NEW,     /* created, not started */
    MP__P_RUNNING, /* started, end not yet observed */
    MP__P_ENDED    /* reaped; exitcode known */
};

/* mp__launch - what a spawn or forkserver child needs to run its target;
   lives in the arena so that the child (and the server) can read it. */
struct mp__launch {
    uint32_t magic;               /* MP__LAUNCH_MAGIC */
    uint32_t state;               /* futex: MP__L_RECORDED | _RELEASED */
    int32_t code;                 /* exit code recorded by the server */
    uint32_t self_done;           /* 1: the child wrote self_code */
    uint32_t cancel;              /* 1: the starter gave up: do not run */
    int32_t self_code;            /* status the child is exiting with */
    int32_t parent;               /* pid of the process that started it */
    int32_t daemon;               /* the child's daemon flag */
    int32_t start;                /* default start method in the child */
    uint64_t arg;                 /* pointer passed as is (arg_size 0) */
    uint64_t arg_size;            /* bytes of data[] */
    char name[MP__NAME_MAX + 1];  /* the child's name */
    char identity[MP__IDENT_MAX]; /* e.g. "2:1" for Process-2:1 */
    mp__fnref fn;                 /* the target */
    unsigned char data[];         /* the copied argument */
};
#define MP__LAUNCH_MAGIC 0x6c61756eu

/* The two owners of a forkserver child's launch block: the server records
   the exit code, the starter releases the block; whoever comes second
   frees it, so neither writes to a block the other freed. */
#define MP__L_RECORDED 1u
#define MP__L_RELEASED 2u

/* mp_process - a child (or, with is_self, this process). */
struct mp_process {
    enum mp__pstate state;
    int is_self;            /* the mp_current_process() object */
    int detached;           /* freed while running: reap and free */
    int registered;         /* in this process's children list */
    mp_start_method method; /* resolved at start */
    mp_target_fn fn;
    void *arg;
    size_t arg_size;
    int daemon;
    pid_t pid;                 /* 0 before start */
    int pidfd;                 /* -1 before start; the sentinel */
    pid_t owner;               /* the process that started it */
    int exitcode;              /* valid in MP__P_ENDED */
    struct mp__launch *launch; /* arena block (spawn, forkserver) */
    pthread_mutex_t wait_mu;   /* serialises waits on this child */
    unsigned fs_gen;           /* the forkserver that started it */
    mp__link link;             /* on this process's children list */
    char name[MP__NAME_MAX + 1];
    char identity[MP__IDENT_MAX];
};

/* mp__start_fork, mp__start_spawn, mp__start_forkserver - start p (state
   NEW, checked) with one method; on success p->pid and p->pidfd are set.
   Return 0 or a negative MP_E* code; nothing is left behind on failure. */
int mp__start_fork(mp_process *p);
int mp__start_spawn(mp_process *p);
int mp__start_forkserver(mp_process *p);

/* mp__spawn_boot - execute this program with MP__BOOT=bootvar (bootvar
   includes the "MP__BOOT=" prefix) in its environment, keeping keep[].
   Returns the pid or a negative code. */
pid_t mp__spawn_boot(const char *bootvar, const int *keep, int nkeep);

/* mp__adopt_child - a pidfd for child pid, just started, in *pidfd; when
   none can be had the child is killed and reaped. Returns 0, a negative
   code, or MP__STARTED_GONE: the child already ended and another wait of
   this program (a SIGCHLD handler) reaped it; *pidfd is then a
   descriptor that polls ready forever, a sentinel of an ended child. */
int mp__adopt_child(pid_t pid, int *pidfd);

/* MP__STARTED_GONE - started, and already ended and reaped elsewhere: its
   code is lost (MP__CODE_STOLEN). */
#define MP__STARTED_GONE 1

/* mp__launch_new - a launch block for p in the arena. Returns it, or NULL
   with *err set (MP_ENOMEM, MP_EINVAL for an argument that cannot travel,
   MP_ENAMETOOLONG). */
struct mp__launch *mp__launch_new(mp_process *p, int *err);

/* mp__fs_wait - wait until forkserver child p ends, at most until dl.
   With grace, a child that ended (its pidfd says so) gets up to 50 ms
   more for the server to record its code even past dl. Returns 1 with
   *code, 0 on time out, or a negative code. */
int mp__fs_wait(mp_process *p, uint64_t dl, int grace, int *code);

/* mp__launch_release - the starter is done with p's launch block: free it
   now, or leave that to the server if it has not recorded yet. */
void mp__launch_release(mp_process *p);

/* mp__forkserver_stop - stop this process's server if it has one, waiting
   for it to exit. */
void mp__forkserver_stop(void);

/* mp__forkserver_after_fork - forget the parent's server in a child. */
void mp__forkserver_after_fork(void);

/* mp__forkserver_before_fork, mp__forkserver_parent_fork - hold the
   server's lock across a fork, so that no child is made while a server
   is half started (its socket would leak into the child and keep the
   server from seeing its starter leave). */
void mp__forkserver_before_fork(void);
void mp__forkserver_parent_fork(void);

/* mp__forkserver_running - 1 if this process may have a server to stop
   (a look without the lock), else 0. */
int mp__forkserver_running(void);

/* mp__forkserver_serve - the server's loop, in a process booted with role
   's', keeping spares children forked ahead of requests (0..max);
   exits when the socket closes or the parent dies. */
_Noreturn void mp__forkserver_serve(int sock, int spares);

/* MP__FS_SPARES_MAX - the most children a server keeps forked ahead. */
#define MP__FS_SPARES_MAX 64

/* mp__child_after_fork - in a fork child (fork method or forkserver):
   tie the child's life to its parent's and give it its own lifeline.
   Exits at once if the parent is already gone. */
void mp__child_after_fork(void);

/* mp__become - set this process's identity as the child described. */
void mp__become(const char *name, const char *identity, pid_t parent,
                int daemon);

/* mp__child_from_launch - run the target described by L and exit. */
_Noreturn void mp__child_from_launch(struct mp__launch *L);

/* mp__child_run - run fn(arg), then clean up and exit with its status. */
_Noreturn void mp__child_run(mp_target_fn fn, void *arg);

/* mp__boot - the start of a spawned child or server: env is the value of
   MP__BOOT, which it removes from the environment. Never returns when the
   value and the descriptors it names are a starter's; otherwise (not
   exactly a starter's format, descriptors that are not the family's
   arena memfd, lifeline pipe and socket, a privileged program) returns
   MP_EINVAL or MP_EPERM, having touched nothing: the program then runs as
   any other. */
int mp__boot(const char *env);

/* mp__process_init_main - this process is the main process. */
void mp__process_init_main(void);

/* mp__process_after_fork - the atfork child handler of the module. */
void mp__process_after_fork(void);

/* mp__process_at_exit - terminate daemon children, join the others, stop
   the forkserver: what happens when a process of the family exits. */
void mp__process_at_exit(void);

/* mp__register_handlers - install the atexit and atfork handlers once. */
void mp__register_handlers(void);

#endif /* MP_PROCESS_INTERNAL_H */
