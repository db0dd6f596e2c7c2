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

int wsp_channels_query_param(const char *q, size_t n, const char *key, const char **v, size_t *vlen)
{
    size_t klen = strlen(key);
    int count = 0;
    size_t start = 0;
    if (q == NULL) /* no '?': q + 0 below would be undefined on NULL */
        return 0;
    for (size_t i = 0; i <= n && count < 2; i++) {
        if (i < n && q[i] != '&')
            continue;
        const char *p = q + start;
        size_t plen = i - start;
        start = i + 1;
        if (plen < klen || memcmp(p, key, klen) != 0 || (plen > klen && p[klen] != '='))
            continue; /* another parameter: not ours to judge */
        if (count++ == 0) {
            *v = p + (plen > klen ? klen + 1 : klen);
            *vlen = plen > klen ? plen - klen - 1 : 0;
        }
    }
    return count;
}

int wsp_channels_parse_query(const char *query, size_t len, wsp_chanlist_t *out)
{
    wsp_chanlist_t l = {.n = 0};
    const char *v;
    size_t vlen;
    int seen = wsp_channels_query_param(query, len, "channels", &v, &vlen);
    /* Refused rather than merged: two lists usually mean a client concatenating URLs. */
    if (seen > 1)
        return -EINVAL;
    if (seen) {
        int rv = chanlist_parse(&l, v, vlen); /* an empty value is an empty item: refused */
        if (rv < 0)
            return rv;
    } else {
        l.n = 1;
        l.v[0].name = WSP_CHANNEL_DEFAULT;
        l.v[0].len = sizeof WSP_CHANNEL_DEFAULT - 1;
    }
    *out = l; /* only on success: a caller's list survives a bad query */
    return 0;
}
