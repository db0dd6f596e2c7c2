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
/* The longest epoch (server/framed.h's WSP_FRAMED_EPOCH_MAX: config.h is a leaf). */
#define WSP_CONFIG_EPOCH_MAX 32

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
    /* #20 reliability: what every connection's socket inherits from the listeners. */
    uint32_t sndbuf;           /* SO_SNDBUF bytes as asked (the kernel doubles); 0 = autotuning */
    unsigned tcp_user_timeout; /* seconds TCP_USER_TIMEOUT; 0 = off (the kernel's tcp_retries2) */
    /* Token auth (issue #16): every upgrade needs a JWT when auth_jwt_alg is set. The key is
     * read from the file (never kept here) by server/auth.c, at start and on SIGHUP. */
    int auth_jwt_alg;       /* WSP_JWT_* (common/jwt.h); 0 = no auth */
    char auth_jwt_key[512]; /* path of the HS secret or the RS/ES PEM public key */
    char auth_jwt_aud[256]; /* "" = aud not checked */
    char auth_jwt_iss[256]; /* "" = iss not checked */
    unsigned auth_leeway;   /* seconds of clock skew on exp, nbf, iat; default 5 */
    /* issue #17: history and recovery */
    uint32_t history_size;      /* messages kept per channel; 0 = off */
    unsigned history_ttl;       /* seconds a message stays recoverable; 0 = no limit */
    uint64_t history_max_bytes; /* all history of the process */
    int worker_restart;         /* internal: this worker started after its supervisor published */
    char epoch[WSP_CONFIG_EPOCH_MAX + 1]; /* this process's epoch (main(), or --worker-epoch) */
    /* TLS (issue #18): the WebSocket listener speaks TLS only when tls_cert is set. */
    char tls_cert[4096];         /* PEM certificate (chain allowed); "" = plain ws:// */
    char tls_key[4096];          /* PEM private key of tls_cert */
    unsigned tls_max_handshakes; /* TLS handshakes in progress per process; more wait */
    int tls_ktls;                /* WSP_CONFIG_KTLS_*: kernel TLS for sending where offered */
    /* permessage-deflate (issue #19) */
    int deflate;                /* --deflate on|off: 1 negotiates it with clients that offer it */
    uint32_t deflate_min_bytes; /* smaller payloads are sent uncompressed (RSV1 clear) */
    /* live upgrade (issue #20) */
    unsigned upgrade_timeout; /* SIGUSR2: seconds for the new binary to be ready */
} wsp_config_t;

/* --io-uring: auto uses batched io_uring sends where the kernel allows them, on insists
 * (startup fails without), off keeps one uv_try_write per connection. */
enum { WSP_CONFIG_URING_AUTO = 0, WSP_CONFIG_URING_ON = 1, WSP_CONFIG_URING_OFF = 2 };

/* --tls-ktls: auto hands the write keys to the kernel where it has the tls ULP, off always
 * seals records in user space. */
enum { WSP_CONFIG_KTLS_AUTO = 0, WSP_CONFIG_KTLS_OFF = 1 };

/* The most TLS handshakes in progress per process --tls-max-handshakes accepts (~35 KB each). */
#define WSP_CONFIG_MAX_TLS_HANDSHAKES 65536

/* The most shards per process (the metrics keep a fixed slot per shard). */
#define WSP_CONFIG_MAX_THREADS 64

/* The longest --handshake-timeout: shard deadlines are byte-sized ticks compared as int8. */
#define WSP_CONFIG_MAX_HANDSHAKE_TIMEOUT 120

/* --sndbuf's default: a socket whose peer has acknowledged nothing yet still takes the
 * largest frame (a 64 KiB publish, 65,546 bytes) whole, since Linux doubles it to 128 KiB;
 * measured in docs/BENCHMARKS.md section 12, with what a non-reading client costs. */
#define WSP_CONFIG_SNDBUF_DEFAULT 65536

/* --tcp-user-timeout's default without --tcp-keepalive: the give-up time of the default
 * keepalive (120 s idle, then 4 probes 30 s apart). */
#define WSP_CONFIG_USER_TIMEOUT_DEFAULT 240

/* The largest --sndbuf: far above any net.core.wmem_max, which caps it anyway. */
#define WSP_CONFIG_SNDBUF_MAX (64u << 20)
/* --deflate-min-bytes: the default, and the largest value (a payload is at most 64 KiB). */
#define WSP_CONFIG_DEFLATE_MIN_BYTES 256
#define WSP_CONFIG_DEFLATE_MIN_BYTES_MAX (1u << 20)

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

/* --tcp-user-timeout's default for a --tcp-keepalive of keepalive seconds: when keepalive
 * gives up (keepalive + 4 probes min(keepalive, 30) s apart), or
 * WSP_CONFIG_USER_TIMEOUT_DEFAULT with keepalive off. Pure; any thread. */
unsigned wsp_config_keepalive_giveup(unsigned keepalive);

/* Prints the usage text to f. Any thread. */
void wsp_config_usage(FILE *f);

#endif
