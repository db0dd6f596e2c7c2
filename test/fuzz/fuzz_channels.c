/* Fuzzes the client's channel choice (server/channels.c): wsp_channels_parse_query() gets the
 * query string of every upgrade request. The input is the query (after '?'). Checked against
 * a reference written differently (split first, then judge), and for the contract conn.c
 * relies on: names valid and inside the query (or the default), at most WSP_CHANNELS_MAX, no
 * duplicates, and the caller's list untouched on -EINVAL. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "channels.h"
#include "fuzz.h"

static bool name_char(uint8_t c)
{
    return strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-", c) !=
               NULL &&
           c != 0;
}

/* The reference: 0 with the deduplicated names in ref, or -EINVAL. */
static int ref_parse(const uint8_t *q, size_t n, wsp_chanlist_t *ref)
{
    const uint8_t *val = NULL;
    size_t val_len = 0;
    int params = 0;
    for (size_t s = 0; s <= n;) {
        const uint8_t *amp = s < n ? memchr(q + s, '&', n - s) : NULL;
        size_t e = amp != NULL ? (size_t)(amp - q) : n;
        size_t pl = e - s;
        if (pl == 8 && memcmp(q + s, "channels", 8) == 0) {
            params++;
            val = q + e; /* "channels" alone: an empty value */
            val_len = 0;
        } else if (pl > 8 && memcmp(q + s, "channels=", 9) == 0) {
            params++;
            val = q + s + 9;
            val_len = pl - 9;
        }
        s = e + 1;
    }
    ref->n = 0;
    if (params == 0) {
        ref->n = 1;
        ref->v[0].name = WSP_CHANNEL_DEFAULT;
        ref->v[0].len = strlen(WSP_CHANNEL_DEFAULT);
        return 0;
    }
    if (params > 1)
        return -EINVAL;
    size_t i = 0;
    for (;;) { /* one item per round: [i, j) */
        size_t j = i;
        while (j < val_len && val[j] != ',')
            j++;
        if (j == i || j - i > WSP_CHANNEL_NAME_MAX)
            return -EINVAL;
        for (size_t k = i; k < j; k++)
            if (!name_char(val[k]))
                return -EINVAL;
        bool dup = false;
        for (unsigned k = 0; k < ref->n && !dup; k++)
            dup = ref->v[k].len == j - i && memcmp(ref->v[k].name, val + i, j - i) == 0;
        if (!dup) {
            if (ref->n == WSP_CHANNELS_MAX)
                return -EINVAL;
            ref->v[ref->n].name = (const char *)val + i;
            ref->v[ref->n].len = j - i;
            ref->n++;
        }
        if (j == val_len)
            return 0;
        i = j + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *q = (const char *)data;
    wsp_chanlist_t out, before, ref;
    memset(&out, 0x5A, sizeof(out));
    memcpy(&before, &out, sizeof(out));
    int rv = wsp_channels_parse_query(q, size, &out);
    int want = ref_parse(data, size, &ref);
    WSP_FUZZ_CHECK(rv == 0 || rv == -EINVAL);
    WSP_FUZZ_CHECK(rv == want);
    if (rv < 0) {
        WSP_FUZZ_CHECK(memcmp(&out, &before, sizeof(out)) == 0); /* untouched */
        return 0;
    }
    WSP_FUZZ_CHECK(out.n >= 1 && out.n <= WSP_CHANNELS_MAX && out.n == ref.n);
    for (unsigned i = 0; i < out.n; i++) {
        WSP_FUZZ_CHECK(wsp_channel_valid(out.v[i].name, out.v[i].len));
        WSP_FUZZ_CHECK(out.v[i].len == ref.v[i].len &&
                       memcmp(out.v[i].name, ref.v[i].name, out.v[i].len) == 0);
        bool in_query = out.v[i].name >= q && out.v[i].name + out.v[i].len <= q + size;
        WSP_FUZZ_CHECK(in_query || strcmp(out.v[i].name, WSP_CHANNEL_DEFAULT) == 0);
        for (unsigned j = 0; j < i; j++)
            WSP_FUZZ_CHECK(out.v[j].len != out.v[i].len ||
                           memcmp(out.v[j].name, out.v[i].name, out.v[i].len) != 0);
    }
    /* NULL means no query at all: the default channel. */
    wsp_chanlist_t none;
    WSP_FUZZ_CHECK(wsp_channels_parse_query(NULL, size, &none) == 0 && none.n == 1);
    return 0;
}
