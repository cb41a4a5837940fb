/* bootstrap.c - how a child begins and ends: boot from the environment
   (spawn, forkserver), tie its life to the parent's, run the target,
   clean up, exit. */
#include "process_internal.h"

#include "../platform/platform.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* armed_fd - this process's armed lifeline descriptor (kept open for the
   life of the process: closing it would disarm it). */
static int armed_fd = -1;

_Noreturn static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("multiproc: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    mp__exit_now(MP__EXIT_BOOT);
}

/* Tie this process to the parent holding the write end of the lifeline
   whose read end is fd: a private description made for us (the parent's
   spare), or, when private is 0, one shared with siblings, to reopen.
   fd is ours from here on (kept armed, or closed). When the parent is
   already gone, die as the lifeline would have. */
static void arm(int fd, int private, pid_t parent)
{
    if (armed_fd >= 0) {
        mp__close(armed_fd); /* a fork child's copy of its parent's */
        armed_fd = -1;
    }
    if (!private) {
        int own = mp__lifeline_private(fd);
        mp__close(fd);
        fd = own;
    }
    int r = fd < 0 ? fd : mp__arm_lifeline(fd);
    if (r == MP_EPIPE)
        mp__kill_pid(mp__getpid(), SIGKILL);
    if (r < 0) {
        /* No /proc: the parent-death signal, tied to the starting
           thread, is the best the kernel offers. */
        mp__close(fd);
        fd = -1;
        mp__set_pdeathsig(SIGKILL);
    }
    armed_fd = fd;
    if (parent != 0 && mp__getppid() != parent)
        mp__kill_pid(mp__getpid(), SIGKILL);
}

/* self_launch - the launch block this child came from (spawn or
   forkserver), where it leaves its exit status for its starter. */
static struct mp__launch *self_launch;

void mp__child_after_fork(void)
{
    /* A fork child of a forkserver child is not the one its starter
       waits for: its status must not land in that block. */
    self_launch = NULL;
    /* The parent's spare was made for us; without one (no /proc there),
       the shared read end is reopened. Our own lifeline is made by our
       first mp_process_start, if any. */
    if (mp__g.lifeline_spare >= 0) {
        arm(mp__g.lifeline_spare, 1, 0);
        mp__close(mp__g.lifeline_r);
    } else {
        arm(mp__g.lifeline_r, 0, 0);
    }
    mp__g.lifeline_r = mp__g.lifeline_spare = -1;
}

_Noreturn void mp__child_run(mp_target_fn fn, void *arg)
{
    int rc = fn(arg) & 0xff;
    mp__process_at_exit();
    fflush(NULL);
    if (self_launch != NULL) {
        /* A forkserver child is not its starter's child: telling the
           status here lets the starter learn it from the pidfd alone,
           without waiting for the server to reap and record. */
        self_launch->self_code = rc;
        __atomic_store_n(&self_launch->self_done, 1, __ATOMIC_RELEASE);
    }
    mp__exit_now(rc);
}

_Noreturn void mp__child_from_launch(struct mp__launch *L)
{
    /* The starter gave up on this launch (the server died while it
       waited, or it could not take our pidfd): nobody will join us. */
    if (__atomic_load_n(&L->cancel, __ATOMIC_SEQ_CST))
        mp__exit_now(MP__EXIT_BOOT);
    self_launch = L;
    mp__become(L->name, L->identity, L->parent, L->daemon);
    mp__g.start = (mp_start_method)L->start;
    void *addr;
    if (mp__fnref_resolve(&L->fn, &addr) != 0)
        die("%s: cannot find its target (object \"%s\", offset %#" PRIx64
            "): not the same program?",
            L->name, L->fn.object, L->fn.offset);
    void *arg = (void *)(uintptr_t)L->arg;
    if (L->arg_size != 0) {
        arg = malloc(L->arg_size);
        if (arg == NULL)
            die("%s: no memory for a %" PRIu64 "-byte argument", L->name,
                L->arg_size);
        memcpy(arg, L->data, L->arg_size);
    }
    mp_target_fn fn;
    memcpy(&fn, &addr, sizeof fn);
    mp__child_run(fn, arg);
}

/* Read one field of a boot string at *p: digits in base 16 or 10 (a
   leading '-' where neg is allowed), then the ',' that ends it unless
   last. Returns 1 with *v and *p moved past it, or 0. Not sscanf: a
   spawned child would pay its first use (code page faults, symbol
   binding) in every start. */
static int field(const char **p, int base, int neg, int last, int64_t *v)
{
    const char *c = *p;
    int minus = neg && *c == '-';
    c += minus;
    uint64_t x = 0;
    int digits = 0;
    for (;; c++, digits++) {
        int d = *c >= '0' && *c <= '9'                 ? *c - '0'
                : base == 16 && *c >= 'a' && *c <= 'f' ? *c - 'a' + 10
                                                       : -1;
        if (d < 0)
            break;
        if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return 0;
        x = x * (uint64_t)base + (uint64_t)d;
    }
    if (digits == 0 || digits > 16 || *c != (last ? '\0' : ','))
        return 0;
    if (base == 10 && x > INT32_MAX)
        return 0;
    *v = minus ? -(int64_t)x : (int64_t)x;
    *p = c + !last;
    return 1;
}

int mp__boot(const char *env)
{
    char buf[256];
    size_t len = strnlen(env, sizeof buf);
    if (len < sizeof buf)
        memcpy(buf, env, len + 1);
    unsetenv("MP__BOOT"); /* our own children get their own */
    /* A privileged program (setuid, capabilities) takes nothing from its
       environment: whoever ran it may have written the value, and the
       launch block names code to load. */
    if (mp__secure_exec())
        return MP_EPERM;
    /* Exactly what a starter writes (spawn.c, forkserver.c): role,
       memfd, base, size, launch offset (a server's: its spares),
       lifeline, parent, socket; hex where the starter writes hex. Or not
       ours: then it is ignored and the program runs as any other. */
    int64_t f[7];
    const char *c = buf;
    char role = buf[0];
    if (len >= sizeof buf || (role != 'c' && role != 's') || buf[1] != ',')
        return MP_EINVAL;
    c += 2;
    static const int bases[7] = {10, 16, 16, 16, 10, 10, 10};
    for (int i = 0; i < 7; i++)
        if (!field(&c, bases[i], i == 6, i == 6, &f[i]))
            return MP_EINVAL;
    int memfd = (int)f[0], lifeline = (int)f[4], ppid = (int)f[5];
    int sock = (int)f[6];
    uintptr_t base = (uintptr_t)f[1];
    size_t size = (size_t)f[2];
    uint64_t off = (uint64_t)f[3];
    if (memfd != MP__SPAWN_FD0 || lifeline != MP__SPAWN_FD0 + 1 ||
        sock != (role == 's' ? MP__SPAWN_FD0 + 2 : -1) || ppid <= 1 ||
        (role == 's' && off > MP__FS_SPARES_MAX) || base == 0 || size == 0 ||
        base % mp__page_size() != 0)
        return MP_EINVAL;
    /* The descriptors must be what a starter hands over: the family's
       arena memfd of that size, a pipe, a socket. */
    if (!mp__fd_is_memfd(memfd, MP__ARENA_NAME, size) ||
        mp__fd_type(lifeline) != S_IFIFO ||
        (sock >= 0 && mp__fd_type(sock) != S_IFSOCK))
        return MP_EINVAL;
    /* An arena that is not formatted as one is not a family's: ignored,
       before anything is mapped. A family's that cannot be mapped here is
       fatal: this is a child that cannot reach its target. */
    if (!mp__arena_formatted(memfd, size))
        return MP_EINVAL;
    int r = mp__arena_attach(memfd, base, size);
    if (r == MP_EINVAL)
        return MP_EINVAL;
    if (r != 0)
        die("cannot map the family arena at %#" PRIxPTR " (%zu bytes): %s",
            base, size, mp_strerror(r));
    /* A real child (a family's arena) whose starter died before it
       booted: leave, as the lifeline would have made it. */
    if (mp__getppid() != ppid)
        mp__exit_now(MP__EXIT_BOOT);
    mp__set_cloexec(memfd, 1);
    mp__set_cloexec(lifeline, 1);
    if (sock >= 0)
        mp__set_cloexec(sock, 1);
    /* Starters hand a spawned child its own description (the spare). */
    arm(lifeline, 1, ppid);
    mp__g.lifeline_r = mp__g.lifeline_w = -1; /* made when first needed */
    mp__g.lifeline_spare = -1;
    mp__g.start = MP_START_FORK;
    /* A server's children (forked from it) keep the family's setting. */
    mp__g.fs_spares = role == 's' ? (int)off : 1;
    mp__g.initialized = 1;
    mp__register_handlers();
    if (role == 's') {
        mp__become("ForkServer", "", ppid, 0);
        mp__forkserver_serve(sock, (int)off);
    }
    if (off >= size || off + sizeof(struct mp__launch) > size || off % 64)
        die("launch block out of the arena");
    struct mp__launch *L = mp__arena_ptr(off);
    if (L->magic != MP__LAUNCH_MAGIC || L->parent != ppid)
        die("bad launch block");
    mp__child_from_launch(L);
}
