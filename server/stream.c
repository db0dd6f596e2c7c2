#include "stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "channels.h"
#include "framed.h"

/* KEYS: NAME:hist, NAME:hist:C. ARGV: the field s:C, the pub/sub channel, the payload, the
 * stream's MAXLEN (0: no stream), its TTL in ms (0: none), an epoch to set if none exists.
 * Returns the message's number. */
const char wsp_stream_publish_lua[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch then\n"
    "  epoch = ARGV[6]\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch)\n"
    "end\n"
    "local seq = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
    "if seq == 1 then redis.call('DEL', KEYS[2]) end\n"
    "local id = string.format('%.0f', seq)\n"
    "if tonumber(ARGV[4]) > 0 then\n"
    "  local t = redis.call('TIME')\n"
    "  local ms = string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / "
    "1000))\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[4], id .. '-0', 'd', ARGV[3], 't', ms)\n"
    "  if tonumber(ARGV[5]) > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[2], '\\255wsp1;' .. epoch .. ';' .. id .. ';' .. ARGV[3])\n"
    "return seq\n";

/* KEYS: NAME:hist, then NAME:hist:C for each channel asked. ARGV: an epoch to set if none
 * exists, the most entries one channel may return, then per channel its field s:C and the
 * since (-1: its number only). Returns {epoch, top_1, entries_1, top_2, entries_2, ...}:
 * entries after since up to top (XRANGE), none when since >= top or too far back. */
const char wsp_stream_fetch_lua[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch)\n"
    "end\n"
    "local out = {epoch}\n"
    "local maxn = tonumber(ARGV[2])\n"
    "for i = 2, #KEYS do\n"
    "  local top = tonumber(redis.call('HGET', KEYS[1], ARGV[2 * i - 1]) or '0')\n"
    "  local since = tonumber(ARGV[2 * i])\n"
    "  local ents = {}\n"
    "  if since >= 0 and since < top and top - since <= maxn then\n"
    "    ents = redis.call('XRANGE', KEYS[i], string.format('%.0f', since + 1),\n"
    "                      string.format('%.0f', top))\n"
    "  end\n"
    "  out[#out + 1] = top\n"
    "  out[#out + 1] = ents\n"
    "end\n"
    "return out\n";

static int sha_hex(const char *text, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
        return -EIO;
    for (unsigned i = 0; i < 20; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int wsp_stream_shas(char publish[41], char fetch[41])
{
    int rv = sha_hex(wsp_stream_publish_lua, publish);
    return rv < 0 ? rv : sha_hex(wsp_stream_fetch_lua, fetch);
}

static int fit(int n, size_t cap) { return n < 0 || (size_t)n >= cap ? -ENOBUFS : n; }

int wsp_stream_meta_key(char *out, size_t cap, const char *name)
{
    return fit(snprintf(out, cap, "%s:hist", name), cap);
}

int wsp_stream_key(char *out, size_t cap, const char *name, const char *chan, size_t chan_len)
{
    if (chan == NULL) {
        chan = WSP_CHANNEL_DEFAULT;
        chan_len = sizeof(WSP_CHANNEL_DEFAULT) - 1;
    }
    return fit(snprintf(out, cap, "%s:hist:%.*s", name, (int)chan_len, chan), cap);
}

int wsp_stream_field(char *out, size_t cap, const char *chan, size_t chan_len)
{
    if (chan == NULL) {
        chan = WSP_CHANNEL_DEFAULT;
        chan_len = sizeof(WSP_CHANNEL_DEFAULT) - 1;
    }
    return fit(snprintf(out, cap, "s:%.*s", (int)chan_len, chan), cap);
}

/* Parses 1..19 decimal digits into *v. */
static int digits(const char *s, size_t n, uint64_t *v)
{
    if (n == 0 || n > 19)
        return -EBADMSG;
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EBADMSG;
        *v = *v * 10 + (uint64_t)(s[i] - '0');
    }
    return 0;
}

int wsp_stream_parse(const uint8_t *p, size_t n, uint64_t *seq, const char **epoch,
                     size_t *epoch_len, const uint8_t **payload, size_t *len)
{
    static const char mark[] = "\xffwsp1;";
    if (n == 0 || p[0] != 0xFF)
        return 0;
    if (n < sizeof(mark) - 1 || memcmp(p, mark, sizeof(mark) - 1) != 0)
        return -EBADMSG;
    const char *e = (const char *)p + sizeof(mark) - 1, *end = (const char *)p + n;
    const char *semi = memchr(e, ';', (size_t)(end - e));
    if (semi == NULL || !wsp_framed_epoch_valid(e, (size_t)(semi - e)))
        return -EBADMSG;
    const char *s = semi + 1;
    const char *semi2 = memchr(s, ';', (size_t)(end - s));
    if (semi2 == NULL || digits(s, (size_t)(semi2 - s), seq) < 0 || *seq == 0)
        return -EBADMSG;
    *epoch = e;
    *epoch_len = (size_t)(semi - e);
    *payload = (const uint8_t *)semi2 + 1;
    *len = (size_t)(end - semi2 - 1);
    return 1;
}

int wsp_stream_id(const char *id, size_t n, uint64_t *seq)
{
    if (n < 3 || id[n - 2] != '-' || id[n - 1] != '0')
        return -EBADMSG;
    return digits(id, n - 2, seq);
}
