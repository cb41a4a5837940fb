/* cpu.c - mp_cpu_count: affinity, cgroup CPU quotas and the MP_CPU_COUNT
   override. */
#include "core.h"

#include "../platform/platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mp__cpu_quota_from(const char *text)
{
    char q[32];
    unsigned long long period = 0;
    if (sscanf(text, "%31s %llu", q, &period) != 2 || period == 0)
        return 0;
    if (strcmp(q, "max") == 0)
        return 0;
    char *end;
    unsigned long long quota = strtoull(q, &end, 10);
    if (*end != '\0' || quota == 0)
        return 0;
    unsigned long long n = (quota + period - 1) / period;
    return n > 1000000 ? 1000000 : (int)n;
}

/* The cgroup v2 path of this process ("0::/path"), or "" if none. */
static void cgroup2_path(char *out, size_t len)
{
    char buf[4096];
    out[0] = '\0';
    if (mp__read_file("/proc/self/cgroup", buf, sizeof buf) < 0)
        return;
    char *save = NULL; /* strtok_r: mp_cpu_count may run in many threads */
    for (char *line = strtok_r(buf, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(out, len, "%s", line + 3);
            return;
        }
    }
}

/* The tightest cpu.max quota from this cgroup up to the root; 0: none. */
static int cgroup2_quota(void)
{
    static const char *roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    char rel[2048];
    cgroup2_path(rel, sizeof rel);
    if (rel[0] != '/')
        return 0;
    int best = 0;
    for (size_t r = 0; r < sizeof roots / sizeof roots[0]; r++) {
        char path[4200], text[128];
        size_t n = strlen(rel);
        for (;;) {
            snprintf(path, sizeof path, "%s%.*s/cpu.max", roots[r], (int)n,
                     rel);
            if (mp__read_file(path, text, sizeof text) > 0) {
                int q = mp__cpu_quota_from(text);
                if (q > 0 && (best == 0 || q < best))
                    best = q;
            }
            if (n <= 1)
                break;
            while (n > 0 && rel[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* drop the slash: the parent directory */
        }
    }
    return best;
}

/* cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us of the cpu controller
   as mounted for this process (only the mount root is looked at). */
static int cgroup1_quota(void)
{
    char q[64], p[64];
    if (mp__read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", q, sizeof q) <=
            0 ||
        mp__read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us", p, sizeof p) <= 0)
        return 0;
    long long quota = atoll(q), period = atoll(p);
    if (quota <= 0 || period <= 0)
        return 0;
    return (int)((quota + period - 1) / period);
}

int mp_cpu_count(void)
{
    const char *env = getenv("MP_CPU_COUNT");
    if (env != NULL && *env != '\0') {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0 && v <= 1000000)
            return (int)v;
    }
    int n = mp__affinity_cpus();
    if (n < 1)
        n = 1;
    int q = cgroup2_quota();
    if (q == 0)
        q = cgroup1_quota();
    if (q > 0 && q < n)
        n = q;
    return n;
}
