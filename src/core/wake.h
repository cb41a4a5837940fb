/* wake.h - the two halves of every futex hand-off in shared memory: the
   publisher's wake-up and the sleeper's bounded nap. */
#ifndef MP_WAKE_H
#define MP_WAKE_H

#include "../platform/platform.h"

#include <limits.h>
#include <stdint.h>

/* MP__NAP_NS - the longest any sleeper sleeps without looking again. A
   party killed between its commit and its wake-up (or stopped there)
   then strands nobody for longer than this. */
#define MP__NAP_NS 100000000u

/* mp__nap_until - the deadline of one nap of a sleeper whose call ends
   at dl: at most MP__NAP_NS from now. */
static inline uint64_t mp__nap_until(uint64_t dl)
{
    uint64_t nap = mp__now_ns() + MP__NAP_NS;
    return nap < dl ? nap : dl;
}

/* mp__wake_all - bump the sequence word seq and wake every thread asleep
   on it (after a sequentially consistent store of what they wait for). */
static inline void mp__wake_all(uint32_t *seq)
{
    __atomic_add_fetch(seq, 1, __ATOMIC_SEQ_CST);
    mp__futex_wake(seq, INT_MAX);
}

/* mp__wake_sleepers - the publisher's half: after a sequentially
   consistent store of what sleepers wait for, if the flag says someone
   may sleep on seq, the first publisher to lower it wakes them all, so a
   stream of publications makes one system call per sleep, not one each.
   The sleeper's half raises the flag (seq_cst), looks once more, then
   sleeps on seq for at most a nap (mp__nap_until). */
static inline void mp__wake_sleepers(uint32_t *seq, uint32_t *flag)
{
    if (__atomic_load_n(flag, __ATOMIC_SEQ_CST) != 0 &&
        __atomic_exchange_n(flag, 0, __ATOMIC_SEQ_CST) != 0)
        mp__wake_all(seq);
}

#endif /* MP_WAKE_H */
