#ifndef WSP_CONFIG_H
#define WSP_CONFIG_H

/* The configuration: the command line, parsed once in main() (and the files it names, such as
 * --admin-token-file, read there too), then read-only and shared by every thread. A leaf: it
 * depends on no other server module, and every module may read it. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The longest bearer token for the admin API. */
#define WSP_CONFIG_TOKEN_MAX 256

typedef struct wsp_config_s {
    unsigned threads;           /* shards; default: online CPUs */
    int port;                   /* 0 = ephemeral, the same chosen port for every shard */
    char bind[64];              /* numeric IPv4 or IPv6 address */
    char path[256];             /* the WebSocket endpoint; other paths get 404 */
    unsigned interval;          /* seconds between wall-clock-aligned ticks; 0 = none */
    uint64_t max_conns;         /* per process; 0 = what the nofile limit allows */
    uint64_t max_pending;       /* bytes queued per connection before it is closed with 1008 */
    unsigned handshake_timeout; /* seconds to complete the HTTP upgrade */
    int log_level;              /* WSP_LOG_* */
    unsigned procs;             /* worker processes; 1 = no supervisor */
    int worker_fd;              /* set in a supervised worker: its socket to the supervisor */
    unsigned worker_id;         /* a supervised worker's slot, for the logs */
    char redis_host[256];       /* empty = no Redis */
    int redis_port;
    int redis_db;
    char channel[128];   /* Redis channel every worker subscribes to */
    char admin_host[64]; /* admin API address; empty = off */
    int admin_port;
    char admin_token[WSP_CONFIG_TOKEN_MAX + 1]; /* bearer token for POST /publish; "" = none */
    unsigned tcp_keepalive; /* seconds idle before TCP keepalive probes; 0 = off */
    unsigned ping_interval; /* seconds between WebSocket pings per connection; 0 = off */
    unsigned drain_seconds; /* SIGTERM: spread close 1001 over this long */
    int io_uring;           /* WSP_CONFIG_URING_*: how the broadcast pass sends */
    /* live upgrade (issue #20) */
    unsigned upgrade_timeout; /* SIGUSR2: seconds for the new binary to be ready */
} wsp_config_t;

/* --io-uring: auto uses batched io_uring sends where the kernel allows them, on insists
 * (startup fails without), off keeps one uv_try_write per connection. */
enum { WSP_CONFIG_URING_AUTO = 0, WSP_CONFIG_URING_ON = 1, WSP_CONFIG_URING_OFF = 2 };

/* The most shards per process (the metrics keep a fixed slot per shard). */
#define WSP_CONFIG_MAX_THREADS 64

/* The longest --handshake-timeout: shard deadlines are byte-sized ticks compared as int8. */
#define WSP_CONFIG_MAX_HANDSHAKE_TIMEOUT 120

/* The largest payload accepted for publishing (Redis, the supervisor's pipe). */
#define WSP_CONFIG_MAX_PUBLISH (64 * 1024)

/* Parses redis://HOST:PORT[/DB] (HOST numeric or a name; PORT default 6379) into cfg.
 * Returns 0 or -EINVAL. Any thread. */
int wsp_config_parse_redis_url(wsp_config_t *cfg, const char *url);

/* Parses ADDR:PORT ([v6]:PORT too) or "off" (host set to ""). Returns 0 or -EINVAL. */
int wsp_config_parse_hostport(const char *s, char *host, size_t hostcap, int *port);

/* Fills cfg with defaults, then parses argv. Returns 0 to run, 1 when --help or --version
 * printed what was asked (exit 0), or -EINVAL with a one-line reason in err. Main thread. */
int wsp_config_parse(wsp_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Reads a bearer token file: the first line, trailing whitespace trimmed, into out
 * (NUL-terminated). Returns 0, -EINVAL when it is not a token (wsp_config_token_ok()),
 * -ENOBUFS when cap is too small, or a negative errno from reading. Any thread. */
int wsp_config_read_token(const char *path, char *out, size_t cap);

/* 1 when t[0..len) can be a token: 1..WSP_CONFIG_TOKEN_MAX visible ASCII bytes, all a header
 * value and an unquoted command-line argument can carry. Pure; any thread. */
int wsp_config_token_ok(const char *t, size_t len);

/* Prints the usage text to f. Any thread. */
void wsp_config_usage(FILE *f);

#endif
