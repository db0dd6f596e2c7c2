#ifndef WSP_ARGS_H
#define WSP_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Connections one process holds by default: under the 20,000 open-file cap with room. */
#define WSP_ARGS_CONNS_PER_PROC 15000
/* No source address carries more than this many connections. */
#define WSP_ARGS_PER_SOURCE 1000
/* Memory one loopback connection pair costs here (kernel ~10.25 KB + user space), to refuse
 * runs the machine cannot hold before they start. */
#define WSP_ARGS_BYTES_PER_CONN 10500u
/* What a wss:// connection adds on the bench's side: its OpenSSL client object (28 KB measured
 * with SSL_MODE_RELEASE_BUFFERS, 5,000 connections, TLS 1.3). */
#define WSP_ARGS_TLS_BYTES_PER_CONN 30000u

/* The bench's configuration, read-only once parsed. Addresses are in host byte order. */
typedef struct wsp_bench_cfg_s {
    char url[512];
    char host[64];  /* as written in the URL, for the Host header */
    char path[256]; /* starts with '/' */
    uint32_t dst_addr;
    uint16_t port;
    uint64_t conns;
    double duration;
    unsigned procs;
    uint32_t src_first, src_last;
    unsigned concurrency;
    double rate; /* new connections per second, all processes; 0 = unlimited */
    double report_interval;
    double handshake_timeout;
    unsigned retries;
    unsigned coalesce_us;    /* after a small batch of events, once the ramp is done, sleep this
                                long so the next epoll_wait() returns many: fewer wake-ups */
    int io_uring;            /* receive each epoll batch with one io_uring submission */
    int64_t expect_bcasts;   /* --expect-broadcasts: seqs 1..N are expected; -1 = not given */
    const char *json;        /* NULL = no JSON file */
    const char *status_file; /* NULL = none */
    int quiet;               /* no periodic reports, only the final one */
    /* Token auth (issue #16): a JWT per connection, minted before the ramp (bench/tokens.h) */
    int jwt_alg;                       /* WSP_JWT_* (common/jwt.h); 0 = no token */
    const char *jwt_key;               /* the HS secret, or an RS/ES private key (PEM) */
    const char *jwt_aud, *jwt_iss;     /* NULL = no such claim */
    unsigned jwt_exp;                  /* seconds from the mint to each token's exp */
    const struct wsp_tokens_s *tokens; /* set by main() before the workers fork */
    /* issue #17: the wspush.v1 subprotocol, and drop + resume */
    int framed;         /* --framed: offer wspush.v1; messages come as {"ch","seq","data"} */
    int64_t recover_at; /* --recover K: after broadcast K, drop; resume on SIGHUP; -1 = off */
    /* wss:// (issue #18): OpenSSL clients, TLS 1.3 unless told otherwise. */
    int tls;            /* the URL said wss:// */
    const char *tls_ca; /* --tls-ca: CA file the server's certificate must chain to */
    int tls_insecure;   /* --tls-insecure: no certificate check */
    int tls_version;    /* --tls-version: 0x0303 (1.2) or 0x0304 (1.3) */
    int tls_resume;     /* --tls-resume: offer the latest session ticket (default on) */
    /* permessage-deflate (issue #19) */
    int deflate; /* --deflate: offer it on every connection, inflate what comes compressed */
} wsp_bench_cfg_t;

/* What the machine allows, passed in so tests can pretend. 0 = unknown, not checked. */
typedef struct wsp_args_limits_s {
    uint64_t nofile;        /* per-process open-file hard limit */
    uint64_t mem_available; /* bytes, from /proc/meminfo */
} wsp_args_limits_t;

/* Parses argv (argv[0] is the program) into cfg. Returns 0, 1 if --help was asked, or
 * -EINVAL with one line (no newline) in err. Pure: prints nothing. */
int wsp_args_parse(wsp_bench_cfg_t *cfg, int argc, char **argv, const wsp_args_limits_t *lim,
                   char *err, size_t errlen);

/* Parses "ws://HOST[:PORT][/PATH]" or "wss://..." (cfg->tls = 1, port 443 by default) with a
 * numeric IPv4 HOST or "localhost". Returns 0 or -EINVAL. Pure. */
int wsp_args_parse_url(wsp_bench_cfg_t *cfg, const char *url);

/* Parses "A.B.C.D-E.F.G.H" (or one address) into first and last. Returns 0 or -EINVAL. */
int wsp_args_parse_range(const char *s, uint32_t *first, uint32_t *last);

/* Source address of connection slot i (0-based over the whole run). Pure. */
static inline uint32_t wsp_args_source(const wsp_bench_cfg_t *cfg, uint64_t i)
{
    return cfg->src_first + (uint32_t)(i / WSP_ARGS_PER_SOURCE);
}

/* The usage text. */
extern const char wsp_args_usage[];

#endif
