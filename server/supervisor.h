#ifndef WSP_SUPERVISOR_H
#define WSP_SUPERVISOR_H

/* The prefork supervisor (--procs P): one process that holds no client socket, starts P
 * workers (each a full wspush: server/coordinator.c), restarts one that dies, and runs the
 * publisher (server/publisher.c) for all of them, so that every worker sends the same bytes
 * and seq. */

#include "config.h"

/* Runs the prefork supervisor: starts cfg->procs workers (this binary again, each a full
 * wspush on the same SO_REUSEPORT port with its own fd limit), restarts one that dies with
 * backoff, owns the broadcast schedule (ticks and SIGUSR1) so every worker sends the same
 * time and seq, forwards SIGTERM/SIGINT and SIGHUP and returns once every worker has exited.
 * argv is the supervisor's own command line, passed on to the workers; tls_keys_fd (or -1
 * without TLS, the caller's) is handed to each as WSP_SUPER_TLS_KEYS_FD. Returns 0, or a
 * negative errno from startup (the port is checked first: -EADDRINUSE, ...). Main thread. */
int wsp_super_run(const wsp_config_t *cfg, int argc, char **argv, int tls_keys_fd);

/* In a worker, the descriptor holding the TLS session ticket keys the supervisor made (a
 * sealed memfd, present only with TLS): 3 is the supervisor's socketpair, 4 the metrics. */
#define WSP_SUPER_TLS_KEYS_FD 5

#endif
