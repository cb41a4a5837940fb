/* spin.h - bounded spinning that learns whether it pays: the pause
   schedule of every spinning waiter, and the per-thread record of recent
   waits that decides whether to spin at all. */
#ifndef MP_SPIN_H
#define MP_SPIN_H

#include "../platform/platform.h"

#include <stdint.h>

/* MP__SPIN_LIMIT, MP__SPIN_SHIFT - a lock waiter looks at the word this
   many times before it sleeps in the kernel, with 1, 2, 4 .. 2^SHIFT
   pauses between looks: 191 pauses in all, about 5 us where a pause is
   25 ns (this VM), well under the 30-50 us of a cross-process futex wake.
   Bounded: two cores are oversubscribed in tests. */
#define MP__SPIN_LIMIT 8
#define MP__SPIN_SHIFT 6

/* mp__spin_pause - the pause before look number round (0-based) of a
   spinning waiter: 2^min(round, MP__SPIN_SHIFT) pause instructions. */
static inline void mp__spin_pause(int round)
{
    for (int k = 1 << (round < MP__SPIN_SHIFT ? round : MP__SPIN_SHIFT); k > 0;
         k--)
        mp__cpu_relax();
}

/* MP__SPIN_STOP, MP__SPIN_PROBE - a waiter keeps, per kind of wait, a
   running share of its recent spins that went unanswered (it slept after
   all), in 1/256ths, each spin weighing 1/8. Once more than
   MP__SPIN_STOP/256 went unanswered it sleeps at once, spinning again
   only on one wait in MP__SPIN_PROBE + 1 to learn whether spinning pays
   again. A spin is answered only while the other party runs on another
   CPU: when both share one CPU (oversubscription, a busy machine), every
   spin burns the time slice the other party needs to answer, and
   sleeping at once is the fastest wait there is. Only a clear pattern
   stops the spinning (about 9 spins in 10 unanswered, 20 misses in a row
   from the start): a sleeper costs its wakers a system call too, and with
   more busy processes than CPUs (2 producers, 2 consumers on 2 CPUs) a
   spin that is answered one time in three still pays (stopping at 3 in 4
   cost that queue 10% of its throughput). */
#define MP__SPIN_STOP  232u
#define MP__SPIN_PROBE 63u

/* mp__spinner - what one kind of wait of one thread learned: the share
   of unanswered spins, and a count of waits (for probing). Zero is the
   initial state: spin. */
struct mp__spinner {
    uint32_t missed;
    uint32_t waits;
};

/* mp__spin_worth - 1 if a waiter about to wait should spin first, else 0
   (sleep at once). */
static inline int mp__spin_worth(struct mp__spinner *s)
{
    if (s->missed <= MP__SPIN_STOP)
        return 1;
    return (++s->waits & MP__SPIN_PROBE) == 0;
}

/* mp__spin_learn - record how a spin ended: answered (what the waiter
   waited for came while it spun) or not (it went to sleep). */
static inline void mp__spin_learn(struct mp__spinner *s, int answered)
{
    if (answered) {
        /* One answer is enough to spin again (a probe's answer would
           otherwise need several more probes to count). */
        s->missed -= s->missed / 8;
        if (s->missed > MP__SPIN_STOP)
            s->missed = MP__SPIN_STOP;
    } else {
        s->missed += (256 - s->missed) / 8;
    }
}

#endif /* MP_SPIN_H */
