#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int buf_reserve(wsp_buf_t *b, size_t extra)
{
    if (b->oom)
        return -ENOMEM;
    if (b->len + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->oom = 1;
        return -ENOMEM;
    }
    b->data = d;
    b->cap = cap;
    return 0;
}

int wsp_buf_append(wsp_buf_t *b, const void *p, size_t len)
{
    int rv = buf_reserve(b, len);
    if (rv < 0)
        return rv;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    b->data[b->len] = '\0'; /* always a C string too, for logs and tests */
    return 0;
}

int wsp_buf_printf(wsp_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    int rv = buf_reserve(b, (size_t)n);
    if (rv < 0)
        return rv;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void wsp_buf_free(wsp_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}
