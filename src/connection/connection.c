/* connection.c - Pipe and Connection (being written). */
#include "multiproc.h"
