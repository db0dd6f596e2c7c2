#ifndef WSP_CONFIG_H
#define WSP_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The command line, parsed once in main() and read-only afterwards (shared by every thread). */
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
} wsp_config_t;

/* The longest --handshake-timeout: shard deadlines are byte-sized ticks compared as int8. */
#define WSP_CONFIG_MAX_HANDSHAKE_TIMEOUT 120

/* Fills cfg with defaults, then parses argv. Returns 0 to run, 1 when --help or --version
 * printed what was asked (exit 0), or -EINVAL with a one-line reason in err. Main thread. */
int wsp_config_parse(wsp_config_t *cfg, int argc, char **argv, char *err, size_t errlen);

/* Prints the usage text to f. Any thread. */
void wsp_config_usage(FILE *f);

#endif
