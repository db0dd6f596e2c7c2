#ifndef WSP_COORDINATOR_H
#define WSP_COORDINATOR_H

/* The coordinator: the main thread of a serving process (the single process, or one worker
 * under --procs). It binds one reuseport listener per shard, starts the shards
 * (server/shard.c), runs the process's publisher (server/publisher.c) and hands each
 * broadcast (server/bcast.c) to every shard; it never touches a client connection. In a
 * worker it also holds the link to the supervisor. */

#include <stdint.h>

#include "config.h"
#include "tlsterm.h"

/* Runs the server on the calling thread, which becomes the coordinator: binds cfg->threads
 * reuseport listeners, starts the shards (admitting max_conns connections and holding at
 * most fd_budget accepted sockets), schedules broadcasts (ticks, SIGUSR1, Redis, admin, the
 * supervisor) and returns after SIGINT/SIGTERM once every shard has drained and everything
 * is freed. With tls (the caller's, outliving the call) the listeners speak TLS only and
 * SIGHUP reloads its certificate. Returns 0, or a negative errno from startup (bind:
 * -EADDRINUSE, -EINVAL for a bad address, ...; -(WSP_PUB_EADMIN + errno) for the admin
 * listener), before which nothing keeps running. ho_fd >= 0 is a live upgrade's control
 * socket (server/reexec.h): the listeners and connections then come from the process that
 * started this one, which exits once all are here. SIGUSR2 starts such an upgrade from this
 * process. Main thread only, once. */
int wsp_coord_run(const wsp_config_t *cfg, uint64_t max_conns, uint64_t fd_budget,
                  wsp_tlsterm_t *tls, int ho_fd);

#endif
