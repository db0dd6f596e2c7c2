#ifndef WSP_BUF_H
#define WSP_BUF_H

/* A growable byte buffer for building responses off the hot path (admin API, metrics). An
 * append that fails sets a sticky flag, so a caller checks once at the end. */

#include <stddef.h>
#include <stdint.h>

typedef struct wsp_buf_s {
    char *data;
    size_t len, cap;
    int oom; /* set once an append failed; later appends are ignored */
} wsp_buf_t;

/* Appends len bytes; on OOM sets b->oom and returns -ENOMEM. Owner thread. */
int wsp_buf_append(wsp_buf_t *b, const void *p, size_t len);

/* Appends printf-formatted text; -ENOMEM as above. Owner thread. */
int wsp_buf_printf(wsp_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Frees the bytes and resets b to empty. Owner thread. */
void wsp_buf_free(wsp_buf_t *b);

#endif
