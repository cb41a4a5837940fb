/* deadline.c - timeouts in seconds turned into absolute monotonic
   deadlines. */
#include "core.h"

#include "../platform/platform.h"

#include <math.h>

int mp__deadline(double timeout, uint64_t *dl)
{
    if (isnan(timeout))
        return MP_EINVAL;
    if (timeout < 0 || isinf(timeout)) {
        *dl = MP__NO_DEADLINE;
        return 0;
    }
    if (timeout == 0) {
        *dl = 0;
        return 0;
    }
    /* Beyond ~292 years the sum would overflow: that is forever. */
    if (timeout > 9.0e9) {
        *dl = MP__NO_DEADLINE;
        return 0;
    }
    *dl = mp__now_ns() + (uint64_t)(timeout * 1e9);
    return 0;
}
