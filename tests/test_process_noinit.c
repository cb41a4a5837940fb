/* test_process_noinit.c - a program that forgot mp_init gets MP_ENOINIT, never
   a hang or a crash; then the options of mp_init the harness cannot take
   (it calls mp_init itself). Plain main. */
#include "multiproc.h"

#include <stdio.h>

static int target(void *arg)
{
    (void)arg;
    return 0;
}

#define EXPECT(cond)                                                           \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                          \
        }                                                                      \
    } while (0)

int main(void)
{
    mp_process *p = NULL;
    EXPECT(mp_process_new(&p, target, NULL, NULL) == MP_ENOINIT);
    EXPECT(p == NULL);
    EXPECT(mp_process_start(NULL) == MP_EINVAL);
    EXPECT(mp_current_process() == NULL);
    EXPECT(mp_shared_alloc(64) == NULL);
    mp_shared_free(NULL);
    EXPECT(mp_shared_contains(&p) == 0);
    EXPECT(mp_active_children(NULL, 0) == 0);
    EXPECT(mp_cpu_count() >= 1);
    /* A forkserver that keeps four children ready: more is refused. */
    mp_config bad = {.forkserver_spares = 65};
    EXPECT(mp_init(NULL, NULL, &bad) == MP_EINVAL);
    mp_config four = {.start = MP_START_FORKSERVER, .forkserver_spares = 4};
    EXPECT(mp_init(NULL, NULL, &four) == 0);
    for (int i = 0; i < 10; i++) {
        int code = -1;
        EXPECT(mp_process_new(&p, target, NULL, NULL) == 0);
        EXPECT(mp_process_start(p) == 0);
        EXPECT(mp_process_join(p, 10) == 0);
        EXPECT(mp_process_exitcode(p, &code) == 0 && code == 0);
        mp_process_free(p);
    }
    puts("ok: MP_ENOINIT without mp_init; four spares");
    return 0;
}
