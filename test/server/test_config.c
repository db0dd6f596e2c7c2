#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_all_flags),
        cmocka_unit_test(test_bad_values), cmocka_unit_test(test_help_version),
        cmocka_unit_test(test_redis_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
