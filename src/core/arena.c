/* arena.c - the family arena: one memfd mapped at the same address in
   every process of the family, and the crash-safe allocator inside it. */
#include "core.h"

#include "../platform/platform.h"

#include <stddef.h>
#include <string.h>

/* The heap is a chain of blocks from heap_start to top. A block is a
   16-byte header and a payload; free blocks sit in size-class lists.

   Crash safety: the allocator lock is a robust mutex. The truth is the
   physical chain of headers alone; the free lists and the prev16 fields
   are derived from it. Every step that changes the chain is one aligned
   8-byte store that leaves it walkable (a split writes the tail's header
   before shrinking the head; a merge grows the surviving header in one
   store). When a process dies holding the lock, the next one walks the
   chain and rebuilds the lists: at worst the block the dead process was
   allocating stays allocated and is lost.

   Waiting: an allocation waits for the lock at most until its caller's
   deadline (a stopped holder, SIGSTOP or a debugger, must not hold up a
   call with a timeout), and a free never waits: when the lock is taken it
   pushes the block on a lock-free list of deferred frees (marking it
   BLK_DEFERRED, so that a double free is caught), which the next holder
   of the lock frees. A process killed while it frees that list leaks the
   blocks it had not freed yet. */

#define ARENA_MAGIC  0x616e657261706dULL /* "mparena" */
#define BLK_USED     1u
#define BLK_DEFERRED 2u /* on the deferred-free list (with BLK_USED) */
#define BLK_MIN      32u
#define NBINS        280
#define BINMAP_WORDS ((NBINS + 63) / 64)
#define SMALL_LIMIT  1024u
/* RELEASE_MIN - what a free run keeps resident; its pages beyond go back
   to the system. Faulting shared pages in anew is dear (docs/arena.md). */
#define RELEASE_MIN  ((uint64_t)256 << 20)
#define SEARCH_LIMIT 32

/* blk - the header of a block. */
struct blk {
    uint64_t sf;     /* size in bytes (multiple of 16) | BLK_USED */
    uint32_t prev16; /* size of the previous block / 16; 0: first block */
    uint32_t check;  /* check_of(offset): tells real headers from garbage */
};

/* fblk - a free block: the header, then its list links (offsets). */
struct fblk {
    struct blk h;
    uint64_t next;
    uint64_t prev;
};

/* arena_hdr - the first page of the arena. */
struct arena_hdr {
    uint64_t magic;
    uint64_t size;                 /* bytes mapped */
    uint64_t heap_start;           /* offset of the first block */
    mp__rmutex lock;               /* guards all fields below */
    uint64_t top;                  /* end of the last block */
    uint64_t last16;               /* size of the last block / 16 */
    uint64_t hwm;                  /* highest top ever: untouched above */
    uint64_t bins[NBINS];          /* free list heads; 0: empty */
    uint64_t binmap[BINMAP_WORDS]; /* bit b: bins[b] is not empty */
    uint64_t recoveries;           /* repairs after a dead holder */
    uint64_t bad_frees;            /* rejected mp_shared_free calls */
    uint64_t deferred;             /* deferred frees: first block's offset,
                                      linked through their payloads; 0:
                                      none. Pushed without the lock. */
};

void (*mp__arena_fault_hook)(int step);

#define HOOK(step) MP__FAULT_HOOK(mp__arena_fault_hook, step)

static inline struct arena_hdr *H(void)
{
    return (struct arena_hdr *)mp__g.arena;
}

static inline struct blk *B(uint64_t off)
{
    return (struct blk *)mp__arena_ptr(off);
}

static inline struct fblk *F(uint64_t off)
{
    return (struct fblk *)mp__arena_ptr(off);
}

static inline uint32_t check_of(uint64_t off)
{
    return (uint32_t)((off >> 4) * 2654435761u) ^ 0x5ca1ab1eu;
}

static inline uint64_t bsize(const struct blk *b)
{
    return b->sf & ~(uint64_t)15;
}

static unsigned bin_of(uint64_t s)
{
    if (s < SMALL_LIMIT)
        return (unsigned)(s / 16);
    unsigned lg = 63u - (unsigned)__builtin_clzll(s);
    return 64u + (lg - 10u) * 4u + (unsigned)((s >> (lg - 2u)) & 3u);
}

static void bin_push(struct arena_hdr *a, uint64_t off)
{
    unsigned b = bin_of(bsize(B(off)));
    struct fblk *f = F(off);
    f->prev = 0;
    f->next = a->bins[b];
    if (f->next != 0)
        F(f->next)->prev = off;
    a->bins[b] = off;
    a->binmap[b / 64] |= (uint64_t)1 << (b % 64);
}

static void bin_unlink(struct arena_hdr *a, uint64_t off)
{
    unsigned b = bin_of(bsize(B(off)));
    struct fblk *f = F(off);
    if (f->prev != 0)
        F(f->prev)->next = f->next;
    else
        a->bins[b] = f->next;
    if (f->next != 0)
        F(f->next)->prev = f->prev;
    if (a->bins[b] == 0)
        a->binmap[b / 64] &= ~((uint64_t)1 << (b % 64));
}

/* Rebuild everything derived from the chain of headers. */
static void recover(struct arena_hdr *a)
{
    memset(a->bins, 0, sizeof a->bins);
    memset(a->binmap, 0, sizeof a->binmap);
    uint64_t off = a->heap_start, prev = 0, prev_off = 0;
    int prev_free = 0;
    while (off < a->top) {
        struct blk *b = B(off);
        uint64_t s = bsize(b);
        if (b->check != check_of(off) || s < BLK_MIN || off + s > a->top) {
            /* Cannot happen with the store order above; if it does, the
               rest of the heap is cut off rather than trusted. */
            a->top = off;
            break;
        }
        int is_free = !(b->sf & BLK_USED);
        if (is_free && prev_free) {
            /* Two neighbours both free: a free died before merging. */
            B(prev_off)->sf = prev + s;
            b->check = 0;
            prev += s;
            off += s;
            continue;
        }
        if (prev_free)
            bin_push(a, prev_off);
        b->prev16 = (uint32_t)(prev / 16);
        prev = s;
        prev_off = off;
        prev_free = is_free;
        off += s;
    }
    if (prev_free) {
        /* A free block at the end goes back to the top. */
        B(prev_off)->check = 0;
        a->top = prev_off;
        prev =
            prev_off == a->heap_start ? 0 : (uint64_t)B(prev_off)->prev16 * 16;
    }
    a->last16 = prev / 16;
    a->recoveries++;
}

static void free_locked(struct arena_hdr *a, uint64_t off);

/* Free the blocks whose frees were deferred; with the lock held. */
static void drain_deferred(struct arena_hdr *a)
{
    if (__atomic_load_n(&a->deferred, __ATOMIC_ACQUIRE) == 0)
        return;
    uint64_t off = __atomic_exchange_n(&a->deferred, 0, __ATOMIC_ACQ_REL);
    while (off != 0) {
        uint64_t next;
        memcpy(&next, mp__arena_ptr(off + 16), sizeof next);
        free_locked(a, off);
        off = next;
    }
}

/* Take the allocator lock, waiting at most until dl (try: not at all;
   else with the lock grace of core.h); repair after a dead holder, then
   free what others deferred. Returns 0, MP_ETIMEDOUT, or the lock's
   error. */
static int lock_until(struct arena_hdr *a, uint64_t dl, int try)
{
    int r = mp__rmutex_lock(&a->lock, 0);
    if (r == MP_ETIMEDOUT && !try)
        r = mp__rmutex_lock(&a->lock, mp__lock_deadline(dl));
    if (r == MP_EOWNERDEAD) {
        recover(a);
        r = 0;
    }
    if (r == 0)
        drain_deferred(a);
    return r;
}

static int lock(struct arena_hdr *a)
{
    return lock_until(a, MP__NO_DEADLINE, 0);
}

static void unlock(struct arena_hdr *a)
{
    mp__rmutex_unlock(&a->lock);
}

static void release_range(uint64_t from, uint64_t to)
{
    size_t ps = mp__page_size();
    uint64_t lo = (from + ps - 1) & ~(uint64_t)(ps - 1);
    uint64_t hi = to & ~(uint64_t)(ps - 1);
    if (hi > lo)
        (void)mp__release_pages(mp__arena_ptr(lo), (size_t)(hi - lo));
}

/* A free block of at least need bytes whose payload can be aligned, or 0.
   Exact small bins first, then a bounded walk of the size's bin, then
   the first block of any larger bin (all of them fit). */
static uint64_t find_free(struct arena_hdr *a, uint64_t need)
{
    unsigned b = bin_of(need);
    if (need >= SMALL_LIMIT || a->bins[b] == 0) {
        int n = 0;
        for (uint64_t off = a->bins[b]; off != 0 && n < SEARCH_LIMIT;
             off = F(off)->next, n++)
            if (bsize(B(off)) >= need)
                return off;
        b++;
    }
    for (unsigned w = b / 64; w < BINMAP_WORDS; w++) {
        uint64_t bits = a->binmap[w];
        if (w == b / 64)
            bits &= ~(uint64_t)0 << (b % 64);
        if (bits != 0) {
            unsigned k = w * 64u + (unsigned)__builtin_ctzll(bits);
            return a->bins[k];
        }
    }
    return 0;
}

/* Turn free block off (already unlinked) into a used block of exactly
   need bytes, giving the rest back as a free block. */
static void carve(struct arena_hdr *a, uint64_t off, uint64_t need)
{
    uint64_t s = bsize(B(off));
    if (s - need >= BLK_MIN) {
        uint64_t t = off + need;
        struct blk *tb = B(t);
        tb->prev16 = (uint32_t)(need / 16);
        tb->check = check_of(t);
        tb->sf = s - need; /* the tail exists before the head shrinks */
        HOOK(2);
        B(off)->sf = need | BLK_USED;
        uint64_t n = t + (s - need);
        if (n < a->top)
            B(n)->prev16 = (uint32_t)((s - need) / 16);
        else
            a->last16 = (s - need) / 16;
        bin_push(a, t);
    } else {
        B(off)->sf = s | BLK_USED;
    }
}

/* Split the free block at off so that a block starting at noff begins
   there: the front part stays free. Returns noff. */
static uint64_t split_front(struct arena_hdr *a, uint64_t off, uint64_t noff)
{
    uint64_t s = bsize(B(off)), gap = noff - off;
    struct blk *nb = B(noff);
    nb->prev16 = (uint32_t)(gap / 16);
    nb->check = check_of(noff);
    nb->sf = s - gap;
    HOOK(3);
    B(off)->sf = gap;
    uint64_t n = off + s;
    if (n < a->top)
        B(n)->prev16 = (uint32_t)((s - gap) / 16);
    else
        a->last16 = (s - gap) / 16;
    bin_push(a, off);
    return noff;
}

/* The offset of a block of size need (header included) whose payload is
   aligned to align, or 0 when the arena is exhausted. Sets *dirty_end to
   the end of the part of the payload that may hold old data. */
static uint64_t alloc_locked(struct arena_hdr *a, uint64_t need, uint64_t align,
                             uint64_t *dirty_end)
{
    uint64_t extra = align > 16 ? align + BLK_MIN : 0;
    uint64_t off = find_free(a, need + extra);
    if (off != 0) {
        bin_unlink(a, off);
        HOOK(1);
        uint64_t pay = (off + 16 + align - 1) & ~(align - 1);
        if (pay != off + 16) {
            if (pay - 16 - off < BLK_MIN)
                pay += align;
            off = split_front(a, off, pay - 16);
        }
        carve(a, off, need);
        *dirty_end = off + need;
        return off;
    }
    uint64_t start = a->top;
    uint64_t pay = (start + 16 + align - 1) & ~(align - 1);
    if (pay != start + 16 && pay - 16 - start < BLK_MIN)
        pay += align;
    uint64_t boff = pay - 16;
    if (boff + need > a->size || boff + need < boff)
        return 0;
    /* Memory above hwm is taken to be zero and not cleared for a caller.
       Raise it before writing any header up there: a holder that dies
       in between must not leave stray bytes in memory deemed clean. */
    uint64_t old_hwm = a->hwm;
    if (a->hwm < boff + need)
        a->hwm = boff + need;
    if (boff != start) {
        /* An alignment gap: a free block of its own before the new one. */
        struct blk *g = B(start);
        g->prev16 = (uint32_t)a->last16;
        g->check = check_of(start);
        g->sf = boff - start;
        a->top = boff;
        a->last16 = (boff - start) / 16;
        bin_push(a, start);
    }
    struct blk *b = B(boff);
    b->prev16 = (uint32_t)a->last16;
    b->check = check_of(boff);
    b->sf = need | BLK_USED;
    HOOK(4);
    a->top = boff + need; /* the block becomes part of the chain */
    a->last16 = need / 16;
    *dirty_end = old_hwm < boff ? boff : (old_hwm < a->top ? old_hwm : a->top);
    return boff;
}

/* alloc_impl - an allocation waiting for the lock until dl; its memory
   zeroed when zero (else as the last user left it). */
static void *alloc_impl(size_t size, size_t align, uint64_t dl, int *err,
                        int zero)
{
    struct arena_hdr *a = H();
    *err = MP_ENOMEM;
    if (a == NULL || size == 0 || align < 16 || (align & (align - 1)) != 0)
        return NULL;
    if (size > a->size)
        return NULL;
    uint64_t need = ((uint64_t)size + 16 + 15) & ~(uint64_t)15;
    if (need < BLK_MIN)
        need = BLK_MIN;
    int r = lock_until(a, dl, 0);
    if (r != 0) {
        *err = r == MP_ETIMEDOUT ? MP_ETIMEDOUT : MP_ENOMEM;
        return NULL;
    }
    uint64_t dirty_end = 0;
    uint64_t off = alloc_locked(a, need, align, &dirty_end);
    unlock(a);
    if (off == 0)
        return NULL;
    char *p = (char *)mp__arena_ptr(off + 16);
    if (zero && dirty_end > off + 16)
        memset(p, 0, (size_t)(dirty_end - off - 16));
    return p;
}

void *mp__arena_alloc_until(size_t size, size_t align, uint64_t dl, int *err)
{
    return alloc_impl(size, align, dl, err, 1);
}

void *mp__arena_dup(const void *src, size_t size, size_t align)
{
    void *p = mp__arena_alloc_dirty(size, align); /* overwritten whole */
    if (p != NULL)
        memcpy(p, src, size);
    return p;
}

void *mp__arena_alloc_dirty(size_t size, size_t align)
{
    int err;
    return alloc_impl(size, align, MP__NO_DEADLINE, &err, 0);
}

void *mp__arena_alloc(size_t size, size_t align)
{
    int err;
    return mp__arena_alloc_until(size, align, MP__NO_DEADLINE, &err);
}

void *mp_shared_alloc(size_t size)
{
    return mp__arena_alloc(size, 16);
}

int mp_shared_contains(const void *ptr)
{
    struct arena_hdr *a = H();
    if (a == NULL || ptr == NULL)
        return 0;
    uintptr_t p = (uintptr_t)ptr, base = (uintptr_t)a;
    return p >= base && p < base + a->size;
}

size_t mp__arena_usable(const void *ptr)
{
    struct arena_hdr *a = H();
    if (a == NULL || !mp_shared_contains(ptr))
        return 0;
    uint64_t off = mp__arena_off(ptr) - 16;
    if ((off & 15) != 0 || off < a->heap_start ||
        off + BLK_MIN > __atomic_load_n(&a->top, __ATOMIC_ACQUIRE))
        return 0;
    const struct blk *b = B(off);
    if (b->check != check_of(off) || !(b->sf & BLK_USED))
        return 0;
    return (size_t)(bsize(b) - 16);
}

/* Push the block at off on the deferred-free list: the lock is taken by
   someone who may not let go soon. */
static void defer_free(struct arena_hdr *a, uint64_t off)
{
    struct blk *b = B(off);
    uint64_t sf = __atomic_load_n(&b->sf, __ATOMIC_ACQUIRE);
    /* Claim it: a block freed twice is pushed once (a second push would
       make the list a cycle); the second free counts as a bad one. */
    if (off + BLK_MIN > __atomic_load_n(&a->top, __ATOMIC_ACQUIRE) ||
        b->check != check_of(off) ||
        (sf & (BLK_USED | BLK_DEFERRED)) != BLK_USED ||
        !__atomic_compare_exchange_n(&b->sf, &sf, sf | BLK_DEFERRED, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        __atomic_add_fetch(&a->bad_frees, 1, __ATOMIC_RELAXED);
        return;
    }
    uint64_t head = __atomic_load_n(&a->deferred, __ATOMIC_ACQUIRE);
    do
        memcpy(mp__arena_ptr(off + 16), &head, sizeof head);
    while (!__atomic_compare_exchange_n(&a->deferred, &head, off, 1,
                                        __ATOMIC_RELEASE, __ATOMIC_ACQUIRE));
}

void mp_shared_free(void *ptr)
{
    struct arena_hdr *a = H();
    if (a == NULL || ptr == NULL || !mp_shared_contains(ptr))
        return;
    uint64_t off = mp__arena_off(ptr) - 16;
    if ((off & 15) != 0 || off < a->heap_start)
        return;
    if (lock_until(a, 0, 1) != 0) {
        defer_free(a, off);
        return;
    }
    free_locked(a, off);
    unlock(a);
}

/* Free the block at off (validated here); with the lock held. */
static void free_locked(struct arena_hdr *a, uint64_t off)
{
    struct blk *b = B(off);
    if (off + BLK_MIN > a->top || b->check != check_of(off) ||
        !(b->sf & BLK_USED) || off + bsize(b) > a->top) {
        a->bad_frees++;
        return;
    }
    uint64_t s = bsize(b);
    uint64_t n = off + s;
    uint64_t merged_next = 0;
    if (n < a->top && !(B(n)->sf & BLK_USED)) {
        bin_unlink(a, n);
        merged_next = n;
        s += bsize(B(n));
    }
    HOOK(5);
    b->sf = s; /* free, and the next block absorbed, in one store */
    if (merged_next != 0)
        B(merged_next)->check = 0;
    HOOK(6);
    if (b->prev16 != 0) {
        uint64_t p = off - (uint64_t)b->prev16 * 16;
        if (!(B(p)->sf & BLK_USED)) {
            uint64_t psz = bsize(B(p));
            bin_unlink(a, p);
            B(p)->sf = psz + s; /* the freed block joins its free neighbour */
            b->check = 0;
            s += psz;
            off = p;
            b = B(off);
        }
    }
    HOOK(7);
    if (off + s == a->top) {
        uint64_t old_top = a->top;
        a->last16 = b->prev16;
        a->top = off; /* the block leaves the chain */
        b->check = 0;
        /* Pages beyond the run's first RELEASE_MIN go back to the
           system; those stay resident, so that a program that frees and
           allocates its big buffers call after call does not fault them
           in anew each time. */
        if (old_top - off > RELEASE_MIN)
            release_range(off + RELEASE_MIN, old_top);
    } else {
        B(off + s)->prev16 = (uint32_t)(s / 16);
        bin_push(a, off);
        if (s > RELEASE_MIN)
            release_range(off + RELEASE_MIN, off + s);
    }
}

int mp__arena_check(const char **why)
{
    struct arena_hdr *a = H();
    *why = NULL;
    if (a == NULL) {
        *why = "no arena";
        return MP_ENOTRECOVERABLE;
    }
    if (lock(a) != 0) {
        *why = "lock";
        return MP_ENOTRECOVERABLE;
    }
    const char *bad = NULL;
    uint64_t nfree = 0, off = a->heap_start, prev = 0;
    int prev_free = 0;
    while (off < a->top && bad == NULL) {
        struct blk *b = B(off);
        uint64_t s = bsize(b);
        if (b->check != check_of(off))
            bad = "bad check in chain";
        else if (s < BLK_MIN || off + s > a->top)
            bad = "bad block size";
        else if (b->prev16 != prev / 16)
            bad = "bad prev16";
        else if (!(b->sf & BLK_USED) && prev_free)
            bad = "two free neighbours";
        if (!(b->sf & BLK_USED))
            nfree++;
        prev_free = !(b->sf & BLK_USED);
        prev = s;
        off += s;
    }
    if (bad == NULL && off != a->top)
        bad = "chain overruns top";
    if (bad == NULL && prev_free)
        bad = "free block at the top";
    if (bad == NULL && a->last16 != prev / 16)
        bad = "bad last16";
    uint64_t listed = 0;
    for (unsigned k = 0; k < NBINS && bad == NULL; k++) {
        int has = (a->binmap[k / 64] >> (k % 64)) & 1;
        if (has != (a->bins[k] != 0))
            bad = "binmap disagrees";
        uint64_t prevl = 0;
        for (uint64_t f = a->bins[k]; f != 0 && bad == NULL; f = F(f)->next) {
            if (f < a->heap_start || f >= a->top ||
                B(f)->check != check_of(f) || (B(f)->sf & BLK_USED))
                bad = "bad free list entry";
            else if (bin_of(bsize(B(f))) != k)
                bad = "block in the wrong bin";
            else if (F(f)->prev != prevl)
                bad = "bad back link";
            prevl = f;
            if (++listed > nfree)
                bad = "free list longer than free blocks";
        }
    }
    if (bad == NULL && listed != nfree)
        bad = "free block missing from lists";
    unlock(a);
    *why = bad;
    return bad == NULL ? 0 : MP_ENOTRECOVERABLE;
}

void mp__arena_stats(struct mp__arena_stats *st)
{
    memset(st, 0, sizeof *st);
    struct arena_hdr *a = H();
    if (a == NULL || lock(a) != 0)
        return;
    for (uint64_t off = a->heap_start; off < a->top; off += bsize(B(off))) {
        if (bsize(B(off)) == 0)
            break;
        if (B(off)->sf & BLK_USED) {
            st->used_bytes += bsize(B(off));
            st->blocks++;
        } else {
            st->free_bytes += bsize(B(off));
        }
    }
    st->top = a->top;
    st->recoveries = a->recoveries;
    st->bad_frees = a->bad_frees;
    unlock(a);
}

/* Places to try for the arena: between ASan's high shadow (which ends at
   16 TiB) and where PIE programs and mmap land (0x55..., 0x7f...), so a
   freshly exec'd child almost surely finds the same range free. */
static const uintptr_t arena_hints[] = {
    0x2a0000000000u, 0x320000000000u, 0x3a0000000000u,
    0x420000000000u, 0x1a0000000000u, 0x4a0000000000u,
};

int mp__arena_create(size_t size)
{
    size_t ps = mp__page_size();
    size = (size + ps - 1) & ~(ps - 1);
    if (size < 16 * ps)
        return MP_EINVAL;
    int fd = mp__memfd_new(MP__ARENA_NAME, size);
    if (fd < 0)
        return fd;
    void *base = NULL;
    int r = MP_EEXIST;
    for (size_t i = 0; i < sizeof arena_hints / sizeof arena_hints[0]; i++) {
        r = mp__map_fd(fd, size, arena_hints[i], &base);
        if (r == 0 || r != MP_EEXIST)
            break;
    }
    if (r != 0) {
        mp__close(fd);
        return r;
    }
    struct arena_hdr *a = base;
    a->magic = ARENA_MAGIC;
    a->size = size;
    a->heap_start = (sizeof(struct arena_hdr) + ps - 1) & ~(uint64_t)(ps - 1);
    mp__rmutex_init(&a->lock);
    a->top = a->heap_start;
    a->hwm = a->heap_start;
    a->last16 = 0;
    mp__g.arena_fd = fd;
    mp__g.arena = base;
    mp__g.arena_size = size;
    return 0;
}

int mp__arena_formatted(int fd, size_t size)
{
    uint64_t h[2]; /* magic, size: the header's first two fields */
    return mp__pread(fd, h, sizeof h, 0) == (ssize_t)sizeof h &&
           h[0] == ARENA_MAGIC && h[1] == size;
}

int mp__arena_attach(int fd, uintptr_t base, size_t size)
{
    void *p = NULL;
    int r = mp__map_fd(fd, size, base, &p);
    if (r != 0)
        return r;
    struct arena_hdr *a = p;
    if (a->magic != ARENA_MAGIC || a->size != size) {
        mp__unmap(p, size);
        return MP_EINVAL;
    }
    mp__g.arena_fd = fd;
    mp__g.arena = p;
    mp__g.arena_size = size;
    return 0;
}
