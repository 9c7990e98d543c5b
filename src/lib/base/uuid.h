/* Random (version 4) UUIDs, lowercase, and shape checks for names. */
#ifndef CAPSEM_UUID_H
#define CAPSEM_UUID_H

#include <stdbool.h>

#define UUID_STR_LEN 37 /* 36 chars + NUL */

int uuid_v4(char out[UUID_STR_LEN]);
/* True for any 8-4-4-4-12 hex string (any version, any case). */
bool uuid_shaped(const char *s);

#endif
