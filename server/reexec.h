#ifndef WSP_REEXEC_H
#define WSP_REEXEC_H

/* The process side of a live upgrade (issue #20): which binary and arguments this process was
 * started with, starting that binary again with a socket to hand over on, moving handover
 * datagrams (server/handover.h) with their descriptors (SCM_RIGHTS) over SOCK_SEQPACKET
 * sockets, and telling systemd which process now serves (sd_notify). No libuv state of its
 * own; the coordinator and the shards drive it. */

#include <stddef.h>
#include <sys/types.h>
#include <uv.h>

/* The environment variable that names the inherited handover socket in the new process. */
#define WSP_REEXEC_ENV "WSP_UPGRADE_FD"
/* The old process's epoch (issue #17), so that the new one numbers on in it. */
#define WSP_REEXEC_EPOCH_ENV "WSP_UPGRADE_EPOCH"
/* The descriptor the new process finds it on. */
#define WSP_REEXEC_FD 3

/* Records this process's binary (/proc/self/exe's target, resolved now, so that a binary
 * installed over it later is what an upgrade runs) and its arguments (argv is kept, not
 * copied: main()'s). Returns 0 or a negative errno. Main thread, once, at startup. */
int wsp_reexec_record(int argc, char **argv);

/* The recorded binary's path ("" before wsp_reexec_record()). Any thread. */
const char *wsp_reexec_path(void);

/* Starts the recorded binary with the recorded arguments as a child on loop, sock as its
 * descriptor WSP_REEXEC_FD, WSP_REEXEC_ENV (and the epoch, if not NULL) set in its
 * environment, stdout and stderr shared;
 * exit_cb runs when it exits. Returns 0 or a negative errno (proc is then closing). Loop
 * thread. */
int wsp_reexec_spawn(uv_loop_t *loop, uv_process_t *proc, int sock, const char *epoch,
                     uv_exit_cb exit_cb);

/* environ with WSP_REEXEC_ENV=fd and, if epoch is not NULL, WSP_REEXEC_EPOCH_ENV=epoch (any
 * earlier values dropped), for a child that inherits its
 * handover socket as fd; the array is the caller's to free (not the strings, which stay
 * valid until the next call). NULL on ENOMEM. Main loop thread. */
char **wsp_reexec_env(int fd, const char *epoch);

/* In a process a live upgrade started: the old process's epoch (removed from the
 * environment), or NULL. Main thread, at startup. */
const char *wsp_reexec_inherited_epoch(void);

/* In a process started by wsp_reexec_spawn() (or a supervisor's upgrade): the handover
 * socket, and the variable is
 * removed from the environment; -1 in any other process. Main thread, at startup. */
int wsp_reexec_inherited(void);

/* A connected SOCK_SEQPACKET pair, close-on-exec, its buffers sized for a whole handover
 * datagram. Returns 0 or a negative errno. Any thread. */
int wsp_reexec_socketpair(int sv[2]);

/* Sends one datagram buf[0..len) with nfds descriptors (still the caller's afterwards).
 * Blocks up to the socket's send timeout. Returns 0 or a negative errno. Any thread. */
int wsp_reexec_send(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);

/* Receives one datagram into buf[0..cap) and up to maxfds descriptors (close-on-exec, now the
 * caller's) into fds, their count in *nfds. flags as for recvmsg (MSG_DONTWAIT). Returns the
 * datagram's length, 0 when the peer closed, -EBADMSG for a truncated datagram or descriptor
 * list (what came is closed), or a negative errno. Any thread. */
ssize_t wsp_reexec_recv(int sock, void *buf, size_t cap, int *fds, unsigned maxfds, unsigned *nfds,
                        int flags);

/* Gives sock a send and receive timeout of ms milliseconds. Returns 0 or a negative errno. */
int wsp_reexec_timeout(int sock, unsigned ms);

/* Sends state (e.g. "READY=1") to systemd when $NOTIFY_SOCKET names one; nothing otherwise.
 * Returns 0 or a negative errno. Any thread. */
int wsp_reexec_notify(const char *state);

/* As wsp_reexec_notify(), then waits (at most timeout_ms) until systemd has processed it
 * (BARRIER=1, systemd 246 and later): MAINPID= must be in before the old main process exits.
 * Returns 0 or a negative errno (-ETIMEDOUT). Any thread. */
int wsp_reexec_notify_barrier(const char *state, int timeout_ms);

#endif
