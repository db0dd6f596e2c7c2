#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define ARGV(...) ((char *[]){"wspush", __VA_ARGS__, NULL})

/* argc from the NULL-terminated vector, as the kernel gives it. */
static int parse(wsp_config_t *cfg, char **argv, char *err)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return wsp_config_parse(cfg, argc, argv, err, 256);
}

static void test_defaults(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    char *argv[] = {"wspush", NULL};
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_true(cfg.threads >= 1);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.bind, "0.0.0.0");
    assert_string_equal(cfg.path, "/");
    assert_int_equal(cfg.interval, 60);
    assert_int_equal(cfg.max_conns, 0);
    assert_int_equal(cfg.max_pending, 65536);
    assert_int_equal(cfg.handshake_timeout, 10);
    assert_int_equal(cfg.log_level, WSP_LOG_INFO);
}

static void test_all_flags(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    char **argv = ARGV("--threads", "3", "--port", "0", "--bind", "127.0.0.1", "--path", "/ws",
                       "--interval", "0", "--max-conns", "100", "--max-pending", "4096",
                       "--handshake-timeout", "3", "--log-level", "debug");
    assert_int_equal(parse(&cfg, argv, err), 0);
    assert_int_equal(cfg.threads, 3);
    assert_int_equal(cfg.port, 0);
    assert_string_equal(cfg.bind, "127.0.0.1");
    assert_string_equal(cfg.path, "/ws");
    assert_int_equal(cfg.interval, 0);
    assert_int_equal(cfg.max_conns, 100);
    assert_int_equal(cfg.max_pending, 4096);
    assert_int_equal(cfg.handshake_timeout, 3);
    assert_int_equal(cfg.log_level, WSP_LOG_DEBUG);
}

static void expect_bad(char **argv, const char *needle)
{
    wsp_config_t cfg;
    char err[256] = "";
    assert_int_equal(parse(&cfg, argv, err), -EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_bad(ARGV("--threads", "0"), "--threads");
    expect_bad(ARGV("--threads", "two"), "--threads");
    expect_bad(ARGV("--threads", "65"), "--threads");
    expect_bad(ARGV("--port", "65536"), "--port");
    expect_bad(ARGV("--port", "-1"), "--port");
    expect_bad(ARGV("--port", "80x"), "--port");
    expect_bad(ARGV("--path", "ws"), "--path");
    expect_bad(ARGV("--path", "/a?b"), "--path");
    expect_bad(ARGV("--interval", "x"), "--interval");
    expect_bad(ARGV("--max-pending", "1"), "--max-pending");
    expect_bad(ARGV("--handshake-timeout", "0"), "--handshake-timeout");
    expect_bad(ARGV("--handshake-timeout", "500"), "--handshake-timeout");
    expect_bad(ARGV("--log-level", "loud"), "--log-level");
    expect_bad(ARGV("--nope"), "--nope");
    expect_bad(ARGV("--port"), "--port");
    expect_bad(ARGV("extra"), "extra");
}

static void test_help_version(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    /* stdout is the test log; the texts themselves are checked by the integration tests. */
    assert_int_equal(parse(&cfg, ARGV("--version"), err), 1);
    assert_int_equal(parse(&cfg, ARGV("--help"), err), 1);
}

static void test_redis_url(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    assert_int_equal(
        parse(&cfg, ARGV("--redis", "redis://127.0.0.1:6390/2", "--channel", "c1", "--procs", "4"),
              err),
        0);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6390);
    assert_int_equal(cfg.redis_db, 2);
    assert_string_equal(cfg.channel, "c1");
    assert_int_equal(cfg.procs, 4);
    assert_int_equal(parse(&cfg, ARGV("--redis", "redis://cache"), err), 0);
    assert_string_equal(cfg.redis_host, "cache");
    assert_int_equal(cfg.redis_port, 6379);
    assert_int_equal(cfg.redis_db, 0);
    assert_string_equal(cfg.channel, "wspush");
    expect_bad(ARGV("--redis", "http://x"), "--redis");
    expect_bad(ARGV("--redis", "redis://"), "--redis");
    expect_bad(ARGV("--redis", "redis://h:0"), "--redis");
    expect_bad(ARGV("--redis", "redis://h:99999"), "--redis");
    expect_bad(ARGV("--redis", "redis://h:12/x"), "--redis");
    expect_bad(ARGV("--procs", "0"), "--procs");
    expect_bad(ARGV("--channel", ""), "--channel");
}

/* permessage-deflate (issue #19): on by default, 256 bytes the default threshold. */
static void test_deflate(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    assert_int_equal(parse(&cfg, ARGV("--port", "1"), err), 0);
    assert_int_equal(cfg.deflate, 1);
    assert_int_equal(cfg.deflate_min_bytes, 256);
    assert_int_equal(parse(&cfg, ARGV("--deflate", "off", "--deflate-min-bytes", "0"), err), 0);
    assert_int_equal(cfg.deflate, 0);
    assert_int_equal(cfg.deflate_min_bytes, 0);
    assert_int_equal(parse(&cfg, ARGV("--deflate", "on", "--deflate-min-bytes", "1048576"), err),
                     0);
    assert_int_equal(cfg.deflate, 1);
    assert_int_equal(cfg.deflate_min_bytes, 1048576);
    expect_bad(ARGV("--deflate", "yes"), "--deflate");
    expect_bad(ARGV("--deflate", "ON"), "--deflate");
    expect_bad(ARGV("--deflate-min-bytes", "1048577"), "--deflate-min-bytes");
    expect_bad(ARGV("--deflate-min-bytes", "-1"), "--deflate-min-bytes");
    expect_bad(ARGV("--deflate-min-bytes", "1k"), "--deflate-min-bytes");
}

static int read_token_from(const char *content, size_t len, char *out, size_t cap)
{
    char path[] = "/tmp/wsp_config_tokenXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    int rv = wsp_config_read_token(path, out, cap);
    unlink(path);
    return rv;
}

#define READ_TOKEN(s, out, cap) read_token_from((s), sizeof(s) - 1, (out), (cap))

static void test_read_token(void **state)
{
    (void)state;
    char out[WSP_CONFIG_TOKEN_MAX + 1];
    assert_int_equal(READ_TOKEN("abc\n", out, sizeof out), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(READ_TOKEN("abc", out, sizeof out), 0); /* no newline at all */
    assert_string_equal(out, "abc");
    assert_int_equal(READ_TOKEN("abc \t\r\nsecond line\n", out, sizeof out), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(READ_TOKEN("", out, sizeof out), -EINVAL);
    assert_int_equal(READ_TOKEN("\nabc\n", out, sizeof out), -EINVAL);
    assert_int_equal(READ_TOKEN("   \n", out, sizeof out), -EINVAL);
    assert_int_equal(READ_TOKEN("a b\n", out, sizeof out), -EINVAL);
    assert_int_equal(READ_TOKEN("abcd\n", out, 4), -ENOBUFS);
    assert_int_equal(READ_TOKEN("abc\n", out, 4), 0);

    char big[WSP_CONFIG_TOKEN_MAX + 200];
    memset(big, 'k', sizeof big);
    big[WSP_CONFIG_TOKEN_MAX] = '\n';
    assert_int_equal(read_token_from(big, WSP_CONFIG_TOKEN_MAX + 1, out, sizeof out), 0);
    assert_int_equal(strlen(out), WSP_CONFIG_TOKEN_MAX);
    big[WSP_CONFIG_TOKEN_MAX] = 'k';
    big[WSP_CONFIG_TOKEN_MAX + 1] = '\n';
    assert_int_equal(read_token_from(big, WSP_CONFIG_TOKEN_MAX + 2, out, sizeof out), -EINVAL);
    assert_int_equal(read_token_from(big, sizeof big, out, sizeof out), -EINVAL);
    assert_int_equal(wsp_config_read_token("/nonexistent/token", out, sizeof out), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_all_flags),
        cmocka_unit_test(test_bad_values), cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_redis_url),  cmocka_unit_test(test_read_token),
        cmocka_unit_test(test_deflate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
