/* mem.c - anonymous shared memory files and their mappings. */
#include "platform.h"

#include <errno.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

int mp__memfd_new(const char *name, size_t size)
{
    /* Over the file-size limit (ulimit -f), ftruncate would not fail: the
       kernel would kill the process with SIGXFSZ. */
    struct rlimit fl;
    if (getrlimit(RLIMIT_FSIZE, &fl) == 0 && fl.rlim_cur != RLIM_INFINITY &&
        (uint64_t)size > (uint64_t)fl.rlim_cur)
        return -EFBIG;
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0) {
        int e = errno;
        mp__close(fd);
        return -e;
    }
    return fd;
}

int mp__map_fd(int fd, size_t size, uintptr_t addr, void **out)
{
    int flags = MAP_SHARED;
    if (addr != 0)
        flags |= MAP_FIXED_NOREPLACE;
    void *p = mmap((void *)addr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    if (addr != 0 && (uintptr_t)p != addr) {
        /* A kernel older than 4.17 treats the flag as a hint. */
        munmap(p, size);
        return -EEXIST;
    }
    *out = p;
    return 0;
}

int mp__unmap(void *addr, size_t size)
{
    return munmap(addr, size) == 0 ? 0 : -errno;
}

int mp__release_pages(void *addr, size_t len)
{
    /* MADV_REMOVE frees the backing pages of a shared mapping (a hole in
       the memfd); later reads see zeros. */
    return madvise(addr, len, MADV_REMOVE) == 0 ? 0 : -errno;
}

size_t mp__page_size(void)
{
    static size_t ps;
    if (ps == 0)
        ps = (size_t)getauxval(AT_PAGESZ); /* no sysconf: see fd.c */
    return ps;
}
