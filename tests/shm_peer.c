/* shm_peer.c - an unrelated program (no mp_init, not of the test's
   family) that maps a named segment and uses the lock, semaphore and
   event the test placed in it. Usage: shm_peer NAME count|die */
#include "multiproc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The segment's layout, agreed with test_sync_lock.c. */
#define OFF_LOCK    0
#define OFF_SEM     64
#define OFF_EVENT   128
#define OFF_COUNTER 256
#define ROUNDS      100000

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int fd = shm_open(argv[1], O_RDWR, 0);
    if (fd < 0)
        return 3;
    /* Take some address space first, so that the segment surely lands
       at another address than in the test. */
    void *pad =
        mmap(NULL, 1 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *seg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (seg == MAP_FAILED || pad == MAP_FAILED)
        return 4;
    mp_lock *lock = (mp_lock *)(seg + OFF_LOCK);
    mp_semaphore *sem = (mp_semaphore *)(seg + OFF_SEM);
    mp_event *go = (mp_event *)(seg + OFF_EVENT);
    volatile long *counter = (volatile long *)(seg + OFF_COUNTER);
    if (strcmp(argv[2], "die") == 0) {
        if (mp_lock_acquire(lock, 10) != 0)
            return 5;
        mp_semaphore_release(sem);
        raise(SIGKILL);
    }
    mp_semaphore_release(sem); /* mapped and ready */
    if (mp_event_wait(go, 30) != 1)
        return 6;
    for (int i = 0; i < ROUNDS; i++) {
        if (mp_lock_acquire(lock, 30) != 0)
            return 7;
        (*counter)++;
        if (mp_lock_release(lock) != 0)
            return 8;
    }
    return 0;
}
