#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "jwt.h"
#include "log.h"

void wsp_config_usage(FILE *f)
{
    fprintf(f,
            "usage: wspush [options]\n"
            "  --threads N              shards (worker threads); default: online CPUs\n"
            "  --port PORT              listen port; 0 = ephemeral (printed); default 8080\n"
            "  --bind ADDR              numeric IPv4/IPv6 address; default 0.0.0.0\n"
            "  --path PATH              WebSocket endpoint; other paths get 404; default /\n"
            "  --interval SECONDS       broadcast the time every SECONDS, aligned to the wall\n"
            "                           clock; 0 = only on SIGUSR1; default 60\n"
            "  --max-conns N            connections per process; default: the nofile limit\n"
            "  --max-pending BYTES      queued bytes per connection before closing it with\n"
            "                           1008; default 65536\n"
            "  --handshake-timeout SEC  close connections not upgraded in time; default 10\n"
            "  --log-level LEVEL        error, warn, info or debug; default info\n"
            "  --procs P                worker processes under a supervisor, all on the same\n"
            "                           port (SO_REUSEPORT); default 1 (no supervisor)\n"
            "  --redis URL              redis://HOST:PORT[/DB]: broadcast what is published on\n"
            "                           --channel (every worker subscribes); default off\n"
            "  --channel NAME           Redis channel; default wspush\n"
            "  --admin ADDR:PORT|off    admin HTTP API (publish, metrics, healthz, stats);\n"
            "                           default 127.0.0.1:8081\n"
            "  --admin-token-file FILE  require Authorization: Bearer <first line of FILE>\n"
            "                           for POST /publish\n"
            "  --tcp-keepalive SECONDS  TCP keepalive idle time; 0 = off; default 120\n"
            "  --ping-interval SECONDS  WebSocket ping to every connection once per interval;\n"
            "                           no answer by the next round closes it; default 0 = off\n"
            "  --drain-seconds SECONDS  on SIGTERM, spread close 1001 over this long; default 10\n"
            "  --io-uring auto|on|off   broadcast with batched io_uring sends; auto falls back\n"
            "                           to one send per connection where io_uring is\n"
            "                           unavailable, on refuses to start; default auto\n");
    /* Two strings: C99 promises only 4095 bytes of one literal. */
    fprintf(f,
            "  --sndbuf BYTES           kernel send buffer of every connection (SO_SNDBUF,\n"
            "                           doubled by the kernel); 0 = autotuning; default 65536\n"
            "  --tcp-user-timeout SEC   a peer that leaves sent data unacknowledged (or its\n"
            "                           window closed) this long is dropped; also keepalive's\n"
            "                           give-up time; 0 = off; default: keepalive's own\n"
            "                           (SEC + 4 x min(SEC, 30) of --tcp-keepalive), else 240\n"
            "  --auth-jwt-alg ALG       require a JWT at the upgrade, signed with ALG: HS256,\n"
            "                           HS384, HS512, RS256, RS384, RS512, ES256 or ES384\n"
            "  --auth-jwt-key FILE      the HS secret or the RS/ES PEM public key (re-read on\n"
            "                           SIGHUP)\n"
            "  --auth-jwt-aud AUD       tokens must name AUD in \"aud\"; default: not checked\n"
            "  --auth-jwt-iss ISS       tokens must have \"iss\" ISS; default: not checked\n"
            "  --auth-leeway SECONDS    clock skew allowed on exp, nbf and iat; default 5\n"
            "  --history-size N         messages kept per channel for recovery (wspush.v1\n"
            "                           clients resume with ?since=); 0 = off; default 0\n"
            "  --history-ttl SECONDS    a message stays recoverable this long; 0 = no limit;\n"
            "                           default 600\n"
            "  --history-max-bytes B    memory for all history of the process; default 67108864\n"
            "  --tls-cert FILE          PEM certificate (chain allowed): the WebSocket port\n"
            "                           speaks TLS only (wss://); needs --tls-key\n"
            "  --tls-key FILE           PEM private key of --tls-cert; SIGHUP reloads both\n"
            "  --tls-max-handshakes N   TLS handshakes in progress per process; at N, new\n"
            "                           connections wait in the listen backlog; default 1024\n"
            "  --tls-ktls auto|off      kernel TLS for sending where the kernel has it;\n"
            "                           default auto\n"
            "  --deflate on|off         permessage-deflate with clients that offer it: each\n"
            "                           broadcast compressed once; default on\n"
            "  --deflate-min-bytes N    payloads under N bytes go uncompressed; default 256\n"
            "  --upgrade-timeout SEC    SIGUSR2 (live upgrade): how long the new binary may\n"
            "                           take to be ready before this one keeps serving;\n"
            "                           default 10\n"
            "  --help, --version\n"
            "signals: SIGUSR1 broadcasts now; SIGHUP re-reads the --auth-jwt-key file and the\n"
            "TLS certificate and key; SIGUSR2 hands every connection to the binary at this one's\n"
            "path, started again; SIGINT/SIGTERM close every connection with 1001 and exit 0.\n");
}

static int config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Parses a whole decimal number in [lo, hi]; 0 or -EINVAL. */
static int config_num(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

int wsp_config_token_ok(const char *t, size_t len)
{
    if (len == 0 || len > WSP_CONFIG_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

int wsp_config_read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    /* Enough for a 256-byte token, a CR and generous trailing blanks; more is refused. */
    char line[WSP_CONFIG_TOKEN_MAX + 64];
    size_t n = fread(line, 1, sizeof line, f);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    size_t len = 0;
    while (len < n && line[len] != '\n')
        len++;
    if (err == 0 && len == sizeof line)
        err = -EINVAL; /* no newline in reach: the first line is too long */
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r' ||
                       line[len - 1] == '\v' || line[len - 1] == '\f'))
        len--;
    if (err == 0 && !wsp_config_token_ok(line, len))
        err = -EINVAL;
    if (err == 0 && len + 1 > cap)
        err = -ENOBUFS;
    if (err == 0) {
        memcpy(out, line, len);
        out[len] = '\0';
    }
    OPENSSL_cleanse(line, sizeof line); /* the secret does not linger on the stack */
    return err;
}

int wsp_config_parse_redis_url(wsp_config_t *cfg, const char *url)
{
    static const char scheme[] = "redis://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -EINVAL;
    const char *host = url + sizeof(scheme) - 1;
    const char *end = host + strcspn(host, ":/");
    size_t hlen = (size_t)(end - host);
    if (hlen == 0 || hlen >= sizeof(cfg->redis_host))
        return -EINVAL;
    uint64_t port = 6379, db = 0;
    const char *p = end;
    char num[16];
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        if (n == 0 || n >= sizeof(num))
            return -EINVAL;
        memcpy(num, p + 1, n);
        num[n] = '\0';
        if (config_num(num, 1, 65535, &port) != 0)
            return -EINVAL;
        p += 1 + n;
    }
    if (*p == '/' && p[1] != '\0') {
        if (config_num(p + 1, 0, 1000, &db) != 0)
            return -EINVAL;
    } else if (*p == '/' || *p == '\0') {
        /* no database: 0 */
    } else {
        return -EINVAL;
    }
    memcpy(cfg->redis_host, host, hlen);
    cfg->redis_host[hlen] = '\0';
    cfg->redis_port = (int)port;
    cfg->redis_db = (int)db;
    return 0;
}

int wsp_config_parse_hostport(const char *s, char *host, size_t hostcap, int *port)
{
    if (strcmp(s, "off") == 0) {
        host[0] = '\0';
        *port = 0;
        return 0;
    }
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -EINVAL;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') { /* [::1]:8081 */
        h++;
        hlen -= 2;
    }
    uint64_t p;
    if (hlen == 0 || hlen >= hostcap || config_num(colon + 1, 0, 65535, &p) != 0)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

unsigned wsp_config_keepalive_giveup(unsigned keepalive)
{
    if (keepalive == 0)
        return WSP_CONFIG_USER_TIMEOUT_DEFAULT;
    return keepalive + 4 * (keepalive < 30 ? keepalive : 30);
}

/* Copies s into out[0..cap) for option name; -EINVAL (with err) when empty or too long. */
static int config_str(char *out, size_t cap, const char *name, const char *s, char *err,
                      size_t errlen)
{
    size_t n = strlen(s);
    if (n == 0 || n >= cap)
        return config_fail(err, errlen, "%s wants 1..%zu bytes", name, cap - 1);
    memcpy(out, s, n + 1);
    return 0;
}

/* One token auth option (issue #16); opt is its place among them: 0 alg, 1 key, 2 aud, 3 iss,
 * 4 leeway. Only the algorithm and the leeway are echoed in errors. */
static int config_auth(wsp_config_t *cfg, int opt, const char *v, char *err, size_t errlen)
{
    uint64_t n;
    switch (opt) {
    case 0: { /* --auth-jwt-alg */
        int alg = wsp_jwt_alg_parse(v);
        if (alg < 0)
            return config_fail(err, errlen,
                               "--auth-jwt-alg wants HS256, HS384, HS512, RS256, RS384, RS512, "
                               "ES256 or ES384, got '%s'",
                               v);
        cfg->auth_jwt_alg = alg;
        return 0;
    }
    case 1:
        return config_str(cfg->auth_jwt_key, sizeof(cfg->auth_jwt_key), "--auth-jwt-key", v, err,
                          errlen);
    case 2:
        return config_str(cfg->auth_jwt_aud, sizeof(cfg->auth_jwt_aud), "--auth-jwt-aud", v, err,
                          errlen);
    case 3:
        return config_str(cfg->auth_jwt_iss, sizeof(cfg->auth_jwt_iss), "--auth-jwt-iss", v, err,
                          errlen);
    default:
        if (config_num(v, 0, WSP_JWT_LEEWAY_MAX, &n) != 0)
            return config_fail(err, errlen, "--auth-leeway wants 0..%d seconds, got '%s'",
                               WSP_JWT_LEEWAY_MAX, v);
        cfg->auth_leeway = (unsigned)n;
        return 0;
    }
}

/* The auth options come together: an algorithm needs a key file and the other way round, and
 * aud and iss mean nothing without them (a leeway alone is harmless: it has a default). */
static int config_auth_check(const wsp_config_t *cfg, char *err, size_t errlen)
{
    int any = cfg->auth_jwt_key[0] || cfg->auth_jwt_aud[0] || cfg->auth_jwt_iss[0];
    if (cfg->auth_jwt_alg && !cfg->auth_jwt_key[0])
        return config_fail(err, errlen, "--auth-jwt-alg needs --auth-jwt-key FILE");
    if (!cfg->auth_jwt_alg && any)
        return config_fail(err, errlen,
                           "--auth-jwt-key, --auth-jwt-aud and --auth-jwt-iss "
                           "need --auth-jwt-alg");
    return 0;
}

int wsp_config_parse(wsp_config_t *cfg, int argc, char **argv, char *err, size_t errlen)
{
    enum {
        OPT_THREADS = 256,
        OPT_PORT,
        OPT_BIND,
        OPT_PATH,
        OPT_INTERVAL,
        OPT_MAX_CONNS,
        OPT_MAX_PENDING,
        OPT_HS_TIMEOUT,
        OPT_LOG_LEVEL,
        OPT_HELP,
        OPT_VERSION,
        OPT_PROCS,
        OPT_REDIS,
        OPT_CHANNEL,
        OPT_WORKER_FD,
        OPT_WORKER_ID,
        OPT_ADMIN,
        OPT_ADMIN_TOKEN_FILE,
        OPT_TCP_KEEPALIVE,
        OPT_PING_INTERVAL,
        OPT_DRAIN_SECONDS,
        OPT_IO_URING,
        /* #20 reliability */
        OPT_SNDBUF,
        OPT_TCP_USER_TIMEOUT,
        /* issue #16: token auth */
        OPT_AUTH_JWT_ALG,
        OPT_AUTH_JWT_KEY,
        OPT_AUTH_JWT_AUD,
        OPT_AUTH_JWT_ISS,
        OPT_AUTH_LEEWAY,
        /* issue #17 */
        OPT_HISTORY_SIZE,
        OPT_HISTORY_TTL,
        OPT_HISTORY_MAX_BYTES,
        OPT_WORKER_EPOCH,
        OPT_WORKER_RESTART,
        /* TLS (issue #18) */
        OPT_TLS_CERT,
        OPT_TLS_KEY,
        OPT_TLS_MAX_HANDSHAKES,
        OPT_TLS_KTLS,
        /* permessage-deflate (issue #19) */
        OPT_DEFLATE,
        OPT_DEFLATE_MIN_BYTES,
        OPT_UPGRADE_TIMEOUT, /* #20 */
    };
    static const struct option opts[] = {
        {"threads", required_argument, NULL, OPT_THREADS},
        {"port", required_argument, NULL, OPT_PORT},
        {"bind", required_argument, NULL, OPT_BIND},
        {"path", required_argument, NULL, OPT_PATH},
        {"interval", required_argument, NULL, OPT_INTERVAL},
        {"max-conns", required_argument, NULL, OPT_MAX_CONNS},
        {"max-pending", required_argument, NULL, OPT_MAX_PENDING},
        {"handshake-timeout", required_argument, NULL, OPT_HS_TIMEOUT},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"procs", required_argument, NULL, OPT_PROCS},
        {"redis", required_argument, NULL, OPT_REDIS},
        {"channel", required_argument, NULL, OPT_CHANNEL},
        {"worker-fd", required_argument, NULL, OPT_WORKER_FD}, /* internal: set by --procs */
        {"worker-id", required_argument, NULL, OPT_WORKER_ID}, /* internal: set by --procs */
        {"admin", required_argument, NULL, OPT_ADMIN},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE},
        {"tcp-keepalive", required_argument, NULL, OPT_TCP_KEEPALIVE},
        {"ping-interval", required_argument, NULL, OPT_PING_INTERVAL},
        {"drain-seconds", required_argument, NULL, OPT_DRAIN_SECONDS},
        {"io-uring", required_argument, NULL, OPT_IO_URING},
        {"sndbuf", required_argument, NULL, OPT_SNDBUF},
        {"tcp-user-timeout", required_argument, NULL, OPT_TCP_USER_TIMEOUT},
        {"auth-jwt-alg", required_argument, NULL, OPT_AUTH_JWT_ALG},
        {"auth-jwt-key", required_argument, NULL, OPT_AUTH_JWT_KEY},
        {"auth-jwt-aud", required_argument, NULL, OPT_AUTH_JWT_AUD},
        {"auth-jwt-iss", required_argument, NULL, OPT_AUTH_JWT_ISS},
        {"auth-leeway", required_argument, NULL, OPT_AUTH_LEEWAY},
        {"history-size", required_argument, NULL, OPT_HISTORY_SIZE},
        {"history-ttl", required_argument, NULL, OPT_HISTORY_TTL},
        {"history-max-bytes", required_argument, NULL, OPT_HISTORY_MAX_BYTES},
        {"worker-epoch", required_argument, NULL, OPT_WORKER_EPOCH}, /* internal: --procs */
        {"worker-restart", no_argument, NULL, OPT_WORKER_RESTART},   /* internal: --procs */
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-max-handshakes", required_argument, NULL, OPT_TLS_MAX_HANDSHAKES},
        {"tls-ktls", required_argument, NULL, OPT_TLS_KTLS},
        {"deflate", required_argument, NULL, OPT_DEFLATE},
        {"deflate-min-bytes", required_argument, NULL, OPT_DEFLATE_MIN_BYTES},
        {"upgrade-timeout", required_argument, NULL, OPT_UPGRADE_TIMEOUT},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    memset(cfg, 0, sizeof(*cfg));
    cfg->threads = cpus > 0 ? (unsigned)cpus : 1;
    if (cfg->threads > WSP_CONFIG_MAX_THREADS)
        cfg->threads = WSP_CONFIG_MAX_THREADS;
    cfg->port = 8080;
    strcpy(cfg->bind, "0.0.0.0");
    strcpy(cfg->path, "/");
    cfg->interval = 60;
    cfg->max_pending = 65536;
    cfg->handshake_timeout = 10;
    cfg->log_level = WSP_LOG_INFO;
    cfg->procs = 1;
    cfg->worker_fd = -1;
    strcpy(cfg->channel, "wspush");
    strcpy(cfg->admin_host, "127.0.0.1");
    cfg->admin_port = 8081;
    cfg->tcp_keepalive = 120;
    cfg->drain_seconds = 10;
    cfg->sndbuf = WSP_CONFIG_SNDBUF_DEFAULT;
    int user_timeout_set = 0;
    cfg->auth_leeway = 5;
    cfg->history_ttl = 600;
    cfg->history_max_bytes = 64u << 20;
    cfg->tls_max_handshakes = 1024;
    cfg->deflate = 1;
    cfg->deflate_min_bytes = WSP_CONFIG_DEFLATE_MIN_BYTES;
    cfg->upgrade_timeout = 10;

    optind = 1; /* parse may run more than once in a process (tests) */
    opterr = 0; /* one line of our own instead of getopt's */
    for (;;) {
        int ix = 0;
        int c = getopt_long(argc, argv, ":", opts, &ix);
        if (c == -1)
            break;
        uint64_t v;
        switch (c) {
        case OPT_THREADS:
            if (config_num(optarg, 1, WSP_CONFIG_MAX_THREADS, &v) != 0)
                return config_fail(err, errlen, "--threads wants 1..%d, got '%s'",
                                   WSP_CONFIG_MAX_THREADS, optarg);
            cfg->threads = (unsigned)v;
            break;
        case OPT_PORT:
            if (config_num(optarg, 0, 65535, &v) != 0)
                return config_fail(err, errlen, "--port wants 0..65535, got '%s'", optarg);
            cfg->port = (int)v;
            break;
        case OPT_BIND:
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(cfg->bind))
                return config_fail(err, errlen, "--bind wants a numeric address, got '%s'", optarg);
            strcpy(cfg->bind, optarg);
            break;
        case OPT_PATH:
            if (optarg[0] != '/' || strlen(optarg) >= sizeof(cfg->path) ||
                strpbrk(optarg, "? \t\r\n") != NULL)
                return config_fail(err, errlen, "--path wants /something without '?', got '%s'",
                                   optarg);
            strcpy(cfg->path, optarg);
            break;
        case OPT_INTERVAL:
            if (config_num(optarg, 0, 86400, &v) != 0)
                return config_fail(err, errlen, "--interval wants 0..86400 seconds, got '%s'",
                                   optarg);
            cfg->interval = (unsigned)v;
            break;
        case OPT_MAX_CONNS:
            if (config_num(optarg, 1, UINT32_MAX, &v) != 0)
                return config_fail(err, errlen, "--max-conns wants 1..%u, got '%s'", UINT32_MAX,
                                   optarg);
            cfg->max_conns = v;
            break;
        case OPT_MAX_PENDING:
            if (config_num(optarg, 64, 1u << 30, &v) != 0)
                return config_fail(err, errlen, "--max-pending wants 64..%u bytes, got '%s'",
                                   1u << 30, optarg);
            cfg->max_pending = v;
            break;
        case OPT_HS_TIMEOUT:
            if (config_num(optarg, 1, WSP_CONFIG_MAX_HANDSHAKE_TIMEOUT, &v) != 0)
                return config_fail(err, errlen, "--handshake-timeout wants 1..%d seconds, got '%s'",
                                   WSP_CONFIG_MAX_HANDSHAKE_TIMEOUT, optarg);
            cfg->handshake_timeout = (unsigned)v;
            break;
        case OPT_LOG_LEVEL: {
            int lv = wsp_log_level_parse(optarg);
            if (lv < 0)
                return config_fail(
                    err, errlen, "--log-level wants error, warn, info or debug, got '%s'", optarg);
            cfg->log_level = lv;
            break;
        }
        case OPT_PROCS:
            if (config_num(optarg, 1, 1024, &v) != 0)
                return config_fail(err, errlen, "--procs wants 1..1024, got '%s'", optarg);
            cfg->procs = (unsigned)v;
            break;
        case OPT_REDIS:
            if (wsp_config_parse_redis_url(cfg, optarg) != 0)
                return config_fail(err, errlen, "--redis wants redis://HOST:PORT[/DB], got '%s'",
                                   optarg);
            break;
        case OPT_CHANNEL:
            if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(cfg->channel))
                return config_fail(err, errlen, "--channel wants 1..%zu bytes, got '%s'",
                                   sizeof(cfg->channel) - 1, optarg);
            strcpy(cfg->channel, optarg);
            break;
        case OPT_WORKER_FD:
            if (config_num(optarg, 3, 65535, &v) != 0)
                return config_fail(err, errlen, "--worker-fd is internal, got '%s'", optarg);
            cfg->worker_fd = (int)v;
            break;
        case OPT_WORKER_ID:
            if (config_num(optarg, 0, 1023, &v) != 0)
                return config_fail(err, errlen, "--worker-id is internal, got '%s'", optarg);
            cfg->worker_id = (unsigned)v;
            break;
        case OPT_ADMIN:
            if (wsp_config_parse_hostport(optarg, cfg->admin_host, sizeof(cfg->admin_host),
                                          &cfg->admin_port) != 0)
                return config_fail(err, errlen, "--admin wants ADDR:PORT or off, got '%s'", optarg);
            break;
        case OPT_ADMIN_TOKEN_FILE: {
            int rv = wsp_config_read_token(optarg, cfg->admin_token, sizeof(cfg->admin_token));
            if (rv < 0)
                return config_fail(
                    err, errlen,
                    "--admin-token-file: cannot read a 1..256 byte token from '%s': %s", optarg,
                    rv == -EINVAL ? "empty or too long" : strerror(-rv));
            break;
        }
        case OPT_TCP_KEEPALIVE:
            if (config_num(optarg, 0, 86400, &v) != 0)
                return config_fail(err, errlen, "--tcp-keepalive wants 0..86400 seconds, got '%s'",
                                   optarg);
            cfg->tcp_keepalive = (unsigned)v;
            break;
        case OPT_PING_INTERVAL:
            if (config_num(optarg, 0, 3600, &v) != 0)
                return config_fail(err, errlen, "--ping-interval wants 0..3600 seconds, got '%s'",
                                   optarg);
            cfg->ping_interval = (unsigned)v;
            break;
        case OPT_DRAIN_SECONDS:
            if (config_num(optarg, 0, 3600, &v) != 0)
                return config_fail(err, errlen, "--drain-seconds wants 0..3600, got '%s'", optarg);
            cfg->drain_seconds = (unsigned)v;
            break;
        case OPT_IO_URING:
            if (strcmp(optarg, "auto") == 0)
                cfg->io_uring = WSP_CONFIG_URING_AUTO;
            else if (strcmp(optarg, "on") == 0)
                cfg->io_uring = WSP_CONFIG_URING_ON;
            else if (strcmp(optarg, "off") == 0)
                cfg->io_uring = WSP_CONFIG_URING_OFF;
            else
                return config_fail(err, errlen, "--io-uring wants auto, on or off, got '%s'",
                                   optarg);
            break;
        case OPT_UPGRADE_TIMEOUT:
            if (config_num(optarg, 1, 600, &v) != 0)
                return config_fail(err, errlen, "--upgrade-timeout wants 1..600 seconds, got '%s'",
                                   optarg);
            cfg->upgrade_timeout = (unsigned)v;
            break;
        case OPT_SNDBUF:
            if (config_num(optarg, 0, WSP_CONFIG_SNDBUF_MAX, &v) != 0 || (v > 0 && v < 4096))
                return config_fail(err, errlen, "--sndbuf wants 0 or 4096..%u bytes, got '%s'",
                                   WSP_CONFIG_SNDBUF_MAX, optarg);
            cfg->sndbuf = (uint32_t)v;
            break;
        case OPT_TCP_USER_TIMEOUT:
            if (config_num(optarg, 0, 86400, &v) != 0)
                return config_fail(err, errlen,
                                   "--tcp-user-timeout wants 0..86400 seconds, got '%s'", optarg);
            cfg->tcp_user_timeout = (unsigned)v;
            user_timeout_set = 1;
            break;
        case OPT_AUTH_JWT_ALG:
        case OPT_AUTH_JWT_KEY:
        case OPT_AUTH_JWT_AUD:
        case OPT_AUTH_JWT_ISS:
        case OPT_AUTH_LEEWAY:
            if (config_auth(cfg, c - OPT_AUTH_JWT_ALG, optarg, err, errlen) < 0)
                return -EINVAL;
            break;
        case OPT_HISTORY_SIZE:
            if (config_num(optarg, 0, 1000000, &v) != 0)
                return config_fail(err, errlen, "--history-size wants 0..1000000, got '%s'",
                                   optarg);
            cfg->history_size = (uint32_t)v;
            break;
        case OPT_HISTORY_TTL:
            if (config_num(optarg, 0, 30 * 86400, &v) != 0)
                return config_fail(err, errlen, "--history-ttl wants 0..2592000 seconds, got '%s'",
                                   optarg);
            cfg->history_ttl = (unsigned)v;
            break;
        case OPT_HISTORY_MAX_BYTES:
            if (config_num(optarg, 65536, 1ull << 40, &v) != 0)
                return config_fail(err, errlen,
                                   "--history-max-bytes wants 65536..%llu bytes, got '%s'",
                                   1ull << 40, optarg);
            cfg->history_max_bytes = v;
            break;
        case OPT_WORKER_EPOCH: {
            size_t n = strlen(optarg);
            if (n == 0 || n > WSP_CONFIG_EPOCH_MAX ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789_-") != n)
                return config_fail(err, errlen, "--worker-epoch is internal, got '%s'", optarg);
            memcpy(cfg->epoch, optarg, n + 1);
            break;
        }
        case OPT_WORKER_RESTART:
            cfg->worker_restart = 1;
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY: {
            char *dst = c == OPT_TLS_CERT ? cfg->tls_cert : cfg->tls_key;
            if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->tls_cert))
                return config_fail(err, errlen, "%s wants a file name, got '%s'",
                                   c == OPT_TLS_CERT ? "--tls-cert" : "--tls-key", optarg);
            strcpy(dst, optarg);
            break;
        }
        case OPT_TLS_MAX_HANDSHAKES:
            if (config_num(optarg, 1, WSP_CONFIG_MAX_TLS_HANDSHAKES, &v) != 0)
                return config_fail(err, errlen, "--tls-max-handshakes wants 1..%d, got '%s'",
                                   WSP_CONFIG_MAX_TLS_HANDSHAKES, optarg);
            cfg->tls_max_handshakes = (unsigned)v;
            break;
        case OPT_TLS_KTLS:
            if (strcmp(optarg, "auto") != 0 && strcmp(optarg, "off") != 0)
                return config_fail(err, errlen, "--tls-ktls wants auto or off, got '%s'", optarg);
            cfg->tls_ktls = strcmp(optarg, "off") == 0 ? WSP_CONFIG_KTLS_OFF : WSP_CONFIG_KTLS_AUTO;
            break;
        case OPT_DEFLATE:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                return config_fail(err, errlen, "--deflate wants on or off, got '%s'", optarg);
            cfg->deflate = strcmp(optarg, "on") == 0;
            break;
        case OPT_DEFLATE_MIN_BYTES:
            if (config_num(optarg, 0, WSP_CONFIG_DEFLATE_MIN_BYTES_MAX, &v) != 0)
                return config_fail(err, errlen, "--deflate-min-bytes wants 0..%u, got '%s'",
                                   WSP_CONFIG_DEFLATE_MIN_BYTES_MAX, optarg);
            cfg->deflate_min_bytes = (uint32_t)v;
            break;
        case OPT_HELP:
            wsp_config_usage(stdout);
            return 1;
        case OPT_VERSION:
            printf("wspush %s\n", WSP_VERSION);
            return 1;
        case ':':
            return config_fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
        default:
            return config_fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return config_fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    if (!user_timeout_set) /* keepalive gives up exactly as its own probe count would */
        cfg->tcp_user_timeout = wsp_config_keepalive_giveup(cfg->tcp_keepalive);
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
        return config_fail(err, errlen, "%s needs %s",
                           cfg->tls_cert[0] ? "--tls-cert" : "--tls-key",
                           cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
    return config_auth_check(cfg, err, errlen);
}
