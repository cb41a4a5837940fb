/* version.c - mp_version: the library's version, from the header's
   MP_VERSION_* (the one place it is written). */
#include "multiproc.h"

#define MP__STR_(x) #x
#define MP__STR(x)  MP__STR_(x)

MP_API const char *mp_version(void)
{
    return MP__STR(MP_VERSION_MAJOR) "." MP__STR(MP_VERSION_MINOR) "." MP__STR(
        MP_VERSION_PATCH);
}
