/* process.c - the mp_process object: creation, start, join, signals,
   exit codes, the list of children, and what happens at exit. */
#include "process_internal.h"

#include "../platform/platform.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* self - this process as mp_current_process() shows it. */
static mp_process self = {.state = MP__P_RUNNING, .is_self = 1, .pidfd = -1};

/* self_parent - the process that started this one; 0 in the main one. */
static pid_t self_parent;

/* counter - the last N used for a child's default name here. */
static unsigned counter;

/* children - started, not yet reaped children of this process (and those
   the user freed while running), guarded by children_mu. */
static mp__list children;

/* child_of - the process whose children-list link is l (NULL for NULL). */
static mp_process *child_of(mp__link *l)
{
    return mp__list_entry(l, mp_process, link);
}
static pthread_mutex_t children_mu = PTHREAD_MUTEX_INITIALIZER;

/* lifeline_mu - makes one lifeline per process when two threads start
   their first child at once (a second pipe would orphan the first's
   children). */
static pthread_mutex_t lifeline_mu = PTHREAD_MUTEX_INITIALIZER;

/* How long daemon children get between SIGTERM and SIGKILL at exit. */
#define DAEMON_GRACE_S 2.0

void mp__process_init_main(void)
{
    snprintf(self.name, sizeof self.name, "MainProcess");
    self.identity[0] = '\0';
    self.pid = mp__getpid();
    self_parent = 0;
}

/* Copy the string src into dst of cap bytes, cut to fit. Not snprintf:
   in a fresh fork child, every page it first writes costs a copy-on-write
   fault, and printf's machinery writes several. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; n + 1 < cap && src[n] != '\0'; n++)
        dst[n] = src[n];
    dst[n] = '\0';
}

void mp__become(const char *name, const char *identity, pid_t parent,
                int daemon)
{
    copy_str(self.name, sizeof self.name, name);
    copy_str(self.identity, sizeof self.identity, identity);
    self.pid = mp__getpid();
    self.daemon = daemon;
    self_parent = parent;
    mp__set_comm(name);
}

void mp__process_after_fork(void)
{
    /* The parent's children are not ours; their objects stay readable in
       this copy of memory but every call on them answers MP_ECHILD. */
    pthread_mutex_init(&children_mu, NULL);
    pthread_mutex_init(&lifeline_mu, NULL);
    /* Nor are their pidfds: a descriptor kept here would keep them
       pollable from a process that can never reap them. */
    for (mp__link *l = children.first; l != NULL; l = l->next) {
        mp_process *p = child_of(l);
        mp__close(p->pidfd);
        p->pidfd = -1;
    }
    children.first = NULL;
    counter = 0;
    self.pid = mp__getpid();
    mp__forkserver_after_fork();
}

mp_process *mp_current_process(void)
{
    return mp__g.initialized ? &self : NULL;
}

pid_t mp_parent_pid(void)
{
    return self_parent;
}

int mp_process_new(mp_process **out, mp_target_fn fn, void *arg,
                   const mp_process_opts *opts)
{
    if (out == NULL || fn == NULL)
        return MP_EINVAL;
    int r = mp__require_init();
    if (r != 0)
        return r;
    mp_process_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if ((unsigned)o.start > MP_START_FORKSERVER)
        return MP_EINVAL;
    if (o.name != NULL && strlen(o.name) > MP__NAME_MAX)
        return MP_ENAMETOOLONG;
    mp_process *p = calloc(1, sizeof *p);
    if (p == NULL)
        return MP_ENOMEM;
    p->state = MP__P_NEW;
    p->pidfd = -1;
    p->fn = fn;
    p->arg = arg;
    p->arg_size = o.arg_size;
    p->daemon = o.daemon != 0;
    p->method = o.start;
    unsigned n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    if (self.identity[0] != '\0')
        snprintf(p->identity, sizeof p->identity, "%.*s:%u",
                 (int)sizeof p->identity - 12, self.identity, n);
    else
        snprintf(p->identity, sizeof p->identity, "%u", n);
    if (o.name != NULL)
        memcpy(p->name, o.name, strlen(o.name) + 1);
    else
        snprintf(p->name, sizeof p->name, "Process-%s", p->identity);
    *out = p;
    return 0;
}

static void list_add(mp_process *p)
{
    mp__list_push(&children, &p->link);
    p->registered = 1;
}

static void list_del(mp_process *p)
{
    if (!p->registered)
        return;
    mp__list_remove(&children, &p->link);
    p->registered = 0;
}

static void release(mp_process *p)
{
    /* Only the starter owns the list entry and the launch block; a fork
       child that frees its copy of a parent's object touches neither. */
    if (p->owner == mp__getpid()) {
        list_del(p);
        mp__launch_release(p);
    }
    mp__close(p->pidfd);
    free(p);
}

/* The child ended with code: record it. Called with children_mu held. */
static void ended(mp_process *p, int code)
{
    p->exitcode = code;
    p->state = MP__P_ENDED;
    mp__launch_release(p);
    list_del(p);
}

/* Wait until running child p ends, at most until dl (0: just look;
   grace: see mp__fs_wait). Returns 1 with *code, 0 if still running, or
   a negative code. Called with p->wait_mu held, which serialises waits on
   one child only. */
static int wait_end(mp_process *p, uint64_t dl, int grace, int *code)
{
    int r;
    if (p->method == MP_START_FORKSERVER)
        return mp__fs_wait(p, dl, grace, code);
    if (dl == MP__NO_DEADLINE)
        return mp__pidfd_reap(p->pidfd, 0, code);
    r = mp__pidfd_reap(p->pidfd, 1, code);
    if (r == 0 && dl != 0) {
        r = mp__poll_in(p->pidfd, dl);
        if (r == 1)
            r = mp__pidfd_reap(p->pidfd, 0, code);
    }
    return r;
}

/* wait_end, then record an end; with p->wait_mu held. */
static int observe(mp_process *p, uint64_t dl, int grace)
{
    if (p->state == MP__P_ENDED)
        return 1;
    int code = 0;
    int r = wait_end(p, dl, grace, &code);
    if (r == MP_ECHILD) {
        /* Our own child, yet no status to wait for: another wait in this
           process (a SIGCHLD handler's waitpid(-1)) reaped it. It ended;
           its code is lost. */
        code = MP__CODE_STOLEN;
        r = 1;
    }
    if (r == 1) {
        pthread_mutex_lock(&children_mu);
        ended(p, code);
        pthread_mutex_unlock(&children_mu);
    }
    return r;
}

/* Reject calls about a process that is not a child of ours. */
static int check_child(const mp_process *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->is_self)
        return MP_EINVAL;
    if (p->state == MP__P_NEW)
        return MP_ESTATE;
    if (p->owner != mp__getpid())
        return MP_ECHILD;
    return 0;
}

static int children_autoreaped(void)
{
    struct sigaction sa;
    if (sigaction(SIGCHLD, NULL, &sa) != 0)
        return 0;
    return sa.sa_handler == SIG_IGN || (sa.sa_flags & SA_NOCLDWAIT);
}

int mp_process_start(mp_process *p)
{
    if (p == NULL || p->is_self)
        return MP_EINVAL;
    int r = mp__require_init();
    if (r != 0)
        return r;
    if (p->state != MP__P_NEW)
        return MP_ESTATE;
    /* With SIGCHLD ignored the kernel reaps children by itself and no
       exit code could ever be learned. */
    if (children_autoreaped())
        return MP_ECHILD;
    mp_start_method asked = p->method;
    p->method = asked == MP_START_DEFAULT ? mp__g.start : asked;
    /* A privileged program's fresh children would have to trust their
       environment (mp__boot refuses to): only fork is possible there. */
    if (p->method != MP_START_FORK && mp__secure_exec()) {
        p->method = asked;
        return MP_EPERM;
    }
    /* The lifeline our children arm is made by the first start after a
       fork or a boot (the parent's write end is not ours to hold); its
       spare goes to one child only, so starts that hand it out are
       serialised. */
    pthread_mutex_lock(&lifeline_mu);
    r = mp__lifeline_ready();
    if (r == 0) {
        switch (p->method) {
        case MP_START_FORK:
            r = mp__start_fork(p);
            break;
        case MP_START_SPAWN:
            r = mp__start_spawn(p);
            break;
        default:
            r = mp__start_forkserver(p);
            break;
        }
    }
    pthread_mutex_unlock(&lifeline_mu);
    if (r < 0) {
        p->method = asked;
        return r;
    }
    pthread_mutex_init(&p->wait_mu, NULL);
    p->owner = mp__getpid();
    p->state = MP__P_RUNNING;
    pthread_mutex_lock(&children_mu);
    list_add(p);
    if (r == MP__STARTED_GONE)
        ended(p, MP__CODE_STOLEN);
    pthread_mutex_unlock(&children_mu);
    return 0;
}

int mp_process_join(mp_process *p, double timeout)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->is_self)
        return MP_EDEADLK;
    uint64_t dl;
    int r = mp__deadline(timeout, &dl);
    if (r != 0)
        return r;
    if ((r = check_child(p)) != 0)
        return r;
    if (p->state == MP__P_ENDED)
        return 0;
    /* Another thread may be joining with a longer timeout: wait for it
       no longer than ours. */
    if (!mp__mutex_lock_until(&p->wait_mu, dl))
        return MP_ETIMEDOUT;
    r = observe(p, dl, 1);
    pthread_mutex_unlock(&p->wait_mu);
    if (r == 1)
        return 0;
    return r == 0 ? MP_ETIMEDOUT : r;
}

/* Look at p's end without waiting: 1 ended, 0 running (also while another
   thread waits on it), or a negative code. */
static int poll_end(mp_process *p)
{
    if (p->state != MP__P_RUNNING)
        return p->state == MP__P_ENDED;
    if (pthread_mutex_trylock(&p->wait_mu) != 0)
        return 0;
    int r = observe(p, 0, 1);
    pthread_mutex_unlock(&p->wait_mu);
    return r;
}

int mp_process_is_alive(mp_process *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->is_self)
        return 1;
    if (p->state == MP__P_NEW)
        return 0;
    if (p->owner != mp__getpid())
        return MP_ECHILD;
    int r = poll_end(p);
    return r < 0 ? r : !r;
}

static int send_signal(mp_process *p, int sig)
{
    int r = check_child(p);
    if (r != 0)
        return r;
    if (p->state == MP__P_ENDED)
        return 0;
    return mp__pidfd_signal(p->pidfd, sig);
}

int mp_process_terminate(mp_process *p)
{
    return send_signal(p, SIGTERM);
}

int mp_process_kill(mp_process *p)
{
    return send_signal(p, SIGKILL);
}

int mp_process_exitcode(mp_process *p, int *code)
{
    if (p == NULL || code == NULL)
        return MP_EINVAL;
    if (p->is_self)
        return MP_EBUSY;
    if (p->state == MP__P_NEW)
        return MP_ESTATE;
    if (p->state == MP__P_RUNNING) {
        if (p->owner != mp__getpid())
            return MP_ECHILD;
        int r = poll_end(p);
        if (r < 0)
            return r;
        if (r == 0)
            return MP_EBUSY;
    }
    if (p->exitcode == MP__CODE_STOLEN)
        return MP_ECHILD;
    *code = p->exitcode;
    return 0;
}

pid_t mp_process_pid(const mp_process *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->is_self)
        return mp__getpid();
    return p->pid;
}

const char *mp_process_name(const mp_process *p)
{
    return p == NULL ? NULL : p->name;
}

int mp_process_daemon(const mp_process *p)
{
    return p == NULL ? MP_EINVAL : p->daemon;
}

int mp_process_sentinel(const mp_process *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (p->is_self || p->state == MP__P_NEW)
        return MP_ESTATE;
    if (p->owner != mp__getpid())
        return MP_ECHILD;
    return p->pidfd;
}

int mp_process_close(mp_process *p)
{
    if (p == NULL || p->is_self)
        return MP_EINVAL;
    if (p->state == MP__P_RUNNING && p->owner == mp__getpid()) {
        int r = poll_end(p);
        if (r < 0)
            return r;
        if (r == 0)
            return MP_EBUSY;
    }
    pthread_mutex_lock(&children_mu);
    release(p);
    pthread_mutex_unlock(&children_mu);
    return 0;
}

void mp_process_free(mp_process *p)
{
    if (p == NULL || p->is_self)
        return;
    /* Detach unless it is known to have ended: a wait that failed (no
       memory for poll) says nothing about a running child. */
    if (p->state == MP__P_RUNNING && p->owner == mp__getpid() &&
        poll_end(p) != 1) {
        pthread_mutex_lock(&children_mu);
        p->detached = 1;
        pthread_mutex_unlock(&children_mu);
        return;
    }
    pthread_mutex_lock(&children_mu);
    release(p);
    pthread_mutex_unlock(&children_mu);
}

int mp_active_children(mp_process **out, size_t cap)
{
    if (out == NULL && cap > 0)
        return MP_EINVAL;
    size_t n = 0;
    pthread_mutex_lock(&children_mu);
    mp_process *p = child_of(children.first);
    while (p != NULL) {
        mp_process *next = child_of(p->link.next);
        int code = 0, r = 0;
        /* A child another thread is waiting on counts as running. */
        if (pthread_mutex_trylock(&p->wait_mu) == 0) {
            r = p->state == MP__P_RUNNING ? wait_end(p, 0, 0, &code) : 1;
            if (r == MP_ECHILD) { /* reaped by another wait: ended */
                code = MP__CODE_STOLEN;
                r = 1;
            }
            if (r == 1 && p->state == MP__P_RUNNING)
                ended(p, code);
            pthread_mutex_unlock(&p->wait_mu);
        }
        if (r == 1) {
            if (p->detached)
                release(p);
        } else if (!p->detached) {
            if (n < cap)
                out[n] = p;
            n++;
        }
        p = next;
    }
    pthread_mutex_unlock(&children_mu);
    return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}

/* The next child of ours still to be waited for at exit, or NULL. */
static mp_process *next_to_reap(pid_t me)
{
    pthread_mutex_lock(&children_mu);
    mp_process *p;
    while ((p = child_of(children.first)) != NULL &&
           (p->owner != me || p->state != MP__P_RUNNING))
        list_del(p);
    pthread_mutex_unlock(&children_mu);
    return p;
}

void mp__process_at_exit(void)
{
    /* A child that started nothing (the common short child) leaves at
       once: locking and looking would cost it page faults. The racy look
       is enough: a thread still starting children while the process
       exits is not waited for either way. */
    if (__atomic_load_n(&children.first, __ATOMIC_RELAXED) == NULL &&
        !mp__forkserver_running())
        return;
    pid_t me = mp__getpid();
    pthread_mutex_lock(&children_mu);
    for (mp__link *l = children.first; l != NULL; l = l->next) {
        mp_process *p = child_of(l);
        if (p->daemon && p->owner == me && p->state == MP__P_RUNNING)
            mp__pidfd_signal(p->pidfd, SIGTERM);
    }
    pthread_mutex_unlock(&children_mu);
    uint64_t grace = mp__now_ns() + (uint64_t)(DAEMON_GRACE_S * 1e9);
    mp_process *p;
    while ((p = next_to_reap(me)) != NULL) {
        /* Python joins every child; a daemon that ignores SIGTERM is
           killed after a grace period rather than hanging the exit. */
        if (!mp__mutex_lock_until(&p->wait_mu,
                                  p->daemon ? grace : MP__NO_DEADLINE)) {
            /* Another thread waits on this daemon without end: the
               grace is spent all the same. */
            mp__pidfd_signal(p->pidfd, SIGKILL);
            pthread_mutex_lock(&p->wait_mu);
        }
        int r = observe(p, p->daemon ? grace : MP__NO_DEADLINE, 0);
        if (r == 0) {
            mp__pidfd_signal(p->pidfd, SIGKILL);
            r = observe(p, MP__NO_DEADLINE, 0);
        }
        pthread_mutex_unlock(&p->wait_mu);
        pthread_mutex_lock(&children_mu);
        if (r != 1)
            list_del(p);
        if (p->detached)
            release(p);
        pthread_mutex_unlock(&children_mu);
    }
    mp__forkserver_stop();
}
