/* state.c - the library state of this process (mp__g) and its lifeline
   pipe; mp_init, which fills it, sits above in src/process/init.c. */
#include "core.h"

#include "../platform/platform.h"

struct mp__state mp__g = {
    .arena_fd = -1,
    .lifeline_r = -1,
    .lifeline_w = -1,
};

int mp__require_init(void)
{
    return mp__g.initialized ? 0 : MP_ENOINIT;
}

int mp__new_lifeline(void)
{
    int fds[2];
    int r = mp__pipe(fds);
    if (r != 0)
        return r;
    mp__close(mp__g.lifeline_r);
    mp__close(mp__g.lifeline_w);
    mp__g.lifeline_r = fds[0];
    mp__g.lifeline_w = fds[1];
    return 0;
}
