#ifndef WSP_COORDINATOR_H
#define WSP_COORDINATOR_H

#include <stdint.h>

#include "config.h"
#include "msg.h"

/* One broadcast in flight: the encoded frame plus what the shards report back. Created by
 * the coordinator, read by shards through their rings; only its atomics are written by them. */
typedef struct wsp_bcast_s wsp_bcast_t;

/* wsp_bcast_run() and wsp_super_run() return -(WSP_EADMIN + errno) when the admin listener
 * could not be opened, so that main() can say which port failed. */
#define WSP_EADMIN 10000

/* Runs the server on the calling thread, which becomes the coordinator: binds cfg->threads
 * reuseport listeners, starts the shards (admitting max_conns connections and holding at
 * most fd_budget accepted sockets), schedules broadcasts (ticks, SIGUSR1) and returns
 * after SIGINT/SIGTERM once every shard has drained and everything is freed. Returns 0, or a
 * negative errno from startup (bind: -EADDRINUSE, -EINVAL for a bad address, ...), before
 * which nothing keeps running. Main thread only, once. */
int wsp_bcast_run(const wsp_config_t *cfg, uint64_t max_conns, uint64_t fd_budget);

/* The encoded frame of b; valid while the caller holds b (until wsp_bcast_done). Shard. */
wsp_msg_t *wsp_bcast_msg(const wsp_bcast_t *b);

/* The channel b is for, or NULL for the default channel; *len gets its length. Shard. */
const char *wsp_bcast_channel(const wsp_bcast_t *b, size_t *len);

/* Reports one shard's pass over b (monotonic ns, connections written and failed) and gives
 * up the shard's hold on b; the last shard wakes the coordinator. Shard thread, once per b. */
void wsp_bcast_done(wsp_bcast_t *b, uint64_t start_ns, uint64_t end_ns, uint64_t written,
                    uint64_t failed);

#endif
