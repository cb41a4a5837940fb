/* error.c - messages and names of the error codes, generated from
   MP_ERROR_LIST. */
#include "multiproc.h"

const char *mp_strerror(int err)
{
    if (err >= 0)
        return "success";
    switch (err) {
#define MP__ERROR_TEXT(name, value, text)                                      \
    case value:                                                                \
        return text;
        MP_ERROR_LIST(MP__ERROR_TEXT)
#undef MP__ERROR_TEXT
    default:
        return "unknown error";
    }
}

const char *mp_err_name(int err)
{
    if (err >= 0)
        return "MP_OK";
    switch (err) {
#define MP__ERROR_NAME(name, value, text)                                      \
    case value:                                                                \
        return #name;
        MP_ERROR_LIST(MP__ERROR_NAME)
#undef MP__ERROR_NAME
    default:
        return "MP_E?";
    }
}
