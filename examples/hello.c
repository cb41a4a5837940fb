/* hello.c - the README's example: one spawned child, its exit code. */
#include <multiproc.h>

#include <stdio.h>

static int work(void *arg)
{
    printf("hello from %s\n", mp_process_name(mp_current_process()));
    return *(int *)arg;
}

int main(int argc, char **argv)
{
    mp_init(&argc, &argv, NULL); /* first: like the __main__ guard */
    int code = 7;
    mp_process *p;
    mp_process_opts o = {.start = MP_START_SPAWN, .arg_size = sizeof code};
    mp_process_new(&p, work, &code, &o);
    mp_process_start(p);
    mp_process_join(p, MP_FOREVER);
    mp_process_exitcode(p, &code);
    printf("exit code %d\n", code); /* 7 */
    mp_process_free(p);
    return 0;
}
