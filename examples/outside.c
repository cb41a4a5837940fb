/* outside.c - an outside program written only against the fixed
   signatures of multiproc (DESIGN 3.1), built against an installed
   prefix by tests/install_outside.sh. */
#include <multiproc.h>

#include <stdio.h>
#include <stdlib.h>

/* shared - what the child and the parent share through the arena. */
struct shared {
    mp_lock *lock;
    mp_queue *q;
    long counter;
    int v[2];
};

static int child(void *arg)
{
    struct shared *s = arg;
    s->v[1] = s->v[0] * s->v[0];
    for (int i = 0; i < 1000; i++) {
        if (mp_lock_acquire(s->lock, MP_FOREVER) != 0)
            return 100;
        s->counter++;
        mp_lock_release(s->lock);
    }
    int msg = 41;
    if (mp_queue_put(s->q, &msg, sizeof msg, MP_FOREVER) != 0)
        return 101;
    return s->v[0] % 256;
}

static int square(const void *in, void *out)
{
    *(long *)out = *(const long *)in * *(const long *)in;
    return 0;
}

int main(int argc, char **argv)
{
    int r = mp_init(&argc, &argv, NULL);
    if (r != 0) {
        fprintf(stderr, "mp_init: %s (%s)\n", mp_strerror(r), mp_err_name(r));
        return 1;
    }
    struct shared *s = mp_shared_alloc(sizeof *s); /* seen by the child */
    mp_queue_opts qo = {.maxsize = 8};
    if (s == NULL || mp_lock_new(&s->lock) != 0 ||
        mp_queue_new(&s->q, &qo) != 0)
        return 1;
    s->v[0] = 12;
    mp_process *p;
    mp_process_opts opts = {.name = "squarer"};
    if (mp_process_new(&p, child, s, &opts) != 0 || mp_process_start(p) != 0)
        return 1;
    for (int i = 0; i < 1000; i++) {
        mp_lock_acquire(s->lock, MP_FOREVER);
        s->counter++;
        mp_lock_release(s->lock);
    }
    int msg = 0;
    if (mp_queue_get(s->q, &msg, sizeof msg, 30) != (ssize_t)sizeof msg)
        return 2;
    if (mp_process_join(p, MP_FOREVER) != 0)
        return 1;
    int code = -1;
    mp_process_exitcode(p, &code);
    mp_process_free(p);
    if (code != 12 || s->v[1] != 144 || s->counter != 2000 || msg != 41)
        return 3;

    long in[100], out[100];
    for (int i = 0; i < 100; i++)
        in[i] = i;
    mp_pool *pool;
    mp_pool_opts po = {.processes = 2};
    mp_map_opts mo = {.chunksize = 7};
    if (mp_pool_new(&pool, &po) != 0 ||
        mp_pool_map(pool, square, in, sizeof in[0], out, sizeof out[0], 100,
                    &mo) != 0)
        return 4;
    for (int i = 0; i < 100; i++)
        if (out[i] != (long)i * i)
            return 5;
    if (mp_pool_close(pool) != 0 || mp_pool_join(pool, 30) != 0)
        return 6;
    mp_pool_free(pool);
    mp_queue_close(s->q);
    mp_queue_free(s->q);
    mp_lock_free(s->lock);
    mp_shared_free(s);
    const char *m = getenv("MP_START_METHOD");
    printf("outside: ok (%s), %d CPUs\n", m ? m : "fork", mp_cpu_count());
    return 0;
}
