#ifndef WSP_NET_H
#define WSP_NET_H

/* Sockets and clocks: bound listening sockets (SO_REUSEPORT by hand: libuv 1.44 has no
 * UV_TCP_REUSEPORT), listener tuning, the nofile limit, wall-clock and monotonic time. */

#include <stdint.h>

/* Creates a non-blocking TCP socket with SO_REUSEADDR (and SO_REUSEPORT when reuseport)
 * bound to host:port (numeric IPv4 or IPv6; port 0 = ephemeral) and stores it in *fd. Does
 * not listen. Returns 0, -EINVAL for a bad address, or a negative errno. Any thread. */
int wsp_net_bind(const char *host, int port, int reuseport, int *fd);

/* Creates a non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT bound to host:port
 * (numeric IPv4 or IPv6; port 0 = ephemeral) and stores it in *fd. Does not listen: libuv's
 * uv_listen() does. Returns 0, -EINVAL for a bad address, or a negative errno
 * (-EADDRINUSE, -EACCES, ...). Any thread. */
int wsp_net_bind_reuseport(const char *host, int port, int *fd);

/* Sets TCP_NODELAY and, when keepalive_s > 0, SO_KEEPALIVE with TCP_KEEPIDLE = keepalive_s,
 * TCP_KEEPINTVL = min(keepalive_s, 30) and TCP_KEEPCNT = 4. On a listening socket Linux
 * copies these to every accepted socket. Returns 0 or a negative errno. Any thread. */
int wsp_net_tune_listener(int fd, unsigned keepalive_s);

/* Returns the local port of a bound socket, or a negative errno. Any thread. */
int wsp_net_local_port(int fd);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; stores the new soft limit in *limit.
 * Returns 0 or a negative errno. Call once at startup, before threads. */
int wsp_net_raise_nofile(uint64_t *limit);

/* Current time in ms since the Unix epoch (CLOCK_REALTIME). Any thread. */
uint64_t wsp_net_epoch_ms(void);

/* Monotonic time in ns (CLOCK_MONOTONIC). Any thread. */
uint64_t wsp_net_mono_ns(void);

#endif
