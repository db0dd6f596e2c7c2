#ifndef WSP_STATS_H
#define WSP_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

/* Figures one worker process publishes in its own MAP_SHARED block: the worker is the only
 * writer (plain stores), the parent reads a copy every report interval and accepts benign
 * tearing between fields; the final figures are read after the worker exited. */

#define WSP_SEQ_MAX 8192 /* broadcasts tracked one by one; later seqs count in seq_overflow */
#define WSP_CODES 12     /* distinct close codes / HTTP statuses kept; the rest in "other" */

enum {
    WSP_ERR_CONNECT,           /* connect failed after every retry */
    WSP_ERR_HANDSHAKE_STATUS,  /* answered with a status other than 101 */
    WSP_ERR_HANDSHAKE_INVALID, /* malformed answer or wrong Sec-WebSocket-Accept */
    WSP_ERR_CLOSED,            /* closed by the server: close frame code, or 1006 */
    WSP_ERR_PROTOCOL,          /* a frame a server must not send */
    WSP_ERR_TIMEOUT,           /* no 101 within --handshake-timeout */
    WSP_ERR_BAD_MESSAGE,       /* a data message without "time" and "seq" (kept open) */
    WSP_ERR_WORKER,            /* a worker process died: its connections are lost */
    WSP_ERR_NOT_RESUMED,       /* --recover: dropped and never back (no SIGHUP, or gave up) */
    WSP_ERR_TLS,               /* wss://: the TLS handshake failed (certificate, protocol) */
    WSP_ERR_KINDS
};

extern const char *const wsp_stats_err_names[WSP_ERR_KINDS];

/* Upgrades refused by token auth (issue #16), by the reason word of the 401/403 body
 * {"error":"..."}: the server's labels, then "other" (none, or a word not listed). */
#define WSP_AUTH_REASONS 11
extern const char *const wsp_stats_auth_names[WSP_AUTH_REASONS];

/* The index of reason word w[0..n) in wsp_stats_auth_names ("other" when unknown). */
int wsp_stats_auth_index(const char *w, size_t n);

typedef struct wsp_codes_s {
    uint32_t code[WSP_CODES];
    uint64_t count[WSP_CODES];
    uint64_t other;
} wsp_codes_t;

typedef struct wsp_seq_stat_s {
    uint64_t got, dup, missing; /* connections: got it once, again, not at all (bench/tally.h) */
    uint64_t time_min_ms, time_max_ms; /* server times in the message; 0 = not seen */
    uint64_t first_us, last_us;        /* receive times, epoch microseconds */
} wsp_seq_stat_t;

typedef struct wsp_wstats_s {
    uint64_t active;   /* open WebSockets now */
    uint64_t setups;   /* upgrades completed */
    uint64_t resolved; /* slots done: upgraded or given up */
    uint64_t inflight; /* connects and handshakes under way */
    uint64_t retries;  /* connect attempts repeated */
    uint64_t messages; /* data messages received with a tick */
    uint64_t pings;    /* pings answered */
    uint64_t seq_overflow;
    uint64_t max_seq;
    uint64_t seq_top; /* the parent's tally may count missing up to here, above max_seq */
    uint64_t first_connect_us, last_setup_us; /* epoch us: the ramp's span */
    uint64_t closed_in_handshake;             /* part of WSP_ERR_CLOSED */
    uint64_t last_errno;                      /* of the latest connect failure */
    uint64_t cpu_user_us, cpu_sys_us;         /* the worker's rusage, written on exit */
    uint64_t figures_final; /* 1 once every figure is final: only closing sockets is left */
    uint64_t epoch0_ms;     /* the worker's clock origin: its connections' est_ms count from it */
    /* --framed, --recover (issue #17) */
    uint64_t hellos;          /* wspush.v1 hellos received */
    uint64_t dropped;         /* connections closed after broadcast K */
    uint64_t resumed;         /* of them, upgraded again with since= */
    uint64_t recovered;       /* resumes whose hello said recovered:true */
    uint64_t not_recovered;   /* ... false */
    uint64_t replayed;        /* messages up to the resume hello's top: the replay */
    uint64_t resume_start_us; /* epoch us: the first reconnect (SIGHUP) */
    uint64_t replay_end_us;   /* epoch us: the last replayed message received */
    /* --deflate (issue #19): the connections the server accepted the offer on, and the
     * compressed messages (the others count only in messages) */
    uint64_t deflate_conns;
    uint64_t z_msgs;        /* compressed messages received and inflated */
    uint64_t z_wire_bytes;  /* their payload bytes as received */
    uint64_t z_plain_bytes; /* the same inflated */
    uint64_t err[WSP_ERR_KINDS];
    uint64_t auth_fail[WSP_AUTH_REASONS]; /* part of err[WSP_ERR_HANDSHAKE_STATUS] */
    wsp_codes_t closed_codes, statuses;
    wsp_hist_t latency;             /* microseconds */
    uint64_t tls_full, tls_resumed; /* wss://: TLS handshakes completed, by kind */
    wsp_hist_t tls_hs;              /* wss://: TLS handshake times, microseconds */
    wsp_seq_stat_t seq[WSP_SEQ_MAX];
} wsp_wstats_t;

/* Parent to workers, written by the parent only. */
typedef struct wsp_ctl_s {
    volatile int stop_ramp; /* open no more connections */
    volatile int resume;    /* --recover: dropped connections come back now (SIGHUP) */
} wsp_ctl_t;

/* Empties s. */
void wsp_stats_init(wsp_wstats_t *s);

/* Adds n to code's counter in t. Single writer. */
void wsp_stats_code_add(wsp_codes_t *t, uint32_t code, uint64_t n);

/* Adds src into dst: counters, histogram, code tables, per-seq table. */
void wsp_stats_merge(wsp_wstats_t *dst, const wsp_wstats_t *src);

#endif
