#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ipc.h"

typedef struct seen_s {
    int n;
    uint8_t type[8];
    uint64_t seq[8];
    uint32_t len[8];
    char payload[8][64];
} seen_t;

static void on_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload, uint32_t len)
{
    seen_t *s = user;
    assert_true(s->n < 8);
    s->type[s->n] = type;
    s->seq[s->n] = seq;
    s->len[s->n] = len;
    memcpy(s->payload[s->n], payload, len < 63 ? len : 63);
    s->n++;
}

/* Three packets back to back: a broadcast, a trigger (no payload), a publish. */
static size_t build(uint8_t *buf)
{
    size_t n = 0;
    wsp_ipc_header(buf + n, WSP_IPC_BROADCAST, 0x0102030405060708ull, 5);
    memcpy(buf + n + WSP_IPC_HDR, "hello", 5);
    n += WSP_IPC_HDR + 5;
    wsp_ipc_header(buf + n, WSP_IPC_TRIGGER, 0, 0);
    n += WSP_IPC_HDR;
    wsp_ipc_header(buf + n, WSP_IPC_PUBLISH, 7, 3);
    memcpy(buf + n + WSP_IPC_HDR, "abc", 3);
    n += WSP_IPC_HDR + 3;
    return n;
}

static void check(const seen_t *s)
{
    assert_int_equal(s->n, 3);
    assert_int_equal(s->type[0], WSP_IPC_BROADCAST);
    assert_true(s->seq[0] == 0x0102030405060708ull);
    assert_int_equal(s->len[0], 5);
    assert_string_equal(s->payload[0], "hello");
    assert_int_equal(s->type[1], WSP_IPC_TRIGGER);
    assert_int_equal(s->len[1], 0);
    assert_int_equal(s->type[2], WSP_IPC_PUBLISH);
    assert_int_equal(s->seq[2], 7);
    assert_string_equal(s->payload[2], "abc");
}

static void test_whole(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = build(buf);
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    assert_int_equal(wsp_ipc_feed(&r, buf, n, on_packet, &s), 0);
    check(&s);
    wsp_ipc_reset(&r);
}

static void test_every_split(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = build(buf);
    for (size_t cut = 0; cut <= n; cut++) {
        seen_t s = {0};
        wsp_ipc_reader_t r = {0};
        assert_int_equal(wsp_ipc_feed(&r, buf, cut, on_packet, &s), 0);
        assert_int_equal(wsp_ipc_feed(&r, buf + cut, n - cut, on_packet, &s), 0);
        check(&s);
        wsp_ipc_reset(&r);
    }
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    uint8_t buf[128];
    size_t n = build(buf);
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wsp_ipc_feed(&r, buf + i, 1, on_packet, &s), 0);
    check(&s);
    wsp_ipc_reset(&r);
}

static void test_bad(void **state)
{
    (void)state;
    uint8_t buf[WSP_IPC_HDR];
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    wsp_ipc_header(buf, 'X', 1, 0);
    assert_int_equal(wsp_ipc_feed(&r, buf, sizeof(buf), on_packet, &s), -EBADMSG);
    wsp_ipc_reset(&r);
    wsp_ipc_header(buf, WSP_IPC_BROADCAST, 1, WSP_IPC_MAX_PAYLOAD + 1);
    assert_int_equal(wsp_ipc_feed(&r, buf, sizeof(buf), on_packet, &s), -EBADMSG);
    wsp_ipc_reset(&r);
    /* the same oversized header arriving in pieces */
    assert_int_equal(wsp_ipc_feed(&r, buf, 5, on_packet, &s), 0);
    assert_int_equal(wsp_ipc_feed(&r, buf + 5, sizeof(buf) - 5, on_packet, &s), -EBADMSG);
    wsp_ipc_reset(&r);
    assert_int_equal(s.n, 0);
}

/* The supervisor's UPGRADE (issue #20): no payload, the new worker's pid as seq. */
static void test_upgrade(void **state)
{
    (void)state;
    uint8_t buf[WSP_IPC_HDR];
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    wsp_ipc_header(buf, WSP_IPC_UPGRADE, 4242, 0);
    assert_int_equal(wsp_ipc_feed(&r, buf, sizeof(buf), on_packet, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.type[0], WSP_IPC_UPGRADE);
    assert_int_equal(s.seq[0], 4242);
    assert_int_equal(s.len[0], 0);
    wsp_ipc_reset(&r);
}

static void test_max_payload(void **state)
{
    (void)state;
    size_t n = WSP_IPC_HDR + WSP_IPC_MAX_PAYLOAD;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    wsp_ipc_header(buf, WSP_IPC_BROADCAST, 9, WSP_IPC_MAX_PAYLOAD);
    memset(buf + WSP_IPC_HDR, 'x', WSP_IPC_MAX_PAYLOAD);
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    assert_int_equal(wsp_ipc_feed(&r, buf, 1000, on_packet, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(wsp_ipc_feed(&r, buf + 1000, n - 1000, on_packet, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.len[0], WSP_IPC_MAX_PAYLOAD);
    wsp_ipc_reset(&r);
    free(buf);
}

/* The user kinds (issue #16): a USER packet packs the user id where a channel goes; REACHED
 * carries a count. Both pass the reader. */
static void test_user_kinds(void **state)
{
    (void)state;
    uint8_t buf[128], packed[64];
    int n = wsp_ipc_pack_channel(packed, sizeof(packed), "al:#ce", 6, (const uint8_t *)"hi", 2);
    assert_int_equal(n, 9);
    wsp_ipc_header(buf, WSP_IPC_USER, 42, (uint32_t)n);
    memcpy(buf + WSP_IPC_HDR, packed, (size_t)n);
    size_t len = WSP_IPC_HDR + (size_t)n;
    wsp_ipc_header(buf + len, WSP_IPC_REACHED, 42, 8);
    memcpy(buf + len + WSP_IPC_HDR, "\x03\0\0\0\0\0\0\0", 8);
    len += WSP_IPC_HDR + 8;
    seen_t s = {0};
    wsp_ipc_reader_t r = {0};
    assert_int_equal(wsp_ipc_feed(&r, buf, len, on_packet, &s), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.type[0], WSP_IPC_USER);
    assert_int_equal(s.seq[0], 42);
    const char *sub;
    size_t sub_len, msg_len;
    const uint8_t *msg;
    assert_int_equal(wsp_ipc_split_channel(packed, (size_t)n, &sub, &sub_len, &msg, &msg_len), 0);
    assert_int_equal(sub_len, 6);
    assert_memory_equal(sub, "al:#ce", 6);
    assert_int_equal(s.type[1], WSP_IPC_REACHED);
    assert_int_equal(s.len[1], 8);
    wsp_ipc_reset(&r);
}

/* A BROADCAST payload carries the channel, its number there and the epoch (issue #17). */
static void test_broadcast_payload(void **state)
{
    (void)state;
    uint8_t out[128];
    const char *chan, *epoch;
    size_t chan_len, epoch_len, msg_len;
    const uint8_t *msg;
    uint64_t cseq;
    int n = wsp_ipc_pack_broadcast(out, sizeof(out), "news", 4, 0x1122334455667788ull, "e0e0e0e0",
                                   8, (const uint8_t *)"hi", 2);
    assert_int_equal(n, 1 + 4 + 1 + 8 + 8 + 2);
    assert_int_equal(wsp_ipc_split_broadcast(out, (size_t)n, &chan, &chan_len, &cseq, &epoch,
                                             &epoch_len, &msg, &msg_len),
                     0);
    assert_int_equal(chan_len, 4);
    assert_memory_equal(chan, "news", 4);
    assert_true(cseq == 0x1122334455667788ull);
    assert_int_equal(epoch_len, 8);
    assert_memory_equal(epoch, "e0e0e0e0", 8);
    assert_int_equal(msg_len, 2);
    assert_memory_equal(msg, "hi", 2);
    /* The default channel, no number, no epoch, an empty message. */
    n = wsp_ipc_pack_broadcast(out, sizeof(out), NULL, 0, 0, NULL, 0, NULL, 0);
    assert_int_equal(n, 10);
    assert_int_equal(wsp_ipc_split_broadcast(out, (size_t)n, &chan, &chan_len, &cseq, &epoch,
                                             &epoch_len, &msg, &msg_len),
                     0);
    assert_null(chan);
    assert_true(cseq == 0 && epoch_len == 0 && msg_len == 0);
    /* Every truncation is refused; the buffer too small is -ENOBUFS. */
    n = wsp_ipc_pack_broadcast(out, sizeof(out), "a", 1, 5, "e", 1, (const uint8_t *)"x", 1);
    for (int cut = 0; cut < n - 1; cut++)
        assert_int_equal(wsp_ipc_split_broadcast(out, (size_t)cut, &chan, &chan_len, &cseq, &epoch,
                                                 &epoch_len, &msg, &msg_len),
                         -EBADMSG);
    assert_int_equal(wsp_ipc_pack_broadcast(out, 12, "a", 1, 5, "e", 1, (const uint8_t *)"x", 1),
                     -ENOBUFS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_max_payload),
        cmocka_unit_test(test_user_kinds),
        cmocka_unit_test(test_broadcast_payload),
        cmocka_unit_test(test_upgrade),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
