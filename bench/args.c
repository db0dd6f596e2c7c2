#include "args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "stats.h"

const char wsp_args_usage[] =
    "usage: wspush-bench --url ws://HOST:PORT/PATH --conns N --duration S [options]\n"
    "  --procs P              worker processes (default: one per 15,000 connections)\n"
    "  --sources FIRST-LAST   source IPv4 range, <= 1,000 connections each (default 127.1.0.1-)\n"
    "  --concurrency K        handshakes in flight per process (default 256)\n"
    "  --rate R               new connections per second, all processes (default 0 = max)\n"
    "  --report-interval SEC  seconds between reports (default 10)\n"
    "  --handshake-timeout S  connect + upgrade deadline, counted as timeout (default 10)\n"
    "  --retries N            connect retries with backoff (default 5)\n"
    "  --coalesce-us US       once connected, wait US after a small batch of events so the\n"
    "                         next one is bigger: fewer wake-ups per message (default 1000,\n"
    "                         0 = off; receive times are taken after the wait)\n"
    "  --io-uring on|off      receive the open connections' data of each epoll batch with\n"
    "                         one io_uring submission instead of a recv() each (default off)\n"
    "  --expect-broadcasts N  the server sends broadcasts seq 1..N during the run: each one a\n"
    "                         connection was open for and did not get counts as missing,\n"
    "                         also one that no connection got (default: the seqs received)\n"
    "  --json FILE            write the final report, per-broadcast table and config\n"
    "  --status-file FILE     rewrite key=value progress every 0.25 s (for scripts)\n"
    "  --quiet                only the final report\n"
    "  --jwt-alg ALG          send each connection its own JWT (sub bench-<slot>) in\n"
    "                         Authorization: Bearer; ALG HS256..ES384; all minted before\n"
    "                         the ramp, so signing is not in the setup rate\n"
    "  --jwt-key FILE         with --jwt-alg: the HS secret, or the RS/ES private key\n"
    "  --jwt-exp SECONDS      the tokens' exp, from the mint (default 3600)\n"
    "  --jwt-aud AUD, --jwt-iss ISS  claims to add (default none)\n"
    "  --framed               offer the wspush.v1 subprotocol: a hello, then every message as\n"
    "                         {\"ch\",\"seq\",\"data\"} (seq and the tick's time are read from "
    "it)\n"
    "  --recover K            implies --framed: each connection closes once it has broadcast\n"
    "                         K and, on SIGHUP to the bench, comes back with\n"
    "                         ?since=time:<last seq>&epoch=<its epoch>; the report counts\n"
    "                         recovered / not recovered, the replay and its time\n"
    "  --deflate              offer permessage-deflate (as browsers do) and inflate every\n"
    "                         compressed message, so CPU and latency include the client's side\n"
    "wss:// (TLS):\n"
    "  --tls-ca FILE          trust the CA in FILE for the server's certificate\n"
    "  --tls-insecure         do not check the server's certificate\n"
    "  --tls-version 1.2|1.3  the TLS version offered (default 1.3)\n"
    "  --tls-resume on|off    a new connection resumes the worker's latest session ticket\n"
    "                         (default on; off: every handshake is a full one)\n"
    "SIGINT stops early with the final report; SIGUSR2 stops opening connections.\n"
    "Exit status: 0 when every connection got every broadcast it was open for, once, with no\n"
    "error; 1 otherwise (FAIL: missing, duplicate or unexpected broadcasts, or errors, with\n"
    "the missing seqs); 2 for bad arguments. Open for broadcast k: upgraded before the\n"
    "server's \"time\" of k (or having received an earlier broadcast) and still open at the\n"
    "end, or a gap between two broadcasts received (docs/BENCHMARKS.md section 2).\n";

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    for (char *c = err; *c; c++) /* echoed input must not break the one line */
        if ((unsigned char)*c < ' ')
            *c = '?';
    return -EINVAL;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_num(const char *s, double *out)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_ipv4(const char *s, size_t len, uint32_t *out)
{
    char buf[INET_ADDRSTRLEN];
    if (len == 0 || len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    *out = ntohl(a.s_addr);
    return 0;
}

int wsp_args_parse_range(const char *s, uint32_t *first, uint32_t *last)
{
    const char *dash = strchr(s, '-');
    size_t n1 = dash ? (size_t)(dash - s) : strlen(s);
    if (parse_ipv4(s, n1, first) < 0)
        return -EINVAL;
    if (dash == NULL) {
        *last = *first;
        return 0;
    }
    if (parse_ipv4(dash + 1, strlen(dash + 1), last) < 0 || *last < *first)
        return -EINVAL;
    return 0;
}

int wsp_args_parse_url(wsp_bench_cfg_t *cfg, const char *url)
{
    int tls = strncmp(url, "wss://", 6) == 0;
    if ((!tls && strncmp(url, "ws://", 5) != 0) || strlen(url) >= sizeof(cfg->url))
        return -EINVAL;
    const char *h = url + (tls ? 6 : 5);
    size_t hl = strcspn(h, ":/");
    if (hl == 0 || hl >= sizeof(cfg->host))
        return -EINVAL;
    if (hl == 9 && memcmp(h, "localhost", 9) == 0)
        cfg->dst_addr = 0x7F000001u;
    else if (parse_ipv4(h, hl, &cfg->dst_addr) < 0)
        return -EINVAL;
    memcpy(cfg->host, h, hl);
    cfg->host[hl] = '\0';
    const char *rest = h + hl;
    cfg->port = tls ? 443 : 80;
    if (*rest == ':') {
        rest++;
        size_t pl = strspn(rest, "0123456789");
        if (pl == 0 || pl > 5 || (rest[pl] != '\0' && rest[pl] != '/'))
            return -EINVAL;
        unsigned long p = strtoul(rest, NULL, 10);
        if (p == 0 || p > 65535)
            return -EINVAL;
        cfg->port = (uint16_t)p;
        rest += pl;
    }
    if (*rest == '\0')
        rest = "/";
    if (strlen(rest) >= sizeof(cfg->path))
        return -EINVAL;
    for (const char *c = rest; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7F) /* no request splitting */
            return -EINVAL;
    strcpy(cfg->path, rest);
    strcpy(cfg->url, url);
    cfg->tls = tls;
    return 0;
}

/* A claim value written into JSON as is: no quote, backslash or control character. */
static int claim_ok(const char *v)
{
    for (const char *c = v; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < ' ')
            return 0;
    return *v != '\0' && strlen(v) < 256;
}

/* The --jwt-* options (issue #16). 0 or -EINVAL with err. */
static int args_jwt(wsp_bench_cfg_t *cfg, const char *name, const char *v, char *err, size_t errlen)
{
    uint64_t u;
    if (strcmp(name, "--jwt-alg") == 0) {
        int alg = wsp_jwt_alg_parse(v);
        if (alg < 0)
            return fail(err, errlen,
                        "--jwt-alg must be HS256..HS512, RS256..RS512, ES256 or "
                        "ES384, got '%s'",
                        v);
        cfg->jwt_alg = alg;
    } else if (strcmp(name, "--jwt-key") == 0) {
        cfg->jwt_key = v;
    } else if (strcmp(name, "--jwt-exp") == 0) {
        if (parse_u64(v, &u) < 0 || u < 1 || u > 10 * 365 * 86400u)
            return fail(err, errlen, "--jwt-exp must be 1..315360000 seconds, got '%s'", v);
        cfg->jwt_exp = (unsigned)u;
    } else if (strcmp(name, "--jwt-aud") == 0 || strcmp(name, "--jwt-iss") == 0) {
        if (!claim_ok(v))
            return fail(err, errlen, "%s wants 1..255 bytes without quotes or backslashes", name);
        *(name[6] == 'a' ? &cfg->jwt_aud : &cfg->jwt_iss) = v;
    } else {
        return fail(err, errlen, "unknown option '%s' (see --help)", name);
    }
    return 0;
}

static void addr_str(uint32_t a, char *buf, size_t len)
{
    struct in_addr in = {htonl(a)};
    if (inet_ntop(AF_INET, &in, buf, (socklen_t)len) == NULL)
        snprintf(buf, len, "?");
}

int wsp_args_parse(wsp_bench_cfg_t *cfg, int argc, char **argv, const wsp_args_limits_t *lim,
                   char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->concurrency = 256;
    cfg->report_interval = 10;
    cfg->handshake_timeout = 10;
    cfg->retries = 5;
    cfg->coalesce_us = 1000;
    cfg->src_first = 0x7F010001u; /* 127.1.0.1 */
    cfg->src_last = 0x7F01FFFEu;  /* 127.1.255.254 */
    cfg->expect_bcasts = -1;
    cfg->jwt_exp = 3600;
    cfg->recover_at = -1;
    cfg->tls_version = 0x0304;
    cfg->tls_resume = 1;
    int have_url = 0, have_conns = 0, have_duration = 0;
    uint64_t procs = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (strcmp(a, "--quiet") == 0) {
            cfg->quiet = 1;
            continue;
        }
        if (strcmp(a, "--framed") == 0) {
            cfg->framed = 1;
            continue;
        }
        if (strcmp(a, "--tls-insecure") == 0) {
            cfg->tls_insecure = 1;
            continue;
        }
        if (strcmp(a, "--deflate") == 0) { /* permessage-deflate (issue #19) */
            cfg->deflate = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return fail(err, errlen, "unexpected argument '%s' (see --help)", a);
        /* every other option takes a value: --opt VALUE or --opt=VALUE */
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        char name[32];
        if (nl >= sizeof(name))
            return fail(err, errlen, "unknown option '%s' (see --help)", a);
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (v == NULL)
            return fail(err, errlen, "%s needs a value", name);
        uint64_t u;
        double d;
        if (strcmp(name, "--url") == 0) {
            if (wsp_args_parse_url(cfg, v) < 0)
                return fail(err, errlen,
                            "malformed --url '%s': want ws:// or wss://IPV4[:PORT][/PATH] (or "
                            "localhost)",
                            v);
            have_url = 1;
        } else if (strcmp(name, "--conns") == 0) {
            if (parse_u64(v, &u) < 0 || u < 1 || u > 10000000)
                return fail(err, errlen, "--conns must be an integer from 1 to 10000000, got '%s'",
                            v);
            cfg->conns = u;
            have_conns = 1;
        } else if (strcmp(name, "--duration") == 0) {
            if (parse_num(v, &d) < 0 || d <= 0 || d > 7 * 86400)
                return fail(err, errlen, "--duration must be seconds in (0, 604800], got '%s'", v);
            cfg->duration = d;
            have_duration = 1;
        } else if (strcmp(name, "--procs") == 0) {
            if (parse_u64(v, &u) < 0 || u < 1 || u > 1024)
                return fail(err, errlen, "--procs must be an integer from 1 to 1024, got '%s'", v);
            procs = u;
        } else if (strcmp(name, "--sources") == 0) {
            if (wsp_args_parse_range(v, &cfg->src_first, &cfg->src_last) < 0)
                return fail(err, errlen,
                            "malformed --sources '%s': want FIRST-LAST IPv4 addresses, "
                            "FIRST <= LAST",
                            v);
        } else if (strcmp(name, "--concurrency") == 0) {
            if (parse_u64(v, &u) < 0 || u < 1 || u > 10000)
                return fail(err, errlen,
                            "--concurrency must be an integer from 1 to 10000, got '%s'", v);
            cfg->concurrency = (unsigned)u;
        } else if (strcmp(name, "--rate") == 0) {
            if (parse_num(v, &d) < 0 || d < 0)
                return fail(err, errlen, "--rate must be >= 0 connections per second, got '%s'", v);
            cfg->rate = d;
        } else if (strcmp(name, "--report-interval") == 0) {
            if (parse_num(v, &d) < 0 || d < 0.1 || d > 86400)
                return fail(err, errlen,
                            "--report-interval must be seconds in [0.1, 86400], got '%s'", v);
            cfg->report_interval = d;
        } else if (strcmp(name, "--handshake-timeout") == 0) {
            if (parse_num(v, &d) < 0 || d < 0.1 || d > 3600)
                return fail(err, errlen,
                            "--handshake-timeout must be seconds in [0.1, 3600], got '%s'", v);
            cfg->handshake_timeout = d;
        } else if (strcmp(name, "--retries") == 0) {
            if (parse_u64(v, &u) < 0 || u > 20)
                return fail(err, errlen, "--retries must be an integer from 0 to 20, got '%s'", v);
            cfg->retries = (unsigned)u;
        } else if (strcmp(name, "--coalesce-us") == 0) {
            if (parse_u64(v, &u) < 0 || u > 100000)
                return fail(err, errlen,
                            "--coalesce-us must be an integer from 0 to 100000, got '%s'", v);
            cfg->coalesce_us = (unsigned)u;
        } else if (strcmp(name, "--io-uring") == 0) {
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
                return fail(err, errlen, "--io-uring must be on or off, got '%s'", v);
            cfg->io_uring = strcmp(v, "on") == 0;
        } else if (strcmp(name, "--expect-broadcasts") == 0) {
            if (parse_u64(v, &u) < 0 || u >= WSP_SEQ_MAX)
                return fail(err, errlen,
                            "--expect-broadcasts must be an integer from 0 to %d, got '%s'",
                            WSP_SEQ_MAX - 1, v);
            cfg->expect_bcasts = (int64_t)u;
        } else if (strncmp(name, "--jwt-", 6) == 0) {
            if (args_jwt(cfg, name, v, err, errlen) < 0)
                return -EINVAL;
        } else if (strcmp(name, "--recover") == 0) {
            if (parse_u64(v, &u) < 0 || u < 1 || u >= WSP_SEQ_MAX)
                return fail(err, errlen, "--recover must be a broadcast from 1 to %d, got '%s'",
                            WSP_SEQ_MAX - 1, v);
            cfg->recover_at = (int64_t)u;
            cfg->framed = 1;
        } else if (strcmp(name, "--tls-ca") == 0) {
            cfg->tls_ca = v;
        } else if (strcmp(name, "--tls-version") == 0) {
            if (strcmp(v, "1.2") != 0 && strcmp(v, "1.3") != 0)
                return fail(err, errlen, "--tls-version must be 1.2 or 1.3, got '%s'", v);
            cfg->tls_version = strcmp(v, "1.2") == 0 ? 0x0303 : 0x0304;
        } else if (strcmp(name, "--tls-resume") == 0) {
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
                return fail(err, errlen, "--tls-resume must be on or off, got '%s'", v);
            cfg->tls_resume = strcmp(v, "on") == 0;
        } else if (strcmp(name, "--json") == 0) {
            cfg->json = v;
        } else if (strcmp(name, "--status-file") == 0) {
            cfg->status_file = v;
        } else {
            return fail(err, errlen, "unknown option '%s' (see --help)", name);
        }
    }
    if ((cfg->jwt_alg != 0) != (cfg->jwt_key != NULL))
        return fail(err, errlen, "--jwt-alg and --jwt-key go together");
    if (!have_url || !have_conns || !have_duration)
        return fail(err, errlen, "missing %s (see --help)",
                    !have_url     ? "--url"
                    : !have_conns ? "--conns"
                                  : "--duration");
    if (cfg->tls && !cfg->tls_ca == !cfg->tls_insecure)
        return fail(err, errlen, "wss:// wants exactly one of --tls-ca FILE and --tls-insecure");
    if (!cfg->tls && (cfg->tls_ca || cfg->tls_insecure))
        return fail(err, errlen, "--tls-ca and --tls-insecure are for wss:// URLs");
    if (cfg->tls && cfg->io_uring)
        return fail(err, errlen, "--io-uring on reads ciphertext: not with wss://");

    if (procs == 0)
        procs = (cfg->conns + WSP_ARGS_CONNS_PER_PROC - 1) / WSP_ARGS_CONNS_PER_PROC;
    if (procs > 1024)
        return fail(err, errlen, "%llu connections need more than 1024 processes",
                    (unsigned long long)cfg->conns);
    if (procs > cfg->conns)
        procs = cfg->conns;
    cfg->procs = (unsigned)procs;

    uint64_t per_proc = (cfg->conns + procs - 1) / procs;
    if (lim->nofile && per_proc + 64 > lim->nofile)
        return fail(err, errlen,
                    "%llu connections per process exceed the open-file limit %llu: use --procs "
                    ">= %llu",
                    (unsigned long long)per_proc, (unsigned long long)lim->nofile,
                    (unsigned long long)((cfg->conns + lim->nofile - 65) / (lim->nofile - 64)));

    uint64_t nsrc = (uint64_t)cfg->src_last - cfg->src_first + 1;
    uint64_t need = (cfg->conns + WSP_ARGS_PER_SOURCE - 1) / WSP_ARGS_PER_SOURCE;
    if (need > nsrc) {
        char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
        addr_str(cfg->src_first, a, sizeof(a));
        addr_str(cfg->src_last, b, sizeof(b));
        return fail(err, errlen,
                    "--sources %s-%s has %llu addresses; %llu connections need %llu (<= %d each)",
                    a, b, (unsigned long long)nsrc, (unsigned long long)cfg->conns,
                    (unsigned long long)need, WSP_ARGS_PER_SOURCE);
    }

    uint64_t per = WSP_ARGS_BYTES_PER_CONN + (cfg->tls ? WSP_ARGS_TLS_BYTES_PER_CONN : 0);
    if (lim->mem_available && cfg->conns * per > lim->mem_available)
        return fail(err, errlen,
                    "%llu connections need ~%.1f GiB (%llu B per loopback pair%s), MemAvailable "
                    "is %.1f GiB",
                    (unsigned long long)cfg->conns, (double)cfg->conns * per / 1073741824.0,
                    (unsigned long long)per, cfg->tls ? " with its TLS client" : "",
                    (double)lim->mem_available / 1073741824.0);
    return 0;
}
