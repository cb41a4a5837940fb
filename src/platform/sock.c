/* sock.c - stream sockets and pipes for connections (being written). */
#include "platform.h"
