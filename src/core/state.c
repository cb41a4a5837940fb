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

/* Make the spare if there is none. Returns it or a negative errno (none
   could be made: no lifeline, no /proc, no descriptor left). */
static int make_spare(void)
{
    if (mp__g.lifeline_spare < 0) {
        int fd = mp__g.lifeline_r < 0 ? MP_EBADF
                                      : mp__lifeline_private(mp__g.lifeline_r);
        if (fd < 0)
            return fd;
        mp__g.lifeline_spare = fd;
    }
    return mp__g.lifeline_spare;
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
    (void)make_spare(); /* now, so that a start finds one (and the
                           descriptors a process holds stay the same
                           across starts); best effort */
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
    (void)make_spare(); /* best effort: see mp__lifeline_ready */
    if (!bound) {
        bound = 1;
        mp__prebind_child_calls(mp__g.lifeline_r);
    }
    return 0;
}

int mp__lifeline_spare_fd(void)
{
    return make_spare();
}

void mp__lifeline_handed(void)
{
    /* The next spare takes the number of the one handed, so that the
       descriptors this process holds stay the same from start to start
       (a program, or a test, that compares them sees no change). */
    int old = mp__g.lifeline_spare;
    mp__g.lifeline_spare = -1;
    int fd = make_spare();
    if (old < 0 || fd < 0) {
        mp__close(old);
        return;
    }
    mp__g.lifeline_spare = -1;
    fd = mp__fd_move(fd, old);
    if (fd < 0)
        mp__close(old);
    else
        mp__g.lifeline_spare = fd;
}
