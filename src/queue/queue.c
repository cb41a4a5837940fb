/* queue.c - Queue / JoinableQueue / SimpleQueue: a byte ring in the family
   arena between producers (serialised by one robust lock) and consumers
   (by another), committed with single 64-bit stores. */
#include "../core/core.h"
#include "../core/wake.h"
#include "../platform/platform.h"
#include "queue_internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* How it survives a kill. A put writes the record beyond the head, then
   commits it with one store of the head word, which packs the message
   count with the byte position (so the count can never disagree with the
   bytes). A get copies the record out, then commits with one store of the
   tail word. A process killed before its commit changed nothing anyone
   can see; killed after it, the work is done. The next process to take
   the dead one's lock gets MP_EOWNERDEAD from the kernel at once and has
   nothing to repair. What can be lost: a message a consumer had taken
   (committed) when it died, and the arena block of a large message whose
   producer died between copying and committing.

   Capacity bounds every byte a queue holds: the ring's records and the
   blocks of messages that travel by reference (ref_in - ref_out). Each
   side moves its counter with an absolute store, announced first in its
   accounting line (the value before, the value after, and the head or
   tail word the commit will store): the next holder of a dead one's lock
   sees the announcement and settles the counter by whether that commit
   happened. Producers count a block before committing it, consumers
   after, so ref_out never passes ref_in.

   Waiting for a lock takes the caller's deadline: a holder stopped by
   SIGSTOP or a debugger makes the others time out, not hang. */

#define Q_MAGIC       0x55455551u /* "QUEU" */
#define Q_DEAD        0xdeadbeefu
#define Q_MIN_CAP     ((uint64_t)4096)
#define Q_DEFAULT_CAP ((uint64_t)1 << 20)
#define Q_MAX_CAP     ((uint64_t)1 << 30)

/* The head and tail words: message count (26 bits) | byte position. */
#define POS_BITS 38
#define CNT_MASK ((UINT64_C(1) << 26) - 1)
#define POS_MASK ((UINT64_C(1) << POS_BITS) - 1)
#define PACK(cnt, pos)                                                         \
    ((((uint64_t)(cnt)&CNT_MASK) << POS_BITS) | ((pos)&POS_MASK))
#define CNT(w) ((w) >> POS_BITS)
#define POS(w) ((w)&POS_MASK)

/* Record kinds. */
#define K_DATA 1u
#define K_WRAP 2u /* the rest of the ring is unused: go to its start */
#define K_REF  3u /* the payload is a struct qref */

/* rec - the 8-byte header of every record; the payload follows, padded
   to 8 bytes. */
struct rec {
    uint32_t len; /* payload bytes (K_WRAP: bytes to skip) */
    uint32_t kind;
};

/* qref - a message that lives in its own arena block. */
struct qref {
    uint64_t off; /* arena offset of the block */
    uint64_t len; /* message bytes */
};

/* acct - a side's announcement of a counter move tied to its commit. */
struct acct {
    uint64_t pending; /* 1 while a move is under way */
    uint64_t before;  /* the counter before the move */
    uint64_t after;   /* the counter after it */
    uint64_t commit;  /* the head or tail word the commit stores */
};

/* mp_queue - one cache line per role, so that producers and consumers
   each keep their lock and their cached view of the other side local,
   and only the head and tail lines travel. */
struct mp_queue {
    /* read-mostly */
    uint32_t magic;
    uint32_t joinable;
    uint64_t cap;     /* ring bytes, a power of two */
    uint64_t maxsize; /* 0: no message limit */
    int64_t ring_rel; /* ring address minus ours */
    uint32_t closed;
    char pad0[64 - 36];
    /* producers */
    mp__rmutex plock;
    uint64_t ptail;    /* producers' last view of tail */
    uint64_t ref_in;   /* bytes of by-reference messages ever put */
    uint64_t pref_out; /* producers' last view of ref_out */
    uint64_t head;     /* committed by producers */
    char pad2[64 - 8];
    /* consumers */
    mp__rmutex clock;
    uint64_t chead; /* consumers' last view of head */
    char pad3[64 - 48];
    uint64_t tail;    /* committed by consumers */
    uint64_t ref_out; /* bytes of by-reference messages ever taken: beside
                         the tail, which producers read with it */
    char pad4[64 - 16];
    /* sleeping */
    uint32_t data_seq;   /* futex: bumped when a put wakes consumers */
    uint32_t cons_sleep; /* 1: a consumer may sleep: the next put wakes */
    uint32_t space_seq;  /* futex: bumped when a get wakes producers */
    uint32_t prod_sleep; /* 1: a producer may sleep: the next get wakes */
    uint32_t done;       /* task_done calls (joinable) */
    uint32_t join_sleep; /* 1: a joiner may sleep */
    char pad5[64 - 24];
    /* accounting announcements, one line per side */
    struct acct pacct; /* producers': ref_in around a head commit */
    char pad6[64 - sizeof(struct acct)];
    struct acct cacct; /* consumers': ref_out around a tail commit */
    char pad7[64 - sizeof(struct acct)];
};

_Static_assert(sizeof(struct mp_queue) == 8 * 64, "one line per role");

void (*mp__queue_fault_hook)(int step);

#define HOOK(step) MP__FAULT_HOOK(mp__queue_fault_hook, step)

static int ok(const mp_queue *q)
{
    return q != NULL && q->magic == Q_MAGIC;
}

static char *ring(mp_queue *q)
{
    return (char *)q + q->ring_rel;
}

static uint64_t round8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* How long a waiter spins before it sleeps: MP_QUEUE_SPIN_US, default
   20 us (under the 30-50 us a sleeping waiter costs to wake). */
static uint64_t spin_ns(void)
{
    static uint64_t ns = UINT64_MAX;
    uint64_t v = __atomic_load_n(&ns, __ATOMIC_RELAXED);
    if (v == UINT64_MAX) {
        const char *e = getenv("MP_QUEUE_SPIN_US");
        long us = e != NULL ? strtol(e, NULL, 10) : 20;
        v = us < 0 ? 0 : (uint64_t)us * 1000u;
        __atomic_store_n(&ns, v, __ATOMIC_RELAXED);
    }
    return v;
}

int mp_queue_new(mp_queue **out, const mp_queue_opts *opts)
{
    mp_queue_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if (out == NULL || o.capacity > Q_MAX_CAP || o.maxsize > CNT_MASK)
        return MP_EINVAL;
    int r = mp__require_init();
    if (r != 0)
        return r;
    uint64_t cap = o.capacity ? o.capacity : Q_DEFAULT_CAP;
    if (cap < Q_MIN_CAP)
        cap = Q_MIN_CAP;
    cap = UINT64_C(1) << (64 - __builtin_clzll(cap - 1));
    mp_queue *q = mp__arena_alloc(sizeof *q + cap, 64);
    if (q == NULL)
        return MP_ENOMEM;
    q->joinable = o.joinable != 0;
    q->cap = cap;
    q->maxsize = o.maxsize;
    q->ring_rel = (int64_t)sizeof *q;
    mp__rmutex_init(&q->plock);
    mp__rmutex_init(&q->clock);
    /* The rest is zero (fresh arena memory). */
    __atomic_store_n(&q->magic, Q_MAGIC, __ATOMIC_RELEASE);
    *out = q;
    return 0;
}

/* Settle a dead holder's counter move: the value after it if its commit
   happened (the word holds what it announced), else the value before. */
static void settle(struct acct *a, uint64_t *word, uint64_t *counter)
{
    if (a->pending) {
        *counter = __atomic_load_n(word, __ATOMIC_ACQUIRE) == a->commit
                       ? a->after
                       : a->before;
        a->pending = 0;
    }
}

/* Take the producers' (consumers') lock of q by dl. Returns 0, or
   MP_ETIMEDOUT (a holder, stopped or slow, kept it past dl). */
static int qlock(mp_queue *q, int producers, uint64_t dl)
{
    mp__rmutex *m = producers ? &q->plock : &q->clock;
    int r = mp__rmutex_lock(m, 0);
    if (r == MP_ETIMEDOUT)
        r = mp__rmutex_lock(m, mp__lock_deadline(dl));
    if (r == MP_EOWNERDEAD) {
        if (producers)
            settle(&q->pacct, &q->head, &q->ref_in);
        else
            settle(&q->cacct, &q->tail, &q->ref_out);
        r = 0;
    }
    return r;
}

/* Announce, in a, that counter goes from its value to after with the
   commit that stores word value commit. */
static void announce(struct acct *a, uint64_t counter, uint64_t after,
                     uint64_t commit)
{
    a->before = counter;
    a->after = after;
    a->commit = commit;
    __atomic_store_n(&a->pending, 1, __ATOMIC_SEQ_CST);
}

/* Bytes of by-reference messages in the queue (producers' view: from
   their last look at ref_out, so never fewer than there are). */
static uint64_t ref_bytes(mp_queue *q)
{
    return q->ref_in - q->pref_out;
}

/* The largest message q can ever hold: all of its capacity but the
   record that refers to it. */
static uint64_t max_msg(const mp_queue *q)
{
    return q->cap - (sizeof(struct rec) + sizeof(struct qref));
}

/* Spin until *word differs from seen (or the queue is closed) for the
   spin budget, if spinning has paid lately for this kind of wait (sp),
   then sleep on the futex seq (raising *sleepers) until dl. Returns 1
   (look again) or 0 (timed out). */
static int await_change(mp_queue *q, uint64_t *word, uint64_t seen,
                        uint32_t *seq, uint32_t *sleepers, int lag,
                        struct mp__spinner *sp, uint64_t dl)
{
    uint64_t budget = spin_ns();
    if (budget > 0 && dl != 0 && mp__spin_worth(sp)) {
        /* Look at the other side's line with doubling pauses, starting
           after 2^lag: each look takes the line from its writer, so
           looking less often lets the writer commit a run of messages
           undisturbed. */
        uint64_t until = mp__now_ns() + budget;
        for (int i = lag;; i++) {
            mp__spin_pause(i);
            if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seen ||
                __atomic_load_n(&q->closed, __ATOMIC_ACQUIRE)) {
                mp__spin_learn(sp, 1);
                return 1;
            }
            if (i >= MP__SPIN_SHIFT) {
                uint64_t now = mp__now_ns();
                if (now >= dl)
                    break;
                if (now >= until) {
                    mp__spin_learn(sp, 0);
                    break;
                }
            }
        }
    }
    if (dl == 0 || (dl != MP__NO_DEADLINE && mp__now_ns() >= dl))
        return __atomic_load_n(word, __ATOMIC_ACQUIRE) != seen;
    uint32_t s = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
    /* Raise the flag, then look once more: a commit that comes after the
       look sees the flag (both sides sequentially consistent) and wakes
       every sleeper; the flag is not lowered by the sleeper, so at worst
       one commit makes a needless wake-up call. */
    __atomic_store_n(sleepers, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != seen ||
        __atomic_load_n(&q->closed, __ATOMIC_SEQ_CST))
        return 1;
    /* A committer killed between its commit and its wake-up (or inside
       it, after lowering the flag) leaves us unwoken: sleep in naps and
       look again, raising the flag anew. */
    uint64_t until = mp__nap_until(dl);
    if (mp__futex_wait(seq, s, until) != MP_ETIMEDOUT)
        return 1;
    return until < dl || __atomic_load_n(word, __ATOMIC_ACQUIRE) != seen;
}

/* The first pause of a waiting consumer (producer) is 2^lag pauses. A
   wait that ends with several messages (several records of room) ready
   means the other side runs ahead: look later next time, so that it
   commits whole runs without losing its line at each message. A wait
   that ends with one means ping-pong: look early. Per thread. */
static __thread int data_lag, space_lag;

/* Whether spinning paid lately, per thread, for data and for room. */
static __thread struct mp__spinner data_spin, space_spin;

static void adapt(int *lag, int plenty)
{
    if (plenty && *lag < MP__SPIN_SHIFT)
        (*lag)++;
    else if (!plenty && *lag > 0)
        (*lag)--;
}

/* The bytes a record with a payload of len takes. */
static uint64_t rec_size(uint64_t len)
{
    return sizeof(struct rec) + round8(len);
}

/* Append one record (kind, payload of len bytes, or a qref of a block of
   refl bytes) and commit. Waits for room until dl. Returns 0, MP_EFULL,
   MP_ECLOSED. */
static int append(mp_queue *q, uint32_t kind, const void *data, size_t len,
                  uint64_t refl, uint64_t dl)
{
    uint64_t need = rec_size(len);
    int waited = 0;
    for (;;) {
        if (__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE))
            return MP_ECLOSED;
        if (qlock(q, 1, dl) != 0)
            return MP_EFULL;
        HOOK(MP__QP_LOCKED);
        /* Again under the lock, which close takes: a put that commits
           did so before the close, so a get that saw the close sees it. */
        if (__atomic_load_n(&q->closed, __ATOMIC_SEQ_CST)) {
            mp__rmutex_unlock(&q->plock);
            return MP_ECLOSED;
        }
        uint64_t h = q->head;
        uint64_t pos = POS(h), off = pos & (q->cap - 1);
        uint64_t to_end = q->cap - off;
        uint64_t waste = need > to_end ? to_end : 0;
        uint64_t t = q->ptail;
        for (int fresh = 0;; fresh++) {
            uint64_t used = ((pos - POS(t)) & POS_MASK) + ref_bytes(q);
            uint64_t n = (CNT(h) - CNT(t)) & CNT_MASK;
            /* The count field must not wrap: at most CNT_MASK messages. */
            if (used + need + waste + refl <= q->cap &&
                n < (q->maxsize ? q->maxsize : CNT_MASK))
                break;
            if (fresh) {
                t = UINT64_MAX; /* no room */
                break;
            }
            /* Look at the consumers' side again only now: reading it
               at every put would pull their lines to us each time. */
            t = q->ptail = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
            q->pref_out = __atomic_load_n(&q->ref_out, __ATOMIC_ACQUIRE);
        }
        if (t == UINT64_MAX) {
            uint64_t seen = q->ptail;
            mp__rmutex_unlock(&q->plock);
            if (!await_change(q, &q->tail, seen, &q->space_seq, &q->prod_sleep,
                              space_lag, &space_spin, dl))
                return MP_EFULL;
            waited = 1;
            continue;
        }
        if (waited)
            adapt(&space_lag,
                  q->cap - ((pos - POS(t)) & POS_MASK) >= 2 * (need + waste));
        char *base = ring(q);
        if (waste) {
            struct rec w = {(uint32_t)waste, K_WRAP};
            memcpy(base + off, &w, sizeof w);
            off = 0;
        }
        struct rec r = {(uint32_t)len, kind};
        memcpy(base + off, &r, sizeof r);
        uint64_t nh = PACK(CNT(h) + 1, pos + waste + need);
        if (refl) {
            /* Counted before the commit (so never after a consumer's
               count of it), announced so that a death before the commit
               is undone. */
            announce(&q->pacct, q->ref_in, q->ref_in + refl, nh);
            __atomic_store_n(&q->ref_in, q->ref_in + refl, __ATOMIC_SEQ_CST);
        }
        HOOK(MP__QP_HEADER);
        if (__builtin_expect(mp__queue_fault_hook != NULL, 0)) {
            memcpy(base + off + sizeof r, data, len / 2);
            HOOK(MP__QP_HALF);
            memcpy(base + off + sizeof r + len / 2,
                   (const char *)data + len / 2, len - len / 2);
        } else if (len) {
            memcpy(base + off + sizeof r, data, len);
        }
        __atomic_store_n(&q->head, nh, __ATOMIC_SEQ_CST);
        HOOK(MP__QP_COMMITTED);
        if (refl)
            __atomic_store_n(&q->pacct.pending, 0, __ATOMIC_RELEASE);
        mp__rmutex_unlock(&q->plock);
        HOOK(MP__QP_UNLOCKED);
        mp__wake_sleepers(&q->data_seq, &q->cons_sleep);
        return 0;
    }
}

/* A get leaves the message where it is (code): unlock, and if it skipped
   a wrap marker on the way, tell the producers of the room it made. */
static ssize_t give_up(mp_queue *q, int skipped, int code)
{
    mp__rmutex_unlock(&q->clock);
    if (skipped)
        mp__wake_sleepers(&q->space_seq, &q->prod_sleep);
    return code;
}

/* What a get does with the message it found. */
enum take_mode { TAKE_BUF, TAKE_ALLOC, TAKE_REF };

/* Take the oldest message: into buf (cap bytes), a malloc'd buffer, or an
   arena block (*out). Returns its length or a code; *need gets the
   length also with MP_EMSGSIZE. */
static ssize_t take(mp_queue *q, enum take_mode mode, void *buf, size_t cap,
                    void **out, size_t *need, uint64_t dl)
{
    int waited = 0;
    for (;;) {
        if (qlock(q, 0, dl) != 0)
            return MP_EEMPTY;
        HOOK(MP__QG_LOCKED);
        uint64_t t = q->tail;
        uint64_t h = q->chead;
        if (POS(h) == POS(t))
            h = q->chead = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
        if (POS(h) == POS(t)) {
            mp__rmutex_unlock(&q->clock);
            if (__atomic_load_n(&q->closed, __ATOMIC_ACQUIRE)) {
                /* Closed: gone if still nothing after the close. */
                if (POS(__atomic_load_n(&q->head, __ATOMIC_ACQUIRE)) == POS(t))
                    return MP_EOF;
                continue;
            }
            if (!await_change(q, &q->head, h, &q->data_seq, &q->cons_sleep,
                              data_lag, &data_spin, dl))
                return MP_EEMPTY;
            waited = 1;
            continue;
        }
        if (waited)
            adapt(&data_lag, ((CNT(h) - CNT(t)) & CNT_MASK) >= 2);
        char *base = ring(q);
        uint64_t off = POS(t) & (q->cap - 1);
        struct rec r;
        memcpy(&r, base + off, sizeof r);
        int skipped = r.kind == K_WRAP;
        if (skipped) {
            t = PACK(CNT(t), POS(t) + r.len);
            __atomic_store_n(&q->tail, t, __ATOMIC_SEQ_CST);
            HOOK(MP__QG_SKIPPED);
            off = 0;
            memcpy(&r, base, sizeof r);
        }
        const char *payload = base + off + sizeof r;
        struct qref ref = {0, r.len};
        if (r.kind == K_REF)
            memcpy(&ref, payload, sizeof ref);
        const char *src =
            r.kind == K_REF ? (const char *)mp__arena_ptr(ref.off) : payload;
        size_t len = (size_t)ref.len;
        if (need != NULL)
            *need = len;
        void *block = NULL;
        if (mode == TAKE_BUF) {
            if (len > cap)
                return give_up(q, skipped, MP_EMSGSIZE);
            if (len) /* buf may be NULL for an empty message */
                memcpy(buf, src, len);
        } else if (mode == TAKE_ALLOC) {
            block = malloc(len ? len : 1);
            if (block == NULL)
                return give_up(q, skipped, MP_ENOMEM);
            memcpy(block, src, len);
        } else if (r.kind == K_REF) {
            block = (void *)src; /* handed over as it is */
        } else {
            int err;
            block = mp__arena_alloc_until(len ? len : 1, 16, dl, &err);
            if (block == NULL)
                return give_up(q, skipped,
                               err == MP_ETIMEDOUT ? MP_EEMPTY : MP_ENOMEM);
            memcpy(block, src, len);
        }
        uint64_t nt = PACK(CNT(t) + 1, POS(t) + rec_size(r.len));
        /* Counted after the commit (so never before the producer's
           count), announced so that a death after it is completed. */
        if (r.kind == K_REF)
            announce(&q->cacct, q->ref_out, q->ref_out + ref.len, nt);
        HOOK(MP__QG_COPIED);
        __atomic_store_n(&q->tail, nt, __ATOMIC_SEQ_CST);
        HOOK(MP__QG_COMMITTED);
        if (r.kind == K_REF) {
            __atomic_store_n(&q->ref_out, q->ref_out + ref.len,
                             __ATOMIC_SEQ_CST);
            __atomic_store_n(&q->cacct.pending, 0, __ATOMIC_RELEASE);
        }
        mp__rmutex_unlock(&q->clock);
        HOOK(MP__QG_UNLOCKED);
        if (r.kind == K_REF && mode != TAKE_REF)
            mp_shared_free((void *)src);
        mp__wake_sleepers(&q->space_seq, &q->prod_sleep);
        if (out != NULL)
            *out = block;
        return (ssize_t)len;
    }
}

int mp_queue_put(mp_queue *q, const void *data, size_t len, double timeout)
{
    uint64_t dl;
    if (!ok(q) || (data == NULL && len > 0) || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    /* Before any arithmetic on len: a failed read()'s (size_t)-1 must
       not wrap into a small record. */
    if (len > max_msg(q))
        return MP_EMSGSIZE;
    if (rec_size(len) <= q->cap / 2)
        return append(q, K_DATA, data, len, 0, dl);
    /* Large: its own arena block, one copy, referenced from the ring. */
    int err;
    void *block = mp__arena_alloc_until(len, 64, dl, &err);
    if (block == NULL)
        return err == MP_ETIMEDOUT ? MP_EFULL : MP_ENOMEM;
    memcpy(block, data, len);
    struct qref ref = {mp__arena_off(block), len};
    int r = append(q, K_REF, &ref, sizeof ref, len, dl);
    if (r != 0)
        mp_shared_free(block);
    return r;
}

int mp_queue_put_ref(mp_queue *q, void *block, size_t len, double timeout)
{
    uint64_t dl;
    if (!ok(q) || mp__arena_usable(block) < len ||
        mp__arena_usable(block) == 0 || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    if (len > max_msg(q))
        return MP_EMSGSIZE;
    struct qref ref = {mp__arena_off(block), len};
    return append(q, K_REF, &ref, sizeof ref, len, dl);
}

ssize_t mp_queue_get_ex(mp_queue *q, void *buf, size_t cap, size_t *need,
                        double timeout)
{
    uint64_t dl;
    if (!ok(q) || (buf == NULL && cap > 0) || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    return take(q, TAKE_BUF, buf, cap, NULL, need, dl);
}

ssize_t mp_queue_get(mp_queue *q, void *buf, size_t cap, double timeout)
{
    return mp_queue_get_ex(q, buf, cap, NULL, timeout);
}

ssize_t mp_queue_get_alloc(mp_queue *q, void **out, double timeout)
{
    uint64_t dl;
    if (!ok(q) || out == NULL || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    return take(q, TAKE_ALLOC, NULL, 0, out, NULL, dl);
}

ssize_t mp_queue_get_ref(mp_queue *q, void **block, double timeout)
{
    uint64_t dl;
    if (!ok(q) || block == NULL || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    return take(q, TAKE_REF, NULL, 0, block, NULL, dl);
}

int mp_queue_qsize(const mp_queue *q)
{
    if (!ok(q))
        return MP_EINVAL;
    /* A head unchanged around the read of the tail was the head when the
   tail was read: the count of that instant. Puts in a stream may
   keep moving it; after a few tries, the count is a snapshot that
   straddles them, never above what the queue can hold. */
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST), t;
    for (int i = 0;; i++) {
        t = __atomic_load_n(&q->tail, __ATOMIC_SEQ_CST);
        uint64_t h2 = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST);
        int same = h2 == h;
        h = h2; /* read after the tail: never behind it */
        if (same || i == 8)
            break;
    }
    uint64_t n = (CNT(h) - CNT(t)) & CNT_MASK;
    if (q->maxsize && n > q->maxsize)
        n = q->maxsize;
    return (int)n;
}

int mp_queue_empty(const mp_queue *q)
{
    int n = mp_queue_qsize(q);
    return n < 0 ? n : n == 0;
}

int mp_queue_full(const mp_queue *q)
{
    if (!ok(q))
        return MP_EINVAL;
    uint64_t t = __atomic_load_n(&q->tail, __ATOMIC_ACQUIRE);
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_ACQUIRE);
    uint64_t n = (CNT(h) - CNT(t)) & CNT_MASK;
    uint64_t refs = __atomic_load_n(&q->ref_in, __ATOMIC_ACQUIRE) -
                    __atomic_load_n(&q->ref_out, __ATOMIC_ACQUIRE);
    uint64_t used = ((POS(h) - POS(t)) & POS_MASK) + refs;
    return (q->maxsize && n >= q->maxsize) || used > q->cap ||
           q->cap - used < rec_size(8);
}

int mp_queue_close(mp_queue *q)
{
    if (!ok(q))
        return MP_EINVAL;
    qlock(q, 1, MP__NO_DEADLINE); /* no put is half done */
    __atomic_store_n(&q->closed, 1, __ATOMIC_SEQ_CST);
    mp__rmutex_unlock(&q->plock);
    mp__wake_all(&q->data_seq);
    mp__wake_all(&q->space_seq);
    return 0;
}

/* Messages put but not yet task_done'd. */
static uint64_t unfinished(mp_queue *q, uint32_t done)
{
    uint64_t h = __atomic_load_n(&q->head, __ATOMIC_SEQ_CST);
    return (CNT(h) - done) & CNT_MASK;
}

int mp_queue_task_done(mp_queue *q)
{
    if (!ok(q))
        return MP_EINVAL;
    if (!q->joinable)
        return MP_ENOTSUP;
    uint32_t d = __atomic_load_n(&q->done, __ATOMIC_ACQUIRE);
    do {
        if (unfinished(q, d) == 0)
            return MP_ERANGE;
    } while (!__atomic_compare_exchange_n(&q->done, &d, d + 1, 1,
                                          __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE));
    HOOK(MP__QT_COUNTED);
    if (unfinished(q, d + 1) == 0 &&
        __atomic_exchange_n(&q->join_sleep, 0, __ATOMIC_SEQ_CST))
        mp__futex_wake(&q->done, INT_MAX);
    return 0;
}

int mp_queue_join(mp_queue *q, double timeout)
{
    uint64_t dl;
    if (!ok(q) || mp__deadline(timeout, &dl))
        return MP_EINVAL;
    if (!q->joinable)
        return MP_ENOTSUP;
    for (;;) {
        uint32_t d = __atomic_load_n(&q->done, __ATOMIC_SEQ_CST);
        if (unfinished(q, d) == 0)
            return 0;
        if (dl == 0 || (dl != MP__NO_DEADLINE && mp__now_ns() >= dl))
            return MP_ETIMEDOUT;
        __atomic_store_n(&q->join_sleep, 1, __ATOMIC_SEQ_CST);
        /* Naps: a task_done caller killed between its count and its
           wake-up leaves the queue finished for us to find. */
        if (unfinished(q, __atomic_load_n(&q->done, __ATOMIC_SEQ_CST)) != 0)
            mp__futex_wait(&q->done, d, mp__nap_until(dl));
    }
}

void mp_queue_free(mp_queue *q)
{
    if (!ok(q))
        return;
    /* Large messages still queued own arena blocks: free them. */
    uint64_t t = q->tail, h = q->head;
    char *base = ring(q);
    while (POS(t) != POS(h)) {
        uint64_t off = POS(t) & (q->cap - 1);
        struct rec r;
        memcpy(&r, base + off, sizeof r);
        if (r.kind == K_WRAP) {
            t = PACK(CNT(t), POS(t) + r.len);
            continue;
        }
        if (r.kind == K_REF) {
            struct qref ref;
            memcpy(&ref, base + off + sizeof r, sizeof ref);
            mp_shared_free(mp__arena_ptr(ref.off));
        }
        t = PACK(CNT(t) + 1, POS(t) + rec_size(r.len));
    }
    __atomic_store_n(&q->magic, Q_DEAD, __ATOMIC_RELEASE);
    mp_shared_free(q);
}
