/* queue_internal.h - the queue's test hook: named steps inside put and get
   where a test may kill the calling process. */
#ifndef MP_QUEUE_INTERNAL_H
#define MP_QUEUE_INTERNAL_H

/* The steps, in the order a put or a get passes them. */
enum mp__queue_step {
    MP__QP_LOCKED = 1, /* put: producer lock taken, nothing written */
    MP__QP_HEADER,     /* put: header (and any wrap marker) written; a
                          by-reference message counted (announced) */
    MP__QP_HALF,       /* put: half of the payload written */
    MP__QP_COMMITTED,  /* put: head committed, lock still held */
    MP__QP_UNLOCKED,   /* put: lock released, sleepers not yet woken */
    MP__QG_LOCKED,     /* get: consumer lock taken */
    MP__QG_SKIPPED,    /* get: a wrap marker skipped and committed */
    MP__QG_COPIED,     /* get: message copied out, its count announced,
                          not committed */
    MP__QG_COMMITTED,  /* get: tail committed, a by-reference message not
                          yet counted out; lock still held */
    MP__QG_UNLOCKED,   /* get: lock released, large block not yet freed */
    MP__QT_COUNTED     /* task_done: counted, joiners not yet woken */
};

/* mp__queue_fault_hook - when set (tests only), called at every step. */
extern void (*mp__queue_fault_hook)(int step);

#endif /* MP_QUEUE_INTERNAL_H */
