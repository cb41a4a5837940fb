/* fnref.c - function pointers named as (loaded object, offset), so that a
   spawned child, with its own address layout, finds the same function. */
#include "core.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

/* find - what an iteration over the loaded objects is looking for. */
struct find {
    uintptr_t addr;   /* make: the address to place */
    const char *name; /* resolve: the object to find */
    int first;        /* the next object visited is the main program */
    int found;
    uintptr_t base;   /* the object's load bias */
    const char *path; /* the object's name as the loader reports it */
};

static int exec_segment_has(const struct dl_phdr_info *info, uintptr_t a)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (a >= lo && a < lo + ph->p_memsz)
            return 1;
    }
    return 0;
}

static int visit_make(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find *f = data;
    int first = f->first;
    f->first = 0;
    if (!exec_segment_has(info, f->addr))
        return 0;
    f->found = 1;
    f->base = info->dlpi_addr;
    /* The main program is always first and named "" by the loader. */
    f->path = first ? "" : info->dlpi_name;
    return 1;
}

static int visit_resolve(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct find *f = data;
    int first = f->first;
    f->first = 0;
    const char *name = first ? "" : info->dlpi_name;
    if (strcmp(name, f->name) != 0)
        return 0;
    f->found = 1;
    f->base = info->dlpi_addr;
    return 1;
}

int mp__fnref_make(void *fn, mp__fnref *ref)
{
    struct find f = {.addr = (uintptr_t)fn, .first = 1};
    if (fn == NULL || dl_iterate_phdr(visit_make, &f) == 0 || !f.found)
        return MP_EINVAL;
    size_t n = strlen(f.path);
    if (n >= sizeof ref->object)
        return MP_ENAMETOOLONG;
    memcpy(ref->object, f.path, n + 1);
    ref->offset = (uint64_t)((uintptr_t)fn - f.base);
    return 0;
}

int mp__fnref_resolve(const mp__fnref *ref, void **fn)
{
    struct find f = {.name = ref->object, .first = 1};
    dl_iterate_phdr(visit_resolve, &f);
    if (!f.found && ref->object[0] != '\0') {
        /* Loaded with dlopen in the parent after start-up: load it here.
           The handle is kept for the life of the process. */
        if (dlopen(ref->object, RTLD_NOW | RTLD_GLOBAL) != NULL) {
            f.first = 1;
            dl_iterate_phdr(visit_resolve, &f);
        }
    }
    if (!f.found)
        return MP_ENOENT;
    *fn = (void *)(f.base + (uintptr_t)ref->offset);
    return 0;
}
