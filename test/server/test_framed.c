/* server/framed.c: the wspush.v1 message form (JSON escaping of any UTF-8 payload and of
 * control characters), the hello, epochs and the since/epoch query. A decoder written here
 * checks that what the encoder writes is JSON that gives the payload back byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "framed.h"

/* Decodes the JSON string starting after an opening quote at s[0..n): writes the bytes into
 * out and returns how many, with *end just past the closing quote; -1 when it is not a valid
 * JSON string (a raw control character, a bad escape, no closing quote). */
static long json_string(const uint8_t *s, size_t n, uint8_t *out, size_t *end)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"') {
            *end = i + 1;
            return (long)o;
        }
        if (c < 0x20)
            return -1; /* RFC 8259: must be escaped */
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (++i >= n)
            return -1;
        const char *named = s[i] ? strchr("\"\\/bfnrt", s[i]) : NULL;
        if (named) {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[o++] = (uint8_t)to[strchr(from, s[i]) - from];
            continue;
        }
        if (s[i] != 'u' || i + 4 >= n)
            return -1;
        unsigned v = 0;
        for (int k = 1; k <= 4; k++) {
            char h = (char)s[i + k];
            v = v * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
                                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                                           : 99);
        }
        if (v > 0x1f) /* we only ever escape control characters this way */
            return -1;
        out[o++] = (uint8_t)v;
        i += 4;
    }
    return -1;
}

/* Encodes p as a framed message and checks the whole form; returns the decoded data. */
static void check_roundtrip(const char *chan, uint64_t seq, const uint8_t *p, size_t len)
{
    size_t n = wsp_framed_len(strlen(chan), seq, p, len);
    uint8_t *buf = malloc(n + 1);
    uint8_t *data = malloc(len + 1);
    assert_non_null(buf);
    assert_non_null(data);
    assert_int_equal(wsp_framed_write(buf, chan, strlen(chan), seq, p, len), n);
    char head[128];
    if (seq)
        snprintf(head, sizeof(head), "{\"ch\":\"%s\",\"seq\":%llu,\"data\":\"", chan,
                 (unsigned long long)seq);
    else
        snprintf(head, sizeof(head), "{\"ch\":\"%s\",\"seq\":null,\"data\":\"", chan);
    assert_true(n > strlen(head));
    assert_memory_equal(buf, head, strlen(head));
    size_t end = 0;
    long got = json_string(buf + strlen(head), n - strlen(head), data, &end);
    assert_int_equal(got, (long)len);
    assert_memory_equal(data, p, len);
    assert_int_equal(strlen(head) + end + 1, n); /* then only the closing brace */
    assert_int_equal(buf[n - 1], '}');
    free(buf);
    free(data);
}

static void test_escaping(void **state)
{
    (void)state;
    /* Every ASCII byte alone, control characters included. */
    for (unsigned c = 1; c < 0x80; c++) {
        uint8_t b = (uint8_t)c;
        check_roundtrip("time", 7, &b, 1);
    }
    static const char *const cases[] = {
        "",
        "plain",
        "quote \" backslash \\ slash /",
        "{\"time\":1795755922337,\"seq\":1}",
        "tab\tnewline\ncr\rbell\adel\x7f",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8 line separator",
        "\\u0041 not an escape in the payload",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_roundtrip("news", 1, (const uint8_t *)cases[i], strlen(cases[i]));
        check_roundtrip("a:b.c-d_e", 18446744073709551615ull, (const uint8_t *)cases[i],
                        strlen(cases[i]));
    }
    /* NUL inside a payload is escaped too. */
    static const uint8_t nul[] = {'a', 0, 'b'};
    check_roundtrip("x", 2, nul, sizeof(nul));
    /* seq 0: a message without a number. */
    check_roundtrip("time", 0, (const uint8_t *)"raw", 3);
}

static void test_exact_form(void **state)
{
    (void)state;
    const char *p = "he said \"hi\"\n";
    uint8_t buf[128];
    size_t n = wsp_framed_write(buf, "news", 4, 12, (const uint8_t *)p, strlen(p));
    static const char want[] = "{\"ch\":\"news\",\"seq\":12,\"data\":\"he said \\\"hi\\\"\\n\"}";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    uint8_t c1 = 0x01;
    n = wsp_framed_write(buf, "t", 1, 0, &c1, 1);
    assert_memory_equal(buf, "{\"ch\":\"t\",\"seq\":null,\"data\":\"\\u0001\"}", n);
}

/* The message form as a frame: one text frame whose payload is the form, any header size. */
static void test_frame(void **state)
{
    (void)state;
    size_t sizes[] = {0, 90, 200, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *p = malloc(sizes[i] + 1);
        assert_non_null(p);
        memset(p, 'q', sizes[i]);
        wsp_msg_t *m = wsp_framed_msg("time", 4, 3, p, sizes[i]);
        assert_non_null(m);
        size_t plen = wsp_framed_len(4, 3, p, sizes[i]);
        uint8_t hdr[WSP_FRAME_HDR_MAX];
        size_t hl = wsp_frame_header(hdr, WSP_OP_TEXT, plen, NULL);
        assert_int_equal(m->len, hl + plen);
        assert_memory_equal(m->bytes, hdr, hl);
        uint8_t *want = malloc(plen);
        assert_non_null(want);
        wsp_framed_write(want, "time", 4, 3, p, sizes[i]);
        assert_memory_equal(m->bytes + hl, want, plen);
        wsp_msg_unref(m);
        free(want);
        free(p);
    }
}

static void test_hello(void **state)
{
    (void)state;
    wsp_framed_top_t v[3] = {
        {"a", 1, 57, 1, 1, 1},
        {"b", 1, 9, 1, 1, 0},
        {"time", 4, 0, 0, 0, 0},
    };
    wsp_msg_t *m = wsp_framed_hello("E1", v, 3);
    assert_non_null(m);
    static const char want[] = "{\"epoch\":\"E1\",\"top\":{\"a\":57,\"b\":9,\"time\":null},"
                               "\"recovered\":{\"a\":true,\"b\":false}}";
    assert_int_equal(m->bytes[0], 0x81);
    assert_int_equal(m->bytes[1], strlen(want));
    assert_memory_equal(m->bytes + 2, want, strlen(want));
    wsp_msg_unref(m);
    /* Nothing resumed: no "recovered". */
    v[0].resumed = v[1].resumed = 0;
    m = wsp_framed_hello("", v, 2);
    assert_non_null(m);
    static const char want2[] = "{\"epoch\":\"\",\"top\":{\"a\":57,\"b\":9}}";
    assert_int_equal(m->bytes[1], strlen(want2));
    assert_memory_equal(m->bytes + 2, want2, strlen(want2));
    wsp_msg_unref(m);
    /* The largest hello fits: 8 names of 64 bytes, 20-digit tops, every one resumed. */
    wsp_framed_top_t big[WSP_CHANNELS_MAX];
    char names[WSP_CHANNELS_MAX][WSP_CHANNEL_NAME_MAX];
    for (int i = 0; i < WSP_CHANNELS_MAX; i++) {
        memset(names[i], 'a' + i, WSP_CHANNEL_NAME_MAX);
        big[i] = (wsp_framed_top_t){names[i], WSP_CHANNEL_NAME_MAX, UINT64_MAX, 1, 1, 0};
    }
    m = wsp_framed_hello("0123456789abcdef0123456789abcdef", big, WSP_CHANNELS_MAX);
    assert_non_null(m);
    wsp_msg_unref(m);
}

static void test_epochs(void **state)
{
    (void)state;
    char a[17], b[17];
    assert_int_equal(wsp_framed_epoch_new(a), 0);
    assert_int_equal(wsp_framed_epoch_new(b), 0);
    assert_int_equal(strlen(a), 16);
    assert_true(wsp_framed_epoch_valid(a, 16));
    assert_string_not_equal(a, b);
    assert_true(wsp_framed_epoch_valid("A-z_09", 6));
    assert_false(wsp_framed_epoch_valid("", 0));
    assert_false(wsp_framed_epoch_valid("a b", 3));
    assert_false(wsp_framed_epoch_valid("a\"", 2));
    assert_false(wsp_framed_epoch_valid("0123456789abcdef0123456789abcdef0", 33));
    assert_true(wsp_framed_epoch_valid("0123456789abcdef0123456789abcdef", 32));
}

static int parse(const char *q, wsp_framed_resume_t *r)
{
    return wsp_framed_parse_resume(q, q ? strlen(q) : 0, r);
}

static void test_resume_query(void **state)
{
    (void)state;
    wsp_framed_resume_t r;
    assert_int_equal(parse(NULL, &r), 0);
    assert_int_equal(r.n, 0);
    assert_null(r.epoch);
    assert_int_equal(parse("channels=a,b&since=a:41,b:7&epoch=E", &r), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.v[0].len, 1);
    assert_memory_equal(r.v[0].name, "a", 1);
    assert_int_equal(r.v[0].since, 41);
    assert_memory_equal(r.v[1].name, "b", 1);
    assert_int_equal(r.v[1].since, 7);
    assert_int_equal(r.epoch_len, 1);
    assert_memory_equal(r.epoch, "E", 1);
    /* A name with ':' splits at the last one; the epoch may come first; other parameters
     * are not ours. */
    assert_int_equal(parse("epoch=x_1&x=1&since=a:b:c:0&sincere=1", &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].len, 5);
    assert_memory_equal(r.v[0].name, "a:b:c", 5);
    assert_int_equal(r.v[0].since, 0);
    assert_int_equal(parse("since=time:9999999999999999999&epoch=e", &r), 0);
    assert_true(r.v[0].since == 9999999999999999999ull);
    /* An epoch alone is fine (nothing to resume). */
    assert_int_equal(parse("epoch=e", &r), 0);
    assert_int_equal(r.n, 0);
    static const char *const bad[] = {
        "since=a:1",                                         /* no epoch */
        "since=&epoch=e",                                    /* empty */
        "since&epoch=e",                                     /* bare */
        "since=a&epoch=e",                                   /* no seq */
        "since=a:&epoch=e",                                  /* empty seq */
        "since=:1&epoch=e",                                  /* empty name */
        "since=a:1x&epoch=e",                                /* not a number */
        "since=a:-1&epoch=e",                                /* negative */
        "since=a:10000000000000000000&epoch=e",              /* 20 digits */
        "since=a:1,a:2&epoch=e",                             /* twice */
        "since=a:1,&epoch=e",                                /* empty item */
        "since=a b:1&epoch=e",                               /* bad name */
        "since=a:1&since=b:1&epoch=e",                       /* repeated */
        "since=a:1&epoch=e&epoch=e",                         /* repeated */
        "epoch=",                                            /* empty epoch */
        "epoch=a.b",                                         /* bad epoch */
        "since=a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1,i:1&epoch=e", /* 9 channels */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&r, 0x5a, sizeof(r));
        wsp_framed_resume_t before = r;
        assert_int_equal(parse(bad[i], &r), -EINVAL);
        assert_memory_equal(&r, &before, sizeof(r)); /* untouched on failure */
    }
    assert_int_equal(parse("since=a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1&epoch=e", &r), 0);
    assert_int_equal(r.n, WSP_CHANNELS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping), cmocka_unit_test(test_exact_form),
        cmocka_unit_test(test_frame),    cmocka_unit_test(test_hello),
        cmocka_unit_test(test_epochs),   cmocka_unit_test(test_resume_query),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
