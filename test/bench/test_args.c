/* Argument validation: every bad input gives one clear line, good input the right config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "args.h"
#include "jwt.h"

static wsp_bench_cfg_t cfg;
static char err[512];
static const wsp_args_limits_t roomy = {20000, 24ull << 30};

/* Parses a NULL-terminated list of arguments. */
static int parse_lim(const wsp_args_limits_t *lim, const char *first, ...)
{
    char *argv[64] = {"wspush-bench"};
    int argc = 1;
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    err[0] = '\0';
    return wsp_args_parse(&cfg, argc, argv, lim, err, sizeof(err));
}

#define parse(...) parse_lim(&roomy, __VA_ARGS__, NULL)

static void assert_error(int rv, const char *needle)
{
    assert_int_equal(rv, -EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error '%s' lacks '%s'", err, needle);
    assert_null(strchr(err, '\n')); /* one line */
}

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(
        parse("--url", "ws://127.0.0.1:8080/ws", "--conns", "100000", "--duration", "60"), 0);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_int_equal(cfg.dst_addr, 0x7F000001u);
    assert_int_equal(cfg.port, 8080);
    assert_string_equal(cfg.path, "/ws");
    assert_int_equal(cfg.conns, 100000);
    assert_int_equal(cfg.procs, 7); /* <= 15,000 per process */
    assert_int_equal(cfg.src_first, 0x7F010001u);
    assert_int_equal(cfg.concurrency, 256);
    assert_int_equal(cfg.coalesce_us, 1000);
    assert_int_equal(cfg.io_uring, 0);
    assert_int_equal(cfg.expect_bcasts, -1); /* not given: the seqs received are expected */
    assert_true(cfg.rate == 0 && cfg.duration == 60 && cfg.report_interval == 10);
    assert_null(cfg.json);
    /* <= 1,000 connections per source address */
    assert_int_equal(wsp_args_source(&cfg, 0), 0x7F010001u);
    assert_int_equal(wsp_args_source(&cfg, 999), 0x7F010001u);
    assert_int_equal(wsp_args_source(&cfg, 1000), 0x7F010002u);
    assert_int_equal(wsp_args_source(&cfg, 99999), 0x7F010001u + 99);
}

static void test_all_options(void **state)
{
    (void)state;
    assert_int_equal(parse("--url=ws://localhost", "--conns=2000", "--duration=1.5", "--procs", "2",
                           "--sources", "10.0.0.1-10.0.0.2", "--concurrency", "8", "--rate", "500",
                           "--report-interval", "0.5", "--json", "/tmp/x.json", "--status-file",
                           "/tmp/st", "--handshake-timeout", "2", "--retries", "0", "--coalesce-us",
                           "0", "--quiet", "--io-uring", "on", "--expect-broadcasts", "8191",
                           "--deflate"),
                     0);
    assert_int_equal(cfg.dst_addr, 0x7F000001u);
    assert_int_equal(cfg.port, 80);
    assert_string_equal(cfg.path, "/");
    assert_int_equal(cfg.procs, 2);
    assert_int_equal(cfg.src_first, 0x0A000001u);
    assert_int_equal(cfg.src_last, 0x0A000002u);
    assert_int_equal(cfg.concurrency, 8);
    assert_true(cfg.rate == 500 && cfg.duration == 1.5 && cfg.report_interval == 0.5);
    assert_string_equal(cfg.json, "/tmp/x.json");
    assert_string_equal(cfg.status_file, "/tmp/st");
    assert_int_equal(cfg.retries, 0);
    assert_int_equal(cfg.coalesce_us, 0);
    assert_int_equal(cfg.quiet, 1);
    assert_int_equal(cfg.io_uring, 1);
    assert_int_equal(cfg.expect_bcasts, 8191);
    assert_int_equal(cfg.deflate, 1);
    assert_int_equal(parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1",
                           "--expect-broadcasts", "0"),
                     0);
    assert_int_equal(cfg.expect_bcasts, 0);
    assert_int_equal(cfg.framed, 0);
    assert_int_equal(cfg.recover_at, -1);
    /* issue #17: the framing, and drop + resume (which implies it) */
    assert_int_equal(
        parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1", "--framed"), 0);
    assert_true(cfg.framed && cfg.recover_at == -1);
    assert_int_equal(
        parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1", "--recover", "2"),
        0);
    assert_true(cfg.framed && cfg.recover_at == 2);
    assert_error(
        parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1", "--recover", "0"),
        "--recover must be");
    assert_error(
        parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1", "--recover", "8192"),
        "--recover must be");
    assert_int_equal(cfg.deflate, 0);
    assert_int_equal(
        parse("--url", "ws://127.0.0.1:9/", "--conns", "1", "--duration", "1", "--deflate=on"),
        -EINVAL); /* a flag: it takes no value */
}

static void test_help(void **state)
{
    (void)state;
    assert_int_equal(parse("--help"), 1);
}

static void test_required(void **state)
{
    (void)state;
    assert_error(parse("--conns", "1", "--duration", "1"), "missing --url");
    assert_error(parse("--url", "ws://127.0.0.1:1/", "--duration", "1"), "missing --conns");
    assert_error(parse("--url", "ws://127.0.0.1:1/", "--conns", "1"), "missing --duration");
    assert_error(parse("--url", "ws://127.0.0.1:1/", "--conns", "1", "--duration"),
                 "--duration needs a value");
}

static void test_bad_numbers(void **state)
{
    (void)state;
    const char *u = "ws://127.0.0.1:9/";
    assert_error(parse("--url", u, "--conns", "0", "--duration", "1"), "--conns");
    assert_error(parse("--url", u, "--conns", "-5", "--duration", "1"), "--conns");
    assert_error(parse("--url", u, "--conns", "12x", "--duration", "1"), "--conns");
    assert_error(parse("--url", u, "--conns", "20000000", "--duration", "1"), "--conns");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "0"), "--duration");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "nan"), "--duration");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--procs", "0"), "--procs");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--concurrency", "0"),
                 "--concurrency");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--rate", "-1"), "--rate");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--coalesce-us", "1e3"),
                 "--coalesce-us");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--io-uring", "yes"),
                 "--io-uring must be on or off");
    assert_error(
        parse("--url", u, "--conns", "1", "--duration", "1", "--expect-broadcasts", "8192"),
        "--expect-broadcasts must be an integer from 0 to 8191");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--expect-broadcasts", "-1"),
                 "--expect-broadcasts");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--bogus", "1"),
                 "unknown option '--bogus'");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "extra"),
                 "unexpected argument");
}

static void test_bad_urls(void **state)
{
    (void)state;
    const char *bad[] = {"http://127.0.0.1/",
                         "https://127.0.0.1/",
                         "wss:/127.0.0.1/",
                         "ws://",
                         "ws://:80/",
                         "ws://example.com/",
                         "ws://127.0.0.1:0/",
                         "ws://127.0.0.1:65536/",
                         "ws://127.0.0.1:80x/",
                         "ws://127.0.0.1:/",
                         "ws://1.2.3/",
                         "ws://127.0.0.1/a b",
                         "ws://127.0.0.1/a\r\nX: y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_error(parse("--url", bad[i], "--conns", "1", "--duration", "1"), "malformed --url");
}

/* wss:// (issue #18): port 443 by default, exactly one of --tls-ca and --tls-insecure. */
static void test_tls(void **state)
{
    (void)state;
    assert_int_equal(
        parse("--url", "wss://127.0.0.1/x", "--conns", "1", "--duration", "1", "--tls-insecure"),
        0);
    assert_true(cfg.tls && cfg.tls_insecure && cfg.tls_ca == NULL);
    assert_int_equal(cfg.port, 443);
    assert_string_equal(cfg.path, "/x");
    assert_int_equal(cfg.tls_version, 0x0304);
    assert_int_equal(cfg.tls_resume, 1);
    assert_int_equal(parse("--url", "wss://localhost:9443/", "--conns", "1", "--duration", "1",
                           "--tls-ca", "ca.pem", "--tls-version", "1.2", "--tls-resume", "off"),
                     0);
    assert_true(cfg.tls && !cfg.tls_insecure);
    assert_string_equal(cfg.tls_ca, "ca.pem");
    assert_int_equal(cfg.port, 9443);
    assert_int_equal(cfg.tls_version, 0x0303);
    assert_int_equal(cfg.tls_resume, 0);
    assert_int_equal(parse("--url", "ws://127.0.0.1/", "--conns", "1", "--duration", "1"), 0);
    assert_false(cfg.tls);
    const char *u = "wss://127.0.0.1/";
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1"), "exactly one of");
    assert_error(
        parse("--url", u, "--conns", "1", "--duration", "1", "--tls-ca", "a", "--tls-insecure"),
        "exactly one of");
    assert_error(
        parse("--url", "ws://127.0.0.1/", "--conns", "1", "--duration", "1", "--tls-insecure"),
        "for wss://");
    assert_error(
        parse("--url", u, "--conns", "1", "--duration", "1", "--tls-insecure", "--io-uring", "on"),
        "not with wss://");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--tls-insecure",
                       "--tls-version", "1.1"),
                 "--tls-version");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--tls-insecure",
                       "--tls-resume", "maybe"),
                 "--tls-resume");
}

static void test_bad_sources(void **state)
{
    (void)state;
    const char *u = "ws://127.0.0.1:9/";
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--sources", "127.1.0.9-"),
                 "malformed --sources");
    assert_error(
        parse("--url", u, "--conns", "1", "--duration", "1", "--sources", "127.1.0.9-127.1.0.1"),
        "malformed --sources");
    assert_error(parse("--url", u, "--conns", "1", "--duration", "1", "--sources", "127.1.0"),
                 "malformed --sources");
    /* 2,001 connections need 3 sources */
    assert_error(
        parse("--url", u, "--conns", "2001", "--duration", "1", "--sources", "127.1.0.1-127.1.0.2"),
        "need 3");
    assert_int_equal(
        parse("--url", u, "--conns", "2000", "--duration", "1", "--sources", "127.1.0.1-127.1.0.2"),
        0);
    assert_int_equal(
        parse("--url", u, "--conns", "1000", "--duration", "1", "--sources", "127.1.0.7"), 0);
    assert_int_equal(cfg.src_first, cfg.src_last);
}

static void test_machine_limits(void **state)
{
    (void)state;
    const char *u = "ws://127.0.0.1:9/";
    /* 30,000 in one process cannot fit under a 20,000 open-file cap */
    assert_error(parse("--url", u, "--conns", "30000", "--duration", "1", "--procs", "1"),
                 "open-file limit");
    /* 3,000,000 connections need ~29 GiB */
    assert_error(parse("--url", u, "--conns", "3000000", "--duration", "1"), "MemAvailable");
    wsp_args_limits_t small = {20000, 1ull << 30};
    assert_error(parse_lim(&small, "--url", u, "--conns", "200000", "--duration", "1", NULL),
                 "MemAvailable");
    wsp_args_limits_t few_files = {1024, 0};
    assert_error(parse_lim(&few_files, "--url", u, "--conns", "2000", "--duration", "1", NULL),
                 "use --procs >= 3");
    wsp_args_limits_t unknown = {0, 0}; /* nothing known: nothing refused */
    assert_int_equal(parse_lim(&unknown, "--url", u, "--conns", "30000", "--duration", "1",
                               "--procs", "1", NULL),
                     0);
    assert_int_equal(parse("--url", u, "--conns", "1000000", "--duration", "1"), 0);
    assert_int_equal(cfg.procs, 67);
    /* wss:// adds the bench's OpenSSL client per connection: 700,000 no longer fit 24 GiB */
    assert_int_equal(parse("--url", u, "--conns", "700000", "--duration", "1"), 0);
    assert_error(parse("--url", "wss://127.0.0.1:9/", "--conns", "700000", "--duration", "1",
                       "--tls-insecure"),
                 "with its TLS client");
    /* never more processes than connections */
    assert_int_equal(parse("--url", u, "--conns", "3", "--duration", "1", "--procs", "8"), 0);
    assert_int_equal(cfg.procs, 3);
}

/* Token auth (issue #16): --jwt-alg and --jwt-key together, exp, claims. */
static void test_jwt(void **state)
{
    (void)state;
    const char *base[] = {"--url", "ws://127.0.0.1:1/", "--conns", "1", "--duration", "1"};
#define BASE base[0], base[1], base[2], base[3], base[4], base[5]
    assert_int_equal(parse(BASE), 0);
    assert_int_equal(cfg.jwt_alg, 0);
    assert_int_equal(cfg.jwt_exp, 3600);
    assert_null(cfg.tokens);
    assert_int_equal(parse(BASE, "--jwt-alg", "ES256", "--jwt-key", "k.pem", "--jwt-exp=30",
                           "--jwt-aud", "app", "--jwt-iss", "https://idp"),
                     0);
    assert_int_equal(cfg.jwt_alg, WSP_JWT_ES256);
    assert_string_equal(cfg.jwt_key, "k.pem");
    assert_int_equal(cfg.jwt_exp, 30);
    assert_string_equal(cfg.jwt_aud, "app");
    assert_string_equal(cfg.jwt_iss, "https://idp");
    assert_error(parse(BASE, "--jwt-alg", "none", "--jwt-key", "k"), "--jwt-alg");
    assert_error(parse(BASE, "--jwt-alg", "HS256"), "--jwt-key");
    assert_error(parse(BASE, "--jwt-key", "k"), "--jwt-alg");
    assert_error(parse(BASE, "--jwt-exp", "0"), "--jwt-exp");
    assert_error(parse(BASE, "--jwt-aud", "a\"b"), "--jwt-aud");
    assert_error(parse(BASE, "--jwt-iss", ""), "--jwt-iss");
    assert_error(parse(BASE, "--jwt-nope", "x"), "--jwt-nope");
#undef BASE
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),    cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_help),        cmocka_unit_test(test_required),
        cmocka_unit_test(test_bad_numbers), cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_bad_sources), cmocka_unit_test(test_machine_limits),
        cmocka_unit_test(test_jwt),         cmocka_unit_test(test_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
