/* outside.c - an outside program written only against the fixed
   signatures of multiproc (DESIGN 3.1), built against an installed
   prefix by tests/install_outside.sh. */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>

static int square(void *arg)
{
    int *v = arg;
    v[1] = v[0] * v[0];
    return v[0] % 256;
}

int main(int argc, char **argv)
{
    int r = mp_init(&argc, &argv, NULL);
    if (r != 0) {
        fprintf(stderr, "mp_init: %s (%s)\n", mp_strerror(r), mp_err_name(r));
        return 1;
    }
    int *v = mp_shared_alloc(2 * sizeof *v); /* seen by the child */
    v[0] = 12;
    mp_process *p;
    mp_process_opts opts = {.name = "squarer"};
    if (mp_process_new(&p, square, v, &opts) != 0 || mp_process_start(p) != 0)
        return 1;
    if (mp_process_join(p, MP_FOREVER) != 0)
        return 1;
    int code = -1;
    mp_process_exitcode(p, &code);
    mp_process_free(p);
    const char *m = getenv("MP_START_METHOD");
    if (code != 12 || v[1] != 144 || mp_cpu_count() < 1)
        return 1;
    mp_shared_free(v);
    printf("outside: ok (%s)\n", m ? m : "fork");
    return 0;
}
