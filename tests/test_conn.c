/* test_conn.c - Pipe, Connection and mp_wait (being written). */
#include "harness.h"

Suite *mp_test_suite(void)
{
    return suite_create("conn");
}
