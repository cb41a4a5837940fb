/* state.c - the library state of this process (mp__g) and its lifeline
   pipe; mp_init, which fills it, sits above in src/process/init.c. */
#include "core.h"

#include "../platform/platform.h"

struct mp__state mp__g = {
    .arena_fd = -1,
    .lifeline_r = -1,
    .lifeline_w = -1,
    .lifeline_spare = -1,
};

int mp__require_init(void)
{
    return mp__g.initialized ? 0 : MP_ENOINIT;
}

__thread int mp__forking_child;

/* Make the spare if there is none; best effort. */
static void make_spare(void)
{
    if (mp__g.lifeline_spare < 0 && mp__g.lifeline_r >= 0) {
        int fd = mp__lifeline_private(mp__g.lifeline_r);
        mp__g.lifeline_spare = fd < 0 ? -1 : fd;
    }
}

int mp__new_lifeline(void)
{
    int fds[2];
    int r = mp__pipe(fds);
    if (r != 0)
        return r;
    mp__close(mp__g.lifeline_r);
    mp__close(mp__g.lifeline_w);
    mp__close(mp__g.lifeline_spare);
    mp__g.lifeline_r = fds[0];
    mp__g.lifeline_w = fds[1];
    mp__g.lifeline_spare = -1;
    make_spare(); /* now, so that a start finds one (and the descriptors
                     a process holds stay the same across starts) */
    return 0;
}

int mp__lifeline_ready(void)
{
    static int bound;
    if (mp__g.lifeline_w < 0) {
        int r = mp__new_lifeline();
        if (r != 0)
            return r;
    }
    make_spare();
    if (!bound) {
        bound = 1;
        mp__prebind_child_calls(mp__g.lifeline_r);
    }
    return 0;
}

int mp__lifeline_spare_fd(void)
{
    if (mp__g.lifeline_spare < 0) {
        int fd = mp__lifeline_private(mp__g.lifeline_r);
        if (fd < 0)
            return fd;
        mp__g.lifeline_spare = fd;
    }
    return mp__g.lifeline_spare;
}

void mp__lifeline_handed(void)
{
    /* The next spare takes the number of the one handed, so that the
       descriptors this process holds stay the same from start to start
       (a program, or a test, that compares them sees no change). */
    int old = mp__g.lifeline_spare;
    mp__g.lifeline_spare = -1;
    if (old < 0) {
        make_spare();
        return;
    }
    int fd = mp__lifeline_private(mp__g.lifeline_r);
    if (fd < 0) {
        mp__close(old);
        return;
    }
    fd = mp__fd_move(fd, old);
    if (fd < 0)
        mp__close(old);
    else
        mp__g.lifeline_spare = fd;
}
