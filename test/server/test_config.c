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
#include "jwt.h"
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
    assert_int_equal(cfg.sndbuf, 65536);
    /* keepalive's give-up time: 120 s idle + 4 probes 30 s apart */
    assert_int_equal(cfg.tcp_user_timeout, 240);
}

/* --tcp-user-timeout follows --tcp-keepalive unless given: keepalive then gives up when its
 * own probe count would have. */
static void test_user_timeout_default(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    assert_int_equal(parse(&cfg, ARGV("--tcp-keepalive", "2"), err), 0);
    assert_int_equal(cfg.tcp_user_timeout, 10);
    assert_int_equal(parse(&cfg, ARGV("--tcp-keepalive", "600"), err), 0);
    assert_int_equal(cfg.tcp_user_timeout, 720);
    assert_int_equal(parse(&cfg, ARGV("--tcp-keepalive", "0"), err), 0);
    assert_int_equal(cfg.tcp_user_timeout, 240);
    assert_int_equal(parse(&cfg, ARGV("--tcp-user-timeout", "7", "--tcp-keepalive", "2"), err), 0);
    assert_int_equal(cfg.tcp_user_timeout, 7);
    assert_int_equal(parse(&cfg, ARGV("--tcp-user-timeout", "0"), err), 0);
    assert_int_equal(cfg.tcp_user_timeout, 0);
    assert_int_equal(parse(&cfg, ARGV("--sndbuf", "0"), err), 0);
    assert_int_equal(cfg.sndbuf, 0);
    assert_int_equal(parse(&cfg, ARGV("--sndbuf", "4096"), err), 0);
    assert_int_equal(cfg.sndbuf, 4096);
    assert_int_equal(parse(&cfg, ARGV("--sndbuf", "67108864"), err), 0);
    assert_int_equal(cfg.sndbuf, 67108864);
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
    expect_bad(ARGV("--sndbuf", "4095"), "--sndbuf");
    expect_bad(ARGV("--sndbuf", "67108865"), "--sndbuf");
    expect_bad(ARGV("--sndbuf", "-1"), "--sndbuf");
    expect_bad(ARGV("--tcp-user-timeout", "86401"), "--tcp-user-timeout");
    expect_bad(ARGV("--tcp-user-timeout", "x"), "--tcp-user-timeout");
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

/* TLS (issue #18): both files or neither; the handshake limit and kTLS switch. */
static void test_tls_flags(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    assert_int_equal(parse(&cfg, ARGV("--port", "1"), err), 0);
    assert_string_equal(cfg.tls_cert, "");
    assert_int_equal(cfg.tls_max_handshakes, 1024);
    assert_int_equal(cfg.tls_ktls, WSP_CONFIG_KTLS_AUTO);
    assert_int_equal(parse(&cfg,
                           ARGV("--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-max-handshakes",
                                "7", "--tls-ktls", "off"),
                           err),
                     0);
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_int_equal(cfg.tls_max_handshakes, 7);
    assert_int_equal(cfg.tls_ktls, WSP_CONFIG_KTLS_OFF);
    expect_bad(ARGV("--tls-cert", "c.pem"), "--tls-cert needs --tls-key");
    expect_bad(ARGV("--tls-key", "k.pem"), "--tls-key needs --tls-cert");
    expect_bad(ARGV("--tls-cert", "", "--tls-key", "k"), "--tls-cert");
    expect_bad(ARGV("--tls-max-handshakes", "0"), "--tls-max-handshakes");
    expect_bad(ARGV("--tls-max-handshakes", "65537"), "--tls-max-handshakes");
    expect_bad(ARGV("--tls-ktls", "on"), "--tls-ktls");
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

/* Token auth (issue #16): the five flags, their defaults, and that they come together. */
static void test_auth_flags(void **state)
{
    (void)state;
    wsp_config_t cfg;
    char err[256];
    assert_int_equal(parse(&cfg, ARGV("--port", "1"), err), 0);
    assert_int_equal(cfg.auth_jwt_alg, 0); /* off by default */
    assert_int_equal(cfg.auth_leeway, 5);
    assert_int_equal(
        parse(&cfg,
              ARGV("--auth-jwt-alg", "ES256", "--auth-jwt-key", "/k.pem", "--auth-jwt-aud", "app",
                   "--auth-jwt-iss", "https://idp", "--auth-leeway", "0"),
              err),
        0);
    assert_int_equal(cfg.auth_jwt_alg, WSP_JWT_ES256);
    assert_string_equal(cfg.auth_jwt_key, "/k.pem");
    assert_string_equal(cfg.auth_jwt_aud, "app");
    assert_string_equal(cfg.auth_jwt_iss, "https://idp");
    assert_int_equal(cfg.auth_leeway, 0);
    expect_bad(ARGV("--auth-jwt-alg", "none", "--auth-jwt-key", "/k"), "--auth-jwt-alg");
    expect_bad(ARGV("--auth-jwt-alg", "hs256", "--auth-jwt-key", "/k"), "--auth-jwt-alg");
    expect_bad(ARGV("--auth-jwt-alg", "HS256"), "--auth-jwt-key");
    expect_bad(ARGV("--auth-jwt-key", "/k"), "--auth-jwt-alg");
    expect_bad(ARGV("--auth-jwt-aud", "a"), "--auth-jwt-alg");
    expect_bad(ARGV("--auth-jwt-alg", "HS256", "--auth-jwt-key", ""), "--auth-jwt-key");
    expect_bad(ARGV("--auth-leeway", "86401"), "--auth-leeway");
    expect_bad(ARGV("--auth-leeway", "-1"), "--auth-leeway");
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
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_user_timeout_default),
        cmocka_unit_test(test_all_flags),    cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_help_version), cmocka_unit_test(test_redis_url),
        cmocka_unit_test(test_read_token),   cmocka_unit_test(test_auth_flags),
        cmocka_unit_test(test_tls_flags),    cmocka_unit_test(test_deflate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
