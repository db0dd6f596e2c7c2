#include "channels.h"

#include <errno.h>
#include <string.h>

/* The name alphabet is exactly what a query string and a Prometheus label value carry
 * without escaping, so names never need decoding or quoting anywhere downstream. */
static int channel_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

int wsp_channel_valid(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > WSP_CHANNEL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!channel_char((unsigned char)name[i]))
            return 0;
    return 1;
}

/* Adds name[0..len) to l unless it is already there. Returns 0 or -EINVAL. */
static int chanlist_add(wsp_chanlist_t *l, const char *name, size_t len)
{
    if (!wsp_channel_valid(name, len))
        return -EINVAL;
    for (unsigned i = 0; i < l->n; i++)
        if (l->v[i].len == len && memcmp(l->v[i].name, name, len) == 0)
            return 0; /* a duplicate costs the client nothing: it would get each message once */
    if (l->n == WSP_CHANNELS_MAX)
        return -EINVAL;
    l->v[l->n].name = name;
    l->v[l->n].len = len;
    l->n++;
    return 0;
}

/* Parses the comma-separated value of `channels` into l. Returns 0 or -EINVAL. */
static int chanlist_parse(wsp_chanlist_t *l, const char *v, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && v[i] != ',')
            continue;
        /* An empty item (empty list, ",a", "a,,b", trailing comma) is refused rather than
         * skipped: it is almost always a client bug worth reporting. */
        int rv = chanlist_add(l, v + start, i - start);
        if (rv < 0)
            return rv;
        start = i + 1;
    }
    return 0;
}

int wsp_channels_query_param(const char *query, size_t len, const char *name, const char **val,
                             size_t *vlen)
{
    const size_t nlen = strlen(name);
    int found = 0;
    size_t start = 0;
    if (query == NULL) { /* no '?': NULL + 0 below would be undefined */
        query = "";
        len = 0;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i < len && query[i] != '&')
            continue;
        const char *p = query + start;
        size_t plen = i - start;
        start = i + 1;
        if (plen < nlen || memcmp(p, name, nlen) != 0 || (plen > nlen && p[nlen] != '='))
            continue; /* another parameter: not ours to judge */
        /* Refused rather than merged: two usually mean a client concatenating URLs. */
        if (found)
            return -EINVAL;
        found = 1;
        *val = plen > nlen ? p + nlen + 1 : p + plen;
        *vlen = plen > nlen ? plen - nlen - 1 : 0;
    }
    return found;
}

int wsp_channels_parse_query(const char *query, size_t len, wsp_chanlist_t *out)
{
    wsp_chanlist_t l = {.n = 0};
    const char *v = NULL;
    size_t vlen = 0;
    int rv = wsp_channels_query_param(query, len, "channels", &v, &vlen);
    if (rv < 0 || (rv == 1 && vlen == 0))
        return -EINVAL; /* repeated, or an empty list */
    if (rv == 1 && (rv = chanlist_parse(&l, v, vlen)) < 0)
        return rv;
    if (l.n == 0) { /* no `channels`: the default channel */
        l.n = 1;
        l.v[0].name = WSP_CHANNEL_DEFAULT;
        l.v[0].len = sizeof WSP_CHANNEL_DEFAULT - 1;
    }
    *out = l; /* only on success: a caller's list survives a bad query */
    return 0;
}
