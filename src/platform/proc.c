/* proc.c - creating, signalling, watching and reaping processes. */
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

pid_t mp__fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    return pid < 0 ? -errno : pid;
}

pid_t mp__spawn_self(char *const argv[], char *const envp[], const int *keep,
                     int nkeep)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int r = posix_spawn_file_actions_init(&fa);
    if (r != 0)
        return -r;
    r = posix_spawnattr_init(&at);
    if (r != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    /* The child gets keep[i] at MP__SPAWN_FD0 + i and nothing else above
       standard error, as Python's spawn: a descriptor the program left
       without close-on-exec must not leak into a fresh program. dup2
       clears close-on-exec on the copy. The copies go first above every
       kept number, then down, so that no dup2 lands on a descriptor not
       yet copied (the kept ones are distinct and >= 3, so the highest is
       at least MP__SPAWN_FD0 + nkeep - 1). */
    int top = MP__SPAWN_FD0 + nkeep;
    for (int i = 0; i < nkeep; i++)
        if (keep[i] + 1 > top)
            top = keep[i] + 1;
    for (int i = 0; i < nkeep && r == 0; i++)
        r = posix_spawn_file_actions_adddup2(&fa, keep[i], top + i);
    for (int i = 0; i < nkeep && r == 0; i++)
        r = posix_spawn_file_actions_adddup2(&fa, top + i, MP__SPAWN_FD0 + i);
    if (r == 0)
        r = posix_spawn_file_actions_addclosefrom_np(&fa,
                                                     MP__SPAWN_FD0 + nkeep);
    sigset_t none;
    sigemptyset(&none);
    if (r == 0)
        r = posix_spawnattr_setsigmask(&at, &none);
    if (r == 0)
        r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    pid_t pid = -1;
    if (r == 0) {
        fflush(NULL);
        r = posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, envp);
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return r != 0 ? -r : pid;
}

int mp__pidfd_open(pid_t pid)
{
    int fd = pidfd_open(pid, 0);
    /* pidfds are close-on-exec from birth. */
    return fd < 0 ? -errno : fd;
}

int mp__pidfd_signal(int pidfd, int sig)
{
    if (pidfd_send_signal(pidfd, sig, NULL, 0) == 0)
        return 0;
    return errno == ESRCH ? 0 : -errno;
}

static int code_of(const siginfo_t *si)
{
    if (si->si_code == CLD_EXITED)
        return si->si_status;
    return -si->si_status; /* CLD_KILLED, CLD_DUMPED */
}

int mp__pidfd_reap(int pidfd, int nohang, int *code)
{
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        int r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si,
                       WEXITED | (nohang ? WNOHANG : 0));
        if (r == 0) {
            if (si.si_pid == 0)
                return 0;
            *code = code_of(&si);
            return 1;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int mp__reap_pid(pid_t pid, int *code)
{
    for (;;) {
        siginfo_t si;
        if (waitid(P_PID, (id_t)pid, &si, WEXITED) == 0) {
            *code = code_of(&si);
            return 1;
        }
        if (errno != EINTR)
            return -errno;
    }
}

pid_t mp__reap_any(int *code)
{
    for (;;) {
        siginfo_t si;
        si.si_pid = 0;
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) == 0) {
            if (si.si_pid != 0)
                *code = code_of(&si);
            return si.si_pid;
        }
        if (errno != EINTR)
            return -errno;
    }
}

int mp__kill_pid(pid_t pid, int sig)
{
    return kill(pid, sig) == 0 ? 0 : -errno;
}

pid_t mp__getppid(void)
{
    return getppid();
}

int mp__ended_fd(void)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    close(fds[1]);
    return fds[0];
}

int mp__set_pdeathsig(int sig)
{
    return prctl(PR_SET_PDEATHSIG, sig) == 0 ? 0 : -errno;
}

int mp__lifeline_private(int rfd)
{
    int fd = mp__reopen_fd(rfd, O_RDONLY | O_NONBLOCK);
    if (fd < 0)
        return fd;
    /* The last writer's close makes the pipe raise "SIGIO" for its
       asynchronous readers; F_SETSIG turns that signal into SIGKILL. Set
       here, by whoever makes the description (the parent, ahead of the
       start), so that the child has only its pid to set: with no owner
       yet, the hang-up signals nobody. */
    if (fcntl(fd, F_SETSIG, SIGKILL) < 0 ||
        fcntl(fd, F_SETFL, O_RDONLY | O_NONBLOCK | O_ASYNC) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

int mp__arm_lifeline(int fd)
{
    if (fcntl(fd, F_SETOWN, mp__getpid()) < 0)
        return -errno;
    /* The writer may have gone before the arming: then no signal comes. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) == 1 && (p.revents & POLLHUP))
        return -EPIPE;
    return 0;
}

void mp__prebind_child_calls(int fd)
{
    char name[16];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    (void)fcntl(fd, F_GETOWN);
    (void)poll(&p, 1, 0);
    (void)prctl(PR_GET_NAME, name, 0, 0, 0);
    (void)getppid();
    (void)getpid();
}

void mp__set_comm(const char *name)
{
    (void)prctl(PR_SET_NAME, name, 0, 0, 0);
}

int mp__signalfd_chld(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    int r = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (r != 0)
        return -r;
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    return fd < 0 ? -errno : fd;
}

void mp__signalfd_drain(int sfd)
{
    struct signalfd_siginfo si[8];
    while (read(sfd, si, sizeof si) > 0)
        ;
}

void mp__sigint_ignored(int on)
{
    static struct sigaction saved;
    static int have_saved;
    if (on) {
        struct sigaction ign = {.sa_handler = SIG_IGN};
        sigemptyset(&ign.sa_mask);
        have_saved = sigaction(SIGINT, &ign, &saved) == 0;
    } else if (have_saved) {
        (void)sigaction(SIGINT, &saved, NULL);
    }
}

void mp__unblock_all_signals(void)
{
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
}

_Noreturn void mp__exit_now(int status)
{
    /* Called through a pointer, bound when the program was loaded: a
       lazily bound first call would cost every short child a symbol
       look-up and its page faults. */
    static void (*const volatile leave)(int) = _exit;
    leave(status);
    __builtin_unreachable();
}
