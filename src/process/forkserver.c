/* forkserver.c - the forkserver start method: a small single-threaded
   server, itself spawned, forks every child, so starting one costs the
   same whatever the size or the threads of the requesting process. */
#include "process_internal.h"

#include "../core/wake.h"
#include "../platform/platform.h"

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* spare_slot - where a spare child waits, in the arena: go turns 1 once
   launch_off names its launch block. A lent spare's slot has two owners:
   the starter claims it (go 0 -> 1) and the server, reaping a spare that
   died unclaimed, marks it dead (0 -> 2); whoever loses the exchange
   knows. The server frees a claimed slot when it reaps the child; the
   starter frees a dead one when it finds it, or all it still holds once
   its server is gone. */
struct spare_slot {
    uint32_t go;
    uint32_t pad;
    uint64_t launch_off;
};

/* fs_req, fs_rep - a request and its answer, which carries the child's
   pidfd as SCM_RIGHTS. A request names a launch block to run, or is 0:
   lend a spare (the answer then names the spare's slot). */
struct fs_req {
    uint64_t launch_off;
};
struct fs_rep {
    int32_t err; /* 0 or a negative code */
    int32_t pid;
    uint32_t loan; /* 1: the answer to a loan (a failed one too) */
    uint32_t pad;
    uint64_t slot_off; /* a lent spare's slot */
};

/* lent - a spare child the server lent to this process: a start hands it
   its launch block itself, with no round trip (the warm start). */
struct lent {
    pid_t pid;
    int pidfd;
    struct spare_slot *slot;
};

/* fs - this process's server, guarded by fs_mu. gen counts the servers
   started, so a child knows whether its server was replaced. Spares lent
   to us wait in stash; asked counts loans requested and not yet answered
   (their answers come, in order, before any launch's). */
static struct {
    pid_t owner; /* the process that started it; 0: none */
    pid_t pid;
    int sock;
    int pidfd;
    unsigned gen;
    struct lent stash[MP__FS_SPARES_MAX];
    int nstash, asked;
} fs = {.sock = -1, .pidfd = -1};

/* Forget the spares lent to us: their server is gone (free: their slots
   are ours alone now), or we are a fork child that has no server (the
   slots are our parent's). */
static void drop_stash(int free_slots)
{
    for (int i = 0; i < fs.nstash; i++) {
        mp__close(fs.stash[i].pidfd);
        if (free_slots)
            mp_shared_free(fs.stash[i].slot);
    }
    fs.nstash = 0;
    fs.asked = 0;
}
static pthread_mutex_t fs_mu = PTHREAD_MUTEX_INITIALIZER;

/* How long a server has to leave after its socket closed. */
#define STOP_GRACE_NS 2000000000u

/* Stop the server: close the socket, wait for it, reap it. fs_mu held. */
static void stop_locked(void)
{
    if (fs.owner != mp__getpid() || fs.pidfd < 0)
        return;
    mp__close(fs.sock);
    fs.sock = -1;
    if (mp__poll_in(fs.pidfd, mp__now_ns() + STOP_GRACE_NS) != 1)
        mp__pidfd_signal(fs.pidfd, SIGKILL);
    int code;
    mp__pidfd_reap(fs.pidfd, 0, &code);
    drop_stash(1); /* the server and its children are gone */
    mp__close(fs.pidfd);
    fs.pidfd = -1;
    fs.owner = 0;
}

void mp__forkserver_stop(void)
{
    pthread_mutex_lock(&fs_mu);
    stop_locked();
    pthread_mutex_unlock(&fs_mu);
}

int mp__forkserver_running(void)
{
    return __atomic_load_n(&fs.owner, __ATOMIC_RELAXED) != 0;
}

void mp__forkserver_before_fork(void)
{
    pthread_mutex_lock(&fs_mu);
}

void mp__forkserver_parent_fork(void)
{
    pthread_mutex_unlock(&fs_mu);
}

void mp__forkserver_after_fork(void)
{
    pthread_mutex_init(&fs_mu, NULL);
    drop_stash(0);
    mp__close(fs.sock);
    mp__close(fs.pidfd);
    fs.sock = fs.pidfd = -1;
    fs.owner = 0;
    fs.pid = 0;
}

/* Start a server for this process. fs_mu held. */
static int launch_server(void)
{
    int sv[2];
    int r = mp__seqpacket_pair(sv);
    if (r != 0)
        return r;
    char bootvar[192];
    /* A server's boot string carries, where a child's carries its launch
       block, how many spares the server keeps. */
    snprintf(bootvar, sizeof bootvar,
             "MP__BOOT=s,%d,%" PRIxPTR ",%zx,%x,%d,%d,%d", MP__SPAWN_FD0,
             (uintptr_t)mp__g.arena, mp__g.arena_size,
             (unsigned)mp__g.fs_spares, MP__SPAWN_FD0 + 1, (int)mp__getpid(),
             MP__SPAWN_FD0 + 2);
    int lf = mp__lifeline_spare_fd();
    if (lf < 0) {
        mp__close(sv[0]);
        mp__close(sv[1]);
        return lf;
    }
    int keep[3] = {mp__g.arena_fd, lf, sv[1]};
    pid_t pid = mp__spawn_boot(bootvar, keep, 3);
    if (pid >= 0)
        mp__lifeline_handed();
    mp__close(sv[1]);
    if (pid < 0 || (r = mp__adopt_child(pid, &fs.pidfd)) != 0) {
        mp__close(sv[0]);
        return pid < 0 ? pid : r;
    }
    fs.sock = sv[0];
    fs.pid = pid;
    fs.owner = mp__getpid();
    fs.gen++;
    return 0;
}

static int server_dead_locked(void)
{
    return fs.pidfd < 0 || mp__poll_in(fs.pidfd, 0) == 1;
}

/* Receive one answer into a. A loan's is stashed here (returns 0); a
   launch's is left in a and *pidfd (returns its size). Returns MP_EPIPE when
   the server is gone, or a negative errno. */
static int take_answer(struct fs_rep *a, int *pidfd)
{
    ssize_t n = mp__recv_msg(fs.sock, a, sizeof *a, pidfd);
    if (n <= 0)
        return n == 0 || n == MP_ECONNRESET ? MP_EPIPE : (int)n;
    if (n != sizeof *a || !a->loan)
        return (int)n; /* a launch's (request checks the size) */
    fs.asked--;
    if (a->err == 0 && *pidfd >= 0 && fs.nstash < MP__FS_SPARES_MAX &&
        a->slot_off != 0 && a->slot_off < mp__g.arena_size) {
        fs.stash[fs.nstash++] =
            (struct lent){a->pid, *pidfd, mp__arena_ptr(a->slot_off)};
    } else {
        mp__close(*pidfd);
    }
    *pidfd = -1;
    return 0;
}

/* Ask for loans until stash and answers to come make want. Best effort:
   a full socket leaves it to the next start. */
static void ask_loans(int want)
{
    struct fs_req q = {.launch_off = 0};
    while (fs.nstash + fs.asked < want &&
           mp__send_msg(fs.sock, &q, sizeof q, -1) == 0)
        fs.asked++;
}

/* Stash the loans whose answers have come, without waiting. */
static void collect_loans(void)
{
    while (fs.asked > 0 && mp__poll_in(fs.sock, 0) == 1) {
        struct fs_rep a;
        int fd = -1;
        if (take_answer(&a, &fd) != 0) {
            mp__close(fd); /* a launch's answer nobody asked for: none */
            return;
        }
    }
}

/* Hand L to a lent spare, if one is alive. Returns 1 with *pid and
 *pidfd, or 0. fs_mu held. */
static int start_lent(struct mp__launch *L, pid_t *pid, int *pidfd)
{
    while (fs.nstash > 0) {
        struct lent s = fs.stash[--fs.nstash];
        if (mp__poll_in(s.pidfd, 0) != 0) {
            mp__close(s.pidfd); /* died waiting (killed from outside) */
            continue;
        }
        s.slot->launch_off = mp__arena_off(L);
        uint32_t idle = 0;
        if (!__atomic_compare_exchange_n(&s.slot->go, &idle, 1, 0,
                                         __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
            /* The server reaped it first: died waiting. */
            mp_shared_free(s.slot);
            mp__close(s.pidfd);
            continue;
        }
        mp__futex_wake(&s.slot->go, 1);
        *pid = s.pid;
        *pidfd = s.pidfd;
        return 1;
    }
    return 0;
}

/* One request and its answer. MP_EPIPE when the server is gone. *forked
   says that the server did fork a child even though the call failed (its
   pidfd could not be received: no descriptor left). */
static int request(uint64_t off, pid_t *pid, int *pidfd, int *forked)
{
    struct fs_req q = {.launch_off = off};
    *forked = 0;
    int r = mp__send_msg(fs.sock, &q, sizeof q, -1);
    if (r != 0)
        return r == MP_ECONNRESET ? MP_EPIPE : r;
    struct fs_rep a;
    ssize_t n;
    while ((n = take_answer(&a, pidfd)) == 0)
        ; /* a loan's answer, stashed */
    if (n < 0)
        return (int)n;
    if (n != sizeof a) {
        mp__close(*pidfd);
        return MP_EIO;
    }
    if (a.err != 0) {
        mp__close(*pidfd);
        return a.err;
    }
    if (*pidfd < 0) {
        /* The kernel dropped the descriptor (EMFILE): the child exists. */
        *forked = 1;
        return MP_EMFILE;
    }
    *pid = a.pid;
    return 0;
}

/* Give up on a launch block the server may still use: tell its child not
   to run, and let whichever of starter and server comes second free it. */
static void abandon(struct mp__launch *L)
{
    __atomic_store_n(&L->cancel, 1, __ATOMIC_SEQ_CST);
    uint32_t old =
        __atomic_fetch_or(&L->state, MP__L_RELEASED, __ATOMIC_ACQ_REL);
    if (old & MP__L_RECORDED)
        mp_shared_free(L);
}

int mp__start_forkserver(mp_process *p)
{
    int err = 0;
    struct mp__launch *L = mp__launch_new(p, &err);
    if (L == NULL)
        return err;
    pid_t pid = 0;
    int pidfd = -1, r = 0, forked = 0;
    pthread_mutex_lock(&fs_mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (fs.owner != mp__getpid() || server_dead_locked()) {
            stop_locked();
            if ((r = launch_server()) != 0)
                break;
        }
        int want = mp__g.fs_lend;
        if (want > 0) {
            collect_loans();
            int lent = start_lent(L, &pid, &pidfd);
            ask_loans(want);
            if (lent) {
                r = 0;
                break;
            }
        }
        r = request(mp__arena_off(L), &pid, &pidfd, &forked);
        if (r != MP_EPIPE)
            break;
        /* It died under us, maybe after forking a child that read L (and
           dies with it): that block is left alone, a fresh one serves the
           fresh server. */
        stop_locked();
        __atomic_store_n(&L->cancel, 1, __ATOMIC_SEQ_CST);
        if ((L = mp__launch_new(p, &err)) == NULL) {
            r = err;
            break;
        }
    }
    unsigned gen = fs.gen;
    pthread_mutex_unlock(&fs_mu);
    if (r != 0) {
        if (L != NULL) {
            if (forked)
                abandon(L);
            else
                mp_shared_free(L);
        }
        return r;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    p->launch = L;
    p->fs_gen = gen;
    return 0;
}

/* Whether the server that started a child of generation gen is gone. */
static int server_gone(unsigned gen)
{
    pthread_mutex_lock(&fs_mu);
    int gone =
        fs.gen != gen || fs.owner != mp__getpid() || server_dead_locked();
    pthread_mutex_unlock(&fs_mu);
    return gone;
}

void mp__launch_release(mp_process *p)
{
    struct mp__launch *L = p->launch;
    if (L == NULL)
        return;
    p->launch = NULL;
    if (p->method != MP_START_FORKSERVER) {
        mp_shared_free(L);
        return;
    }
    uint32_t old =
        __atomic_fetch_or(&L->state, MP__L_RELEASED, __ATOMIC_ACQ_REL);
    if (old & MP__L_RECORDED) {
        mp_shared_free(L);
    } else if (server_gone(p->fs_gen)) {
        /* A server that is gone will never come to free it; but it may
           have recorded (and freed) just before going: take the record
           bit ourselves, and free only if it was not set. */
        old = __atomic_fetch_or(&L->state, MP__L_RECORDED, __ATOMIC_ACQ_REL);
        if (!(old & MP__L_RECORDED))
            mp_shared_free(L);
    }
}

/* How long an ended child's code may take to be recorded by a live
   server when a caller asked not to wait (grace). */
#define RECORD_GRACE_NS 50000000u

int mp__fs_wait(mp_process *p, uint64_t dl, int grace, int *code)
{
    struct mp__launch *L = p->launch;
    int r = mp__poll_in(p->pidfd, dl); /* the child's own end */
    if (r <= 0)
        return r;
    uint64_t give_up = dl;
    if (grace && dl != MP__NO_DEADLINE) {
        uint64_t g = mp__now_ns() + RECORD_GRACE_NS;
        give_up = g > dl ? g : dl;
    }
    for (;;) {
        uint32_t st = __atomic_load_n(&L->state, __ATOMIC_ACQUIRE);
        if (st & MP__L_RECORDED) {
            *code = L->code;
            return 1;
        }
        if (__atomic_load_n(&L->self_done, __ATOMIC_ACQUIRE)) {
            *code = L->self_code; /* it returned from its target */
            return 1;
        }
        /* Killed by a signal, or left through exit(): only the server
           knows. A dead server knows nothing; its children die of
           SIGKILL through their lifeline. */
        if (server_gone(p->fs_gen)) {
            *code = -SIGKILL;
            return 1;
        }
        uint64_t now = mp__now_ns();
        if (give_up != MP__NO_DEADLINE && now >= give_up)
            return 0;
        uint64_t slice = now + 50000000u;
        if (give_up != MP__NO_DEADLINE && give_up < slice)
            slice = give_up;
        mp__futex_wait(&L->state, st, slice);
    }
}

/* ---- the server --------------------------------------------------------
 */

/* REFILL_IDLE_MS - how long a server short of spares waits for a request
   (or a child's end) before it forks them again. */
#define REFILL_IDLE_MS 2

/* kid - a child of the server, where its end is recorded, and the slot
   it waited in if it was a spare (freed when it is reaped). */
struct kid {
    pid_t pid;
    struct mp__launch *L;
    struct spare_slot *slot;
};

/* spare - a child forked ahead of its request: a request that finds one
   costs a wake-up, not a fork (docs/process.md, "Starts"). */
struct spare {
    pid_t pid;
    int pidfd;
    struct spare_slot *slot;
};

/* The server's state: children, spares, and the descriptors a new child
   must not keep. */
struct server {
    int sock, sfd;
    struct kid *kids;
    size_t n, cap;
    struct spare spares[MP__FS_SPARES_MAX];
    int nspares, want;
};

static int valid_launch(uint64_t off);

static void record(struct kid *kids, size_t *n, pid_t pid, int code)
{
    for (size_t i = 0; i < *n; i++) {
        if (kids[i].pid != pid)
            continue;
        struct mp__launch *L = kids[i].L;
        struct spare_slot *slot = kids[i].slot;
        kids[i] = kids[--*n];
        if (slot != NULL && L == NULL) {
            /* A spare lent to the starter: dead unclaimed (the starter
               frees the slot when it finds it), or it was handed a block
               (checked by the starter; we look again). */
            uint32_t idle = 0;
            if (__atomic_compare_exchange_n(&slot->go, &idle, 2, 0,
                                            __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
                return;
            if (valid_launch(slot->launch_off))
                L = mp__arena_ptr(slot->launch_off);
        }
        if (slot != NULL)
            mp_shared_free(slot);
        if (L == NULL)
            return;
        L->code = code;
        uint32_t old =
            __atomic_fetch_or(&L->state, MP__L_RECORDED, __ATOMIC_ACQ_REL);
        if (old & MP__L_RELEASED)
            mp_shared_free(L); /* the starter is done with it */
        else
            mp__futex_wake(&L->state, INT_MAX);
        return;
    }
}

/* Forget spare i (it died unused, or the server leaves). */
static void drop_spare(struct server *S, int i)
{
    mp__close(S->spares[i].pidfd);
    mp_shared_free(S->spares[i].slot);
    S->spares[i] = S->spares[--S->nspares];
}

/* Reap every child of ours that ended and record it (a spare that died
   unused is only forgotten). */
static void reap_all(struct server *S)
{
    int code;
    pid_t pid;
    while ((pid = mp__reap_any(&code)) > 0) {
        int spare = 0;
        for (int i = 0; i < S->nspares && !spare; i++)
            if (S->spares[i].pid == pid) {
                drop_spare(S, i);
                spare = 1;
            }
        if (!spare)
            record(S->kids, &S->n, pid, code);
    }
}

/* In a child just forked by the server: drop what is the server's, take
   SIGINT's default back, arm the lifeline. */
static void server_child(struct server *S)
{
    mp__close(S->sock);
    mp__close(S->sfd);
    for (int i = 0; i < S->nspares; i++)
        mp__close(S->spares[i].pidfd);
    free(S->kids);
    mp__sigint_ignored(0);
    mp__unblock_all_signals();
    mp__child_after_fork();
}

/* Do, before waiting, what a spare's launch will do first, so that its
   lazy symbol bindings and first page faults are paid while nobody waits:
   find the main program (how a target is resolved), flush (how a child
   ends), use a stack as deep as a target's start. */
static void spare_warm(void)
{
    mp__fnref main_prog = {.object = "", .offset = 0};
    void *addr;
    (void)mp__fnref_resolve(&main_prog, &addr);
    fflush(NULL);
    volatile char stack[16384];
    for (size_t i = 0; i < sizeof stack; i += 512)
        stack[i] = 0;
}

/* A spare's life: wait for its launch block, then run it. The server's
   death kills it through its lifeline; the naps look at the parent too,
   for a kernel without /proc (the parent-death signal is tied to the
   server's one thread, which is the server). */
_Noreturn static void spare_wait(struct spare_slot *s, pid_t server)
{
    spare_warm();
    while (__atomic_load_n(&s->go, __ATOMIC_ACQUIRE) == 0) {
        mp__futex_wait(&s->go, 0, mp__nap_until(MP__NO_DEADLINE));
        if (mp__getppid() != server)
            mp__exit_now(MP__EXIT_BOOT);
    }
    mp__child_from_launch(mp__arena_ptr(s->launch_off));
}

/* Fork one more spare. Returns 0 or a negative code. */
static int make_spare(struct server *S)
{
    if (S->nspares == MP__FS_SPARES_MAX)
        return MP_EAGAIN;
    struct spare_slot *slot = mp__arena_alloc(sizeof *slot, 64);
    if (slot == NULL)
        return MP_ENOMEM;
    slot->go = 0;
    slot->launch_off = 0;
    pid_t me = mp__getpid();
    mp__lifeline_ready();
    mp__forking_child = 1;
    pid_t pid = mp__fork();
    mp__forking_child = 0;
    if (pid == 0) {
        server_child(S);
        spare_wait(slot, me);
    }
    int pidfd = -1, r = pid < 0 ? pid : 0;
    if (pid > 0) {
        r = mp__adopt_child(pid, &pidfd);
        mp__lifeline_handed();
    }
    if (r != 0) {
        mp_shared_free(slot);
        return r;
    }
    S->spares[S->nspares++] = (struct spare){pid, pidfd, slot};
    return 0;
}

/* Fork spares until S->want wait (best effort: a failure leaves the
   requests to fork as they come). */
static void make_spares(struct server *S)
{
    while (S->nspares < S->want && make_spare(S) == 0)
        ;
}

/* Drop the spares that died waiting (killed from outside), so that none
   is handed a launch it would never run. */
static void drop_dead_spares(struct server *S)
{
    while (S->nspares > 0 &&
           mp__poll_in(S->spares[S->nspares - 1].pidfd, 0) != 0) {
        int code;
        mp__reap_pid(S->spares[S->nspares - 1].pid, &code);
        drop_spare(S, S->nspares - 1);
    }
}

/* Room for one more kid. Returns 0 or MP_ENOMEM. */
static int kids_room(struct server *S)
{
    if (S->n < S->cap)
        return 0;
    size_t nc = S->cap ? S->cap * 2 : 16;
    struct kid *nk = realloc(S->kids, nc * sizeof *nk);
    if (nk == NULL)
        return MP_ENOMEM;
    S->kids = nk;
    S->cap = nc;
    return 0;
}

/* Lend a spare to the starter (a request of 0): its pid, slot and pidfd.
   It stays our child: we record the end of the block it is handed. */
static void lend(struct server *S)
{
    struct fs_rep a = {.loan = 1};
    int pidfd = -1;
    drop_dead_spares(S);
    if ((a.err = kids_room(S)) == 0 &&
        (S->nspares > 0 || (a.err = make_spare(S)) == 0)) {
        struct spare sp = S->spares[--S->nspares];
        S->kids[S->n++] = (struct kid){sp.pid, NULL, sp.slot};
        a.pid = sp.pid;
        a.slot_off = mp__arena_off(sp.slot);
        pidfd = sp.pidfd;
    }
    mp__send_msg(S->sock, &a, sizeof a, pidfd);
    mp__close(pidfd);
}

static int valid_launch(uint64_t off)
{
    if (off < mp__page_size() || off >= mp__g.arena_size ||
        off + sizeof(struct mp__launch) > mp__g.arena_size)
        return 0;
    struct mp__launch *L = mp__arena_ptr(off);
    return L->magic == MP__LAUNCH_MAGIC;
}

_Noreturn void mp__forkserver_serve(int sock, int spares)
{
    mp__set_comm("mp-forkserver");
    /* Ctrl-C reaches the whole foreground group: the server must not die
       of it (its children would die of SIGKILL before their own handlers
       ran). Its children get SIGINT's default back. */
    mp__sigint_ignored(1);
    int r = mp__new_lifeline(); /* what ties our children to us */
    int sfd = r < 0 ? r : mp__signalfd_chld();
    if (sfd < 0) {
        fprintf(stderr, "multiproc: forkserver: signalfd: %s\n",
                mp_strerror(sfd));
        mp__exit_now(MP__EXIT_BOOT);
    }
    static struct server S;
    S.sock = sock;
    S.sfd = sfd;
    S.want = spares < 0                   ? 0
             : spares > MP__FS_SPARES_MAX ? MP__FS_SPARES_MAX
                                          : spares;
    make_spares(&S);
    for (;;) {
        /* Spares are forked again when a child of ours ended or nothing
           came for REFILL_IDLE_MS: forked right after an answer, the
           replacement takes CPU and memory bandwidth from the child just
           launched (on two cores, that child's start+join grew by a
           fifth). */
        int ready =
            mp__poll_in2(sock, sfd, S.nspares < S.want ? REFILL_IDLE_MS : -1);
        if (ready < 0)
            break;
        if (ready == 0)
            make_spares(&S);
        if (ready & 2) {
            mp__signalfd_drain(sfd);
            reap_all(&S);
            make_spares(&S);
        }
        if (!(ready & 1))
            continue;
        struct fs_req q;
        ssize_t got = mp__recv_msg(sock, &q, sizeof q, NULL);
        if (got <= 0)
            break; /* the requesting process closed or died */
        if (got == sizeof q && q.launch_off == 0) {
            lend(&S);
            continue;
        }
        struct fs_rep a = {0};
        if (got != sizeof q || !valid_launch(q.launch_off)) {
            a.err = MP_EINVAL;
            mp__send_msg(sock, &a, sizeof a, -1);
            continue;
        }
        if ((a.err = kids_room(&S)) != 0) {
            mp__send_msg(sock, &a, sizeof a, -1);
            continue;
        }
        struct mp__launch *L = mp__arena_ptr(q.launch_off);
        int pidfd = -1;
        drop_dead_spares(&S);
        if (S.nspares > 0) {
            /* A spare takes it: a wake-up instead of a fork. One that
               died unseen runs nothing; its end is recorded as any
               child's. */
            struct spare sp = S.spares[--S.nspares];
            sp.slot->launch_off = q.launch_off;
            __atomic_store_n(&sp.slot->go, 1, __ATOMIC_SEQ_CST);
            mp__futex_wake(&sp.slot->go, 1);
            S.kids[S.n++] = (struct kid){sp.pid, L, sp.slot};
            a.pid = sp.pid;
            pidfd = sp.pidfd;
        } else {
            mp__lifeline_ready();
            mp__forking_child = 1;
            pid_t pid = mp__fork();
            mp__forking_child = 0;
            if (pid == 0) {
                server_child(&S);
                mp__child_from_launch(L);
            }
            if (pid < 0) {
                a.err = pid;
            } else if ((a.err = mp__adopt_child(pid, &pidfd)) == 0) {
                a.pid = pid;
                S.kids[S.n++] = (struct kid){pid, L, NULL};
            }
            if (pid > 0)
                mp__lifeline_handed();
        }
        mp__send_msg(sock, &a, sizeof a, pidfd);
        mp__close(pidfd);
    }
    /* Leaving (the starter closed the socket or died): record what
       ended, so that every launch block is freed; the children still
       running would die with us anyway (lifeline), so kill and record
       them too, and the spares. */
    reap_all(&S);
    for (int i = 0; i < S.nspares; i++)
        mp__kill_pid(S.spares[i].pid, SIGKILL);
    for (size_t i = 0; i < S.n; i++)
        mp__kill_pid(S.kids[i].pid, SIGKILL);
    while (S.nspares > 0) {
        int code;
        mp__reap_pid(S.spares[0].pid, &code);
        drop_spare(&S, 0);
    }
    while (S.n > 0) {
        int code;
        pid_t pid = S.kids[0].pid;
        if (mp__reap_pid(pid, &code) != 1)
            break;
        record(S.kids, &S.n, pid, code);
    }
    mp__exit_now(0);
}
