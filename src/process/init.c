/* init.c - mp_init, the library's entry: the start method, the family
   arena, the lifeline, the boot of spawned children, and the process
   module's exit and fork hooks. */
#include "process_internal.h"

#include "../platform/platform.h"

#include <stdlib.h>
#include <string.h>

static void at_exit(void)
{
    if (mp__g.initialized)
        mp__process_at_exit();
}

static void atfork_prepare(void)
{
    mp__forkserver_before_fork();
}

static void atfork_parent(void)
{
    mp__forkserver_parent_fork();
}

static void atfork_child(void)
{
    /* Whoever forked, this child must not hold the write end: our
       children die when the last write end closes. A multiproc child
       arms its lifeline with the spare (mp__child_after_fork); any other
       fork child has no use for the read ends. */
    mp__close(mp__g.lifeline_w);
    mp__g.lifeline_w = -1;
    if (!mp__forking_child) {
        mp__close(mp__g.lifeline_r);
        mp__close(mp__g.lifeline_spare);
        mp__g.lifeline_r = mp__g.lifeline_spare = -1;
    }
    mp__process_after_fork();
}

void mp__register_handlers(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    mp__on_exit(at_exit);
    mp__on_fork(atfork_prepare, atfork_parent, atfork_child);
}

static int parse_method(const char *s, mp_start_method *m)
{
    if (strcmp(s, "fork") == 0)
        *m = MP_START_FORK;
    else if (strcmp(s, "spawn") == 0)
        *m = MP_START_SPAWN;
    else if (strcmp(s, "forkserver") == 0)
        *m = MP_START_FORKSERVER;
    else
        return MP_EINVAL;
    return 0;
}

int mp_init(int *argc, char ***argv, const mp_config *cfg)
{
    if (mp__g.initialized)
        return MP_EALREADY;
    const char *boot = getenv("MP__BOOT");
    if (boot != NULL)
        (void)mp__boot(boot); /* returns when not ours: ignored */
    mp_config c = {0};
    if (cfg != NULL)
        c = *cfg;
    if ((unsigned)c.start > MP_START_FORKSERVER)
        return MP_EINVAL;
    mp_start_method m = c.start;
    if (m == MP_START_DEFAULT) {
        const char *env = getenv("MP_START_METHOD");
        m = MP_START_FORK;
        if (env != NULL && *env != '\0' && parse_method(env, &m) != 0)
            return MP_EINVAL;
    }
    if (c.forkserver_spares > MP__FS_SPARES_MAX)
        return MP_EINVAL;
    size_t size = c.arena_size ? c.arena_size : MP__ARENA_DEFAULT_SIZE;
    int r = mp__arena_create(size);
    if (r != 0)
        return r;
    r = mp__new_lifeline();
    if (r != 0) {
        mp__unmap(mp__g.arena, mp__g.arena_size);
        mp__close(mp__g.arena_fd);
        mp__g.arena = NULL;
        mp__g.arena_fd = -1;
        return r;
    }
    mp__g.argc = argc != NULL ? *argc : 0;
    mp__g.argv = argv != NULL ? *argv : NULL;
    mp__g.start = m;
    /* The server keeps one spare unless told none; a positive count
       asks for that many lent to us ahead of time (warm starts). */
    mp__g.fs_spares = c.forkserver_spares < 0 ? 0 : 1;
    mp__g.fs_lend = c.forkserver_spares > 0 ? c.forkserver_spares : 0;
    mp__register_handlers();
    mp__process_init_main();
    mp__g.initialized = 1;
    return 0;
}
