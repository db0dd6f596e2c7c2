#include "table.h"

#include <errno.h>
#include <stdlib.h>

/* conn.c keeps slots in 32 bits; far beyond any connection count of one shard. */
#define WSP_TABLE_MAX (1u << 24)

int wsp_table_push(wsp_table_t *t, wsp_conn_t *c, uint32_t *idx)
{
    if (t->n == t->cap) {
        if (t->cap >= WSP_TABLE_MAX)
            return -ENOMEM;
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        /* Doubling: amortised O(1) per connection, never per message. */
        wsp_conn_t **v = realloc(t->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    *idx = t->n;
    t->v[t->n++] = c;
    return 0;
}

wsp_conn_t *wsp_table_remove(wsp_table_t *t, uint32_t idx)
{
    wsp_conn_t *last = t->v[--t->n];
    if (idx == t->n)
        return NULL;
    t->v[idx] = last;
    return last;
}

void wsp_table_free(wsp_table_t *t)
{
    free(t->v);
    t->v = NULL;
    t->n = t->cap = 0;
}
