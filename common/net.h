#ifndef WSP_NET_H
#define WSP_NET_H

/* Sockets and clocks: bound listening sockets (SO_REUSEPORT by hand: libuv 1.44 has no
 * UV_TCP_REUSEPORT), listener tuning (options every accepted socket inherits), the nofile
 * limit, wall-clock and monotonic time. */

#include <stdint.h>

/* Creates a non-blocking TCP socket with SO_REUSEADDR (and SO_REUSEPORT when reuseport)
 * bound to host:port (numeric IPv4 or IPv6; port 0 = ephemeral) and stores it in *fd. Does
 * not listen. Returns 0, -EINVAL for a bad address, or a negative errno. Any thread. */
int wsp_net_bind(const char *host, int port, int reuseport, int *fd);

/* wsp_net_bind() without SO_REUSEPORT (a second process must not silently share the port),
 * then listen(backlog): *fd is a listening socket. Returns 0 or a negative errno. Any
 * thread. */
int wsp_net_listen(const char *host, int port, int backlog, int *fd);

/* Creates a non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT bound to host:port
 * (numeric IPv4 or IPv6; port 0 = ephemeral) and stores it in *fd. Does not listen: libuv's
 * uv_listen() does. Returns 0, -EINVAL for a bad address, or a negative errno
 * (-EADDRINUSE, -EACCES, ...). Any thread. */
int wsp_net_bind_reuseport(const char *host, int port, int *fd);

/* What wsp_net_tune_listener() sets besides TCP_NODELAY. On a listening socket Linux copies
 * each option to every socket it accepts, and a listener handed to another process keeps
 * them: a connection costs no system call for any of them. */
typedef struct wsp_net_tune_s {
    /* SO_KEEPALIVE with TCP_KEEPIDLE = keepalive_s, TCP_KEEPINTVL = min(keepalive_s, 30),
     * TCP_KEEPCNT = 4; 0 = off. */
    unsigned keepalive_s;
    /* TCP_USER_TIMEOUT: how long sent data may stay unacknowledged, or queued data unsent
     * behind a zero window, before the kernel aborts the connection (ETIMEDOUT); it also
     * replaces TCP_KEEPCNT as keepalive's give-up rule (tcp(7)). 0 = off: tcp_retries2. */
    unsigned user_timeout_ms;
    /* SO_SNDBUF as asked: Linux doubles it for its bookkeeping, caps it at
     * net.core.wmem_max, and stops autotuning the socket's send buffer. 0 = autotuning (up to
     * net.ipv4.tcp_wmem's maximum). */
    unsigned sndbuf;
} wsp_net_tune_t;

/* Sets TCP_NODELAY and what t asks for (see wsp_net_tune_t) on fd. Returns 0 or a negative
 * errno. Any thread. */
int wsp_net_tune_listener(int fd, const wsp_net_tune_t *t);

/* The send buffer Linux gives fd's sockets (SO_SNDBUF read back: twice what was asked,
 * capped), or a negative errno. Any thread. */
int wsp_net_sndbuf(int fd);

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
