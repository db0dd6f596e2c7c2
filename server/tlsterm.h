#ifndef WSP_TLSTERM_H
#define WSP_TLSTERM_H

/* TLS termination for one serving process (issue #18): the process's one server context
 * (certificate, key, session ticket keys), replaced whole on SIGHUP, and whether the kernel
 * takes over sending records (kTLS). The handshake and the record layer are common/tlshs.c
 * and common/tlsrec.c; one connection's TLS state is server/tlsconn.c. The coordinator owns a
 * wsp_tlsterm_t; every shard makes its handshakes on it from its own thread.
 *
 * Session ticket keys: one set per machine-wide server, made once at startup (by the single
 * process, or by the supervisor under --procs, which hands them to each worker through an
 * inherited, sealed memfd: never on a command line or in the environment). A reload keeps
 * them, so a ticket issued before a reload, or by another worker, still resumes. They change
 * only when the process (the supervisor) restarts. */

#include <stddef.h>
#include <stdint.h>

#include "tlshs.h"

typedef struct wsp_tlsterm_s wsp_tlsterm_t;

/* Fills keys with fresh random ticket keys. 0 or -EIO. Any thread. */
int wsp_tlsterm_keys_random(uint8_t keys[WSP_TLS_TICKET_KEYS_LEN]);

/* A sealed memfd holding keys, for a supervisor to hand to its workers. Returns the
 * descriptor (close-on-exec; the caller closes it) or a negative errno. Any thread. */
int wsp_tlsterm_keys_fd(const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN]);

/* Reads the ticket keys from the inherited descriptor fd, then closes it. 0, -EIO for a short
 * file, or a negative errno. Main thread of a worker, at startup. */
int wsp_tlsterm_keys_read(int fd, uint8_t keys[WSP_TLS_TICKET_KEYS_LEN]);

/* Whether this kernel has the "tls" ULP: 0, or a negative errno (-ENOENT: not built or not
 * loaded). Makes and closes a socket; any thread. */
int wsp_tlsterm_ktls_probe(void);

/* A terminator serving cert and key (PEM paths, kept for reloads) with the ticket keys;
 * ktls != 0 hands each connection's sending keys to the kernel (only where the probe passed).
 * Returns 0, or -EINVAL with one line in err (a path and why; never key bytes). Logs the
 * certificate's subject, serial and expiry. Main thread; the result is shared by all. */
int wsp_tlsterm_new(wsp_tlsterm_t **out, const char *cert, const char *key,
                    const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN], int ktls, char *err,
                    size_t errlen);

/* Checks that cert and key make a usable context, as wsp_tlsterm_new() would (for a
 * supervisor, which serves no TLS itself). 0 or -EINVAL with one line in err. Any thread. */
int wsp_tlsterm_check(const char *cert, const char *key, char *err, size_t errlen);

/* SIGHUP: a new context from the same files with the same ticket keys, used by every
 * handshake that starts afterwards; handshakes under way and open connections keep what they
 * have. A bad pair keeps the current context. Logs either way. 0 or -EINVAL. Any thread. */
int wsp_tlsterm_reload(wsp_tlsterm_t *t);

/* A new server handshake on the current context, or NULL when out of memory. Any thread. */
wsp_tls_hs_t *wsp_tlsterm_hs_new(wsp_tlsterm_t *t);

/* 1 when connections hand their sending keys to the kernel (kTLS). Any thread. */
int wsp_tlsterm_ktls(const wsp_tlsterm_t *t);

/* Frees t and its contexts, and wipes the ticket keys; NULL is fine. After every shard that
 * used it has stopped. */
void wsp_tlsterm_free(wsp_tlsterm_t *t);

#endif
