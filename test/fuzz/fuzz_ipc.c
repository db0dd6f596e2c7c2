/* Fuzzes the supervisor/worker packet reader (server/ipc.c): wsp_ipc_feed() over a stream
 * fed in pieces. Input: [split control byte][stream]. Checks, besides memory safety, that the
 * split never changes what is parsed (packets and the error), that packets re-encode to
 * exactly the bytes they were parsed from, and that a partial packet is the only thing the
 * reader holds (bounded by the largest packet), and that BROADCAST/PUBLISH payloads split
 * into channel and message within bounds and pack back to themselves. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "ipc.h"

#define MAX_PACKETS 4096 /* inputs are far smaller than 4096 packets of 13 bytes */

struct record {
    const uint8_t *stream; /* the whole stream, for the re-encoding check */
    size_t stream_len;
    size_t off; /* bytes of stream accounted for by packets so far */
    size_t n;
    struct {
        uint8_t type;
        uint64_t seq;
        uint32_t len;
        uint32_t hash;
    } p[MAX_PACKETS];
};

static uint32_t fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x01000193u;
    return h;
}

/* BROADCAST and PUBLISH payloads carry [channel length][channel][message]: the split stays
 * inside the payload and packs back into the same bytes. */
static void check_channel(const uint8_t *p, uint32_t len)
{
    const char *chan = (const char *)p;
    const uint8_t *msg = NULL;
    size_t chan_len = 0, msg_len = 0;
    int rv = wsp_ipc_split_channel(p, len, &chan, &chan_len, &msg, &msg_len);
    if (rv < 0) {
        WSP_FUZZ_CHECK(rv == -EBADMSG && (len == 0 || (size_t)p[0] + 1 > len));
        return;
    }
    WSP_FUZZ_CHECK(rv == 0 && chan_len == p[0] && 1 + chan_len + msg_len == len);
    WSP_FUZZ_CHECK(chan_len == 0 ? chan == NULL : chan == (const char *)p + 1);
    WSP_FUZZ_CHECK(msg == p + 1 + chan_len);
    static uint8_t again[WSP_IPC_MAX_PAYLOAD];
    int n = wsp_ipc_pack_channel(again, sizeof(again), chan, chan_len, msg, msg_len);
    WSP_FUZZ_CHECK(n == (int)len && memcmp(again, p, len) == 0);
}

/* A BROADCAST payload (issue #17): [channel length][channel][epoch length][epoch][cseq:8]
 * [message]; the split stays inside it and packs back into the same bytes. */
static void check_broadcast(const uint8_t *p, uint32_t len)
{
    const char *chan = NULL, *epoch = NULL;
    const uint8_t *msg = NULL;
    size_t chan_len = 0, epoch_len = 0, msg_len = 0;
    uint64_t cseq = 0;
    int rv = wsp_ipc_split_broadcast(p, len, &chan, &chan_len, &cseq, &epoch, &epoch_len, &msg,
                                     &msg_len);
    if (rv < 0) { /* refused only when the lengths do not fit */
        size_t cl = len ? p[0] : 0;
        WSP_FUZZ_CHECK(rv == -EBADMSG &&
                       (len == 0 || cl + 2 > len || cl + 2 + p[1 + cl] + 8 > len));
        return;
    }
    WSP_FUZZ_CHECK(2 + chan_len + epoch_len + 8 + msg_len == len && msg + msg_len == p + len);
    static uint8_t again[WSP_IPC_MAX_PAYLOAD];
    int n = wsp_ipc_pack_broadcast(again, sizeof(again), chan, chan_len, cseq, epoch, epoch_len,
                                   msg, msg_len);
    WSP_FUZZ_CHECK(n == (int)len && memcmp(again, p, len) == 0);
}

static void on_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload, uint32_t len)
{
    struct record *r = user;
    WSP_FUZZ_CHECK(type == WSP_IPC_BROADCAST || type == WSP_IPC_TRIGGER ||
                   type == WSP_IPC_PUBLISH || type == WSP_IPC_USER || type == WSP_IPC_REACHED ||
                   type == WSP_IPC_UPGRADE);
    WSP_FUZZ_CHECK(len <= WSP_IPC_MAX_PAYLOAD);
    WSP_FUZZ_CHECK(len == 0 || payload != NULL);
    uint8_t hdr[WSP_IPC_HDR];
    wsp_ipc_header(hdr, type, seq, len);
    WSP_FUZZ_CHECK(r->off + WSP_IPC_HDR + len <= r->stream_len);
    WSP_FUZZ_CHECK(memcmp(r->stream + r->off, hdr, WSP_IPC_HDR) == 0);
    WSP_FUZZ_CHECK(len == 0 || memcmp(r->stream + r->off + WSP_IPC_HDR, payload, len) == 0);
    r->off += WSP_IPC_HDR + len;
    if (type != WSP_IPC_TRIGGER && type != WSP_IPC_REACHED && type != WSP_IPC_UPGRADE)
        check_channel(payload, len);
    if (type == WSP_IPC_BROADCAST)
        check_broadcast(payload, len);
    WSP_FUZZ_CHECK(r->n < MAX_PACKETS);
    r->p[r->n].type = type;
    r->p[r->n].seq = seq;
    r->p[r->n].len = len;
    r->p[r->n].hash = fnv1a(payload, len); /* reads every byte: ASan checks the pointer */
    r->n++;
}

/* Feeds s[0..n) in pieces chosen by ctl; returns 0 or the first error. */
static int run(uint8_t ctl, const uint8_t *s, size_t n, struct record *r)
{
    memset(r, 0, sizeof(*r));
    r->stream = s;
    r->stream_len = n;
    wsp_ipc_reader_t rd = {0};
    wsp_fuzz_split_t sp;
    wsp_fuzz_split_init(&sp, ctl);
    int rv = 0;
    size_t off = 0;
    while (off < n) {
        size_t k = wsp_fuzz_split_next(&sp, n - off);
        rv = wsp_ipc_feed(&rd, s + off, k, on_packet, r);
        off += k;
        if (rv < 0)
            break;
        /* Only a partial packet is ever held, and no more of it than its own length. */
        WSP_FUZZ_CHECK(rd.len < WSP_IPC_HDR + WSP_IPC_MAX_PAYLOAD);
        WSP_FUZZ_CHECK(rd.len == off - r->off);
        WSP_FUZZ_CHECK(rd.cap <= 2 * (WSP_IPC_HDR + WSP_IPC_MAX_PAYLOAD));
    }
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG);
    wsp_ipc_reset(&rd);
    WSP_FUZZ_CHECK(rd.buf == NULL && rd.len == 0 && rd.cap == 0);
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* static: two records of 4096 packets are too big for libFuzzer's stack. */
    static struct record whole, split;
    int rv1 = run(0, data + 1, size - 1, &whole);
    int rv2 = run(data[0], data + 1, size - 1, &split);
    WSP_FUZZ_CHECK(rv1 == rv2);
    WSP_FUZZ_CHECK(whole.n == split.n && whole.off == split.off);
    for (size_t i = 0; i < whole.n; i++)
        WSP_FUZZ_CHECK(whole.p[i].type == split.p[i].type && whole.p[i].seq == split.p[i].seq &&
                       whole.p[i].len == split.p[i].len && whole.p[i].hash == split.p[i].hash);
    return 0;
}
