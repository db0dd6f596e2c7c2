#ifndef WSP_IT_HARNESS_H
#define WSP_IT_HARNESS_H

/* Integration-test harness: starts the real wspush binary on loopback and talks to it with a
 * small blocking WebSocket client. Every wait is bounded: reads and writes poll with a
 * timeout, process waits end in SIGKILL. Single-threaded; the tests own everything here. */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Default bound for one client operation (ms). Generous: sanitizer builds are slow. */
#define WSP_IT_TIMEOUT_MS 10000

/* Returned by reads when the peer closed the connection (FIN, or RST: the server may close
 * with client bytes unread, which the kernel answers with a reset). */
#define WSP_IT_EOF (-ENODATA)

/* The largest server frame payload the client accepts; wspush sends at most ~50 bytes. */
#define WSP_IT_MAX_PAYLOAD 8192

/* argv[1] of the test: the wspush binary. */
extern const char *wsp_it_binary;

/* ---- the one main() (harness_main.c) ---- */

struct CMUnitTest;

/* A file's cmocka group: its tests and the optional group fixtures. */
typedef struct wsp_it_suite_s {
    const char *name;
    const struct CMUnitTest *tests;
    size_t count;
    int (*setup)(void **state);
    int (*teardown)(void **state);
} wsp_it_suite_t;

/* What harness_main.c's main() runs: each test file defines it with WSP_IT_SUITE(). A file
 * that defines its own main() instead still links (the archive's main is then not used). */
extern const wsp_it_suite_t wsp_it_suite;

/* Defines the file's suite from a static array of cmocka tests and group fixtures (NULL: none).
 * main() takes the wspush binary as argv[1] into wsp_it_binary and runs the group. */
#define WSP_IT_SUITE(tests, setup, teardown)                                                       \
    const wsp_it_suite_t wsp_it_suite = {__FILE__, (tests), sizeof(tests) / sizeof((tests)[0]),    \
                                         (setup), (teardown)}

/* Monotonic milliseconds. */
int64_t wsp_it_now_ms(void);

/* Wall-clock milliseconds since the epoch, as the server stamps broadcasts. */
uint64_t wsp_it_epoch_ms(void);

/* Milliseconds left until the monotonic deadline, never negative. */
int wsp_it_left_ms(int64_t deadline);

/* Sleeps ms milliseconds. */
void wsp_it_sleep_ms(int ms);

/* Raises this process's open-file soft limit to the hard limit; 0 or a negative errno. */
int wsp_it_raise_nofile(void);

/* ---- the server process ---- */

typedef struct wsp_it_server_s {
    pid_t pid;          /* 0 once reaped */
    int port;           /* from the event=listening line */
    int result;         /* what wsp_it_server_wait() returned, once reaped */
    char log_path[128]; /* the server's stderr */
} wsp_it_server_t;

/* Starts wspush --threads 2 --port 0 --bind 127.0.0.1 --interval 0, then extra (NULL-ended,
 * may be NULL; later flags win), stderr to a temp file; waits up to 10 s for the listening
 * line and parses the port. Returns 0, or a negative errno with nothing left running (the log
 * is printed when the server exited early). */
int wsp_it_server_start(wsp_it_server_t *s, const char *const *extra);

/* Sends sig to the server's pid (only the one we started). 0 or a negative errno. */
int wsp_it_server_signal(wsp_it_server_t *s, int sig);

/* Waits up to timeout_ms for the server to exit; on timeout kills it with SIGKILL, reaps it and
 * returns -ETIMEDOUT. Returns the exit code (>= 0), or -128 - signal if a signal killed it. */
int wsp_it_server_wait(wsp_it_server_t *s, int timeout_ms);

/* The server's stderr so far, NUL-terminated; the caller frees it. NULL on error. */
char *wsp_it_server_log(const wsp_it_server_t *s);

/* Waits up to timeout_ms for a log line containing every string of needles (NULL-ended).
 * Returns 0 or -ETIMEDOUT. */
int wsp_it_server_wait_log(const wsp_it_server_t *s, const char *const *needles, int timeout_ms);

/* Counts log lines containing every string of needles (NULL-ended) in text. */
int wsp_it_count_lines(const char *text, const char *const *needles);

/* Stops gracefully if still running (SIGTERM, bounded wait, then SIGKILL), prints the log if
 * it did not exit 0, removes the log. Returns the wait result, as wsp_it_server_wait(). Safe
 * on a server that failed to start or was already reaped (then returns its earlier result). */
int wsp_it_server_stop(wsp_it_server_t *s);

/* cmocka fixtures. Setup puts a zeroed, not yet started server in *state (the test starts it
 * with its flags); teardown stops it if it runs, whatever the test did, and frees it. */
int wsp_it_fixture_setup(void **state);
int wsp_it_fixture_teardown(void **state);

/* Runs bin with args (NULL-ended, without argv[0]) to completion, bounded by timeout_ms
 * (SIGKILL after); captures stdout and stderr (malloc'd, NUL-terminated; the caller frees).
 * Returns the exit code, -128 - signal, or a negative errno (-ETIMEDOUT). */
int wsp_it_run(const char *bin, const char *const *args, int timeout_ms, char **out, char **err);

/* ---- the client ---- */

typedef struct wsp_it_client_s {
    int fd;
    size_t len;         /* bytes received and not yet consumed */
    uint8_t buf[16384]; /* HTTP head or frames read ahead */
} wsp_it_client_t;

/* A frame read from the server. */
typedef struct wsp_it_frame_s {
    int fin;
    unsigned rsv; /* the three RSV bits as in the first byte (0x70 mask) */
    unsigned opcode;
    int masked;
    size_t len;
    int close_code; /* close frames with >= 2 payload bytes; -1 otherwise */
    uint8_t payload[WSP_IT_MAX_PAYLOAD + 1]; /* NUL-terminated for convenience */
} wsp_it_frame_t;

/* How to deviate from a well-formed client frame (zero = FIN, no RSV, masked). */
typedef struct wsp_it_fopts_s {
    unsigned opcode;
    int no_fin;
    unsigned rsv; /* OR-ed into the first byte: 0x40, 0x20, 0x10 */
    int unmasked;
} wsp_it_fopts_t;

/* Connects a non-blocking TCP socket (TCP_NODELAY) to 127.0.0.1:port. 0 or a negative errno. */
int wsp_it_connect(wsp_it_client_t *c, int port, int timeout_ms);

/* Closes the socket (idempotent). */
void wsp_it_close(wsp_it_client_t *c);

/* Writes all of p, polling for room. 0 or a negative errno (-EPIPE, -ECONNRESET...). */
int wsp_it_send_raw(wsp_it_client_t *c, const void *p, size_t len, int timeout_ms);

/* Writes p one byte per send(), sleeping ~1 ms between them. 0 or a negative errno. */
int wsp_it_send_bytewise(wsp_it_client_t *c, const void *p, size_t len, int timeout_ms);

/* Builds an upgrade request for path with a random key (key: 24 chars + NUL). Returns its
 * length, or a negative errno if cap is too small. */
int wsp_it_upgrade_request(char *out, size_t cap, const char *path, char key[25]);

/* Computes the Sec-WebSocket-Accept for key (out: 28 chars + NUL). 0 or -EIO. */
int wsp_it_accept_for(const char *key, char out[29]);

/* Reads an HTTP response head (through the empty line), consuming only it: frames that follow
 * stay buffered. head gets it NUL-terminated. Returns the status code, WSP_IT_EOF,
 * -ETIMEDOUT, -EBADMSG (no status line) or -EMSGSIZE. */
int wsp_it_read_head(wsp_it_client_t *c, char *head, size_t cap, int timeout_ms);

/* Finds header name (case-insensitive) in head and copies its trimmed value into val. Returns
 * 0, or -ENOENT. */
int wsp_it_header(const char *head, const char *name, char *val, size_t cap);

/* Whether the comma-separated header value holds token (case-insensitive). */
int wsp_it_list_has(const char *value, const char *token);

/* Reads the 101 and checks Upgrade, Connection and Sec-WebSocket-Accept for key. Returns 0,
 * -EPROTO (with the head on stderr), or a read error. */
int wsp_it_read_101(wsp_it_client_t *c, const char *key, int timeout_ms);

/* Connects and upgrades on path. 0 or a negative errno; on failure c is closed. */
int wsp_it_ws_connect(wsp_it_client_t *c, int port, const char *path, int timeout_ms);

/* Encodes a client frame into out (cap >= len + 14). Returns its length or -ENOBUFS. */
int wsp_it_frame_build(uint8_t *out, size_t cap, const wsp_it_fopts_t *o, const void *p,
                       size_t len);

/* Sends a frame built as wsp_it_frame_build() does. 0 or a negative errno. */
int wsp_it_send_frame_ex(wsp_it_client_t *c, const wsp_it_fopts_t *o, const void *p, size_t len,
                         int timeout_ms);

/* Sends a well-formed masked FIN frame. 0 or a negative errno. */
int wsp_it_send_frame(wsp_it_client_t *c, unsigned opcode, const void *p, size_t len,
                      int timeout_ms);

/* Sends a masked close frame with code and reason (NULL: none). 0 or a negative errno. */
int wsp_it_send_close(wsp_it_client_t *c, unsigned code, const char *reason, int timeout_ms);

/* Reads one whole server frame. 0, WSP_IT_EOF, -ETIMEDOUT, -EMSGSIZE or another errno. */
int wsp_it_read_frame(wsp_it_client_t *c, wsp_it_frame_t *f, int timeout_ms);

/* Waits for the peer to close with nothing more arriving first. 0 when closed, -EBADMSG if
 * bytes came (or were buffered) first, -ETIMEDOUT. */
int wsp_it_expect_eof(wsp_it_client_t *c, int timeout_ms);

/* Reads and discards until the peer closes. 0, or -ETIMEDOUT. */
int wsp_it_drain_until_closed(wsp_it_client_t *c, int timeout_ms);

/* Waits ms for anything (bytes or a close) on any of the n clients. Returns how many clients
 * have something: 0 means all quiet. Buffered unread bytes count. */
int wsp_it_count_readable(wsp_it_client_t *const *cs, size_t n, int ms);

/* Parses a broadcast payload {"time":<ms>,"seq":<n>} exactly. 0 or -EBADMSG. */
int wsp_it_parse_time_msg(const uint8_t *p, size_t len, uint64_t *time_ms, uint64_t *seq);

#endif
