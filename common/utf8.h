#ifndef WSP_UTF8_H
#define WSP_UTF8_H

/* UTF-8 validation, for published messages (Redis, the admin API). */

#include <stddef.h>
#include <stdint.h>

/* 1 when p[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), else 0. Pure; any thread. */
int wsp_utf8_valid(const uint8_t *p, size_t len);

#endif
