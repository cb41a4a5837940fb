/* test_process_noinit.c - a program that forgot mp_init gets MP_ENOINIT, never
   a hang or a crash. Plain main (no harness: the harness calls mp_init). */
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
    puts("ok: MP_ENOINIT without mp_init");
    return 0;
}
