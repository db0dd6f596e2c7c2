#ifndef WSP_STREAM_H
#define WSP_STREAM_H

/* The Redis layout of sequenced channels (issue #17, --redis): key names, the two Lua scripts
 * and the envelope a sequenced message travels in. Pure (no I/O): server/redis.c sends them.
 *
 * Keys, for --channel NAME and a client channel C ("time" for the default one):
 *   NAME:hist      one hash for every channel: field "epoch" (an opaque string, set when
 *                  missing) and field "s:C" (C's last sequence number). Seq and epoch live
 *                  in ONE key, so an eviction or a restart without persistence loses both
 *                  together: a sequence can never restart without the epoch changing.
 *   NAME:hist:C    C's capped stream (XADD MAXLEN --history-size, PEXPIRE --history-ttl):
 *                  entry ID "<seq>-0", fields d (the payload) and t (Redis's clock, ms).
 * The publish script, atomically: sets the epoch if missing, HINCRBYs C's number (a number
 * that starts again at 1 deletes C's stale stream first), XADDs the message and PUBLISHes
 * the envelope on the pub/sub channel; the fetch script reads the epoch (setting it if
 * missing), each channel's number and the stream range after a since.
 *
 * The envelope: 0xFF "wsp1;" EPOCH ";" SEQ ";" PAYLOAD. 0xFF never occurs in UTF-8, and only
 * valid UTF-8 is ever broadcast, so a raw PUBLISH can never be mistaken for one. */

#include <stddef.h>
#include <stdint.h>

/* The scripts (Lua) and their SHA-1s in hex, for EVALSHA. */
extern const char wsp_stream_publish_lua[];
extern const char wsp_stream_fetch_lua[];

/* Computes the two scripts' SHA-1 (40 hex digits and a NUL each). Returns 0 or -EIO. */
int wsp_stream_shas(char publish[41], char fetch[41]);

/* Writes NAME:hist (name = --channel) into out[0..cap). Returns its length or -ENOBUFS. */
int wsp_stream_meta_key(char *out, size_t cap, const char *name);

/* Writes NAME:hist:C into out (chan NULL: the default channel). Returns the length or
 * -ENOBUFS. */
int wsp_stream_key(char *out, size_t cap, const char *name, const char *chan, size_t chan_len);

/* Writes the hash field s:C into out. Returns the length or -ENOBUFS. */
int wsp_stream_field(char *out, size_t cap, const char *chan, size_t chan_len);

/* Parses a pub/sub message: 1 for an envelope (seq > 0, epoch valid, payload after it), 0
 * for a raw message (no 0xFF first), -EBADMSG for a malformed envelope. Pointers point into
 * p. Pure. */
int wsp_stream_parse(const uint8_t *p, size_t n, uint64_t *seq, const char **epoch,
                     size_t *epoch_len, const uint8_t **payload, size_t *len);

/* Parses an entry ID "<seq>-0" into *seq. Returns 0 or -EBADMSG. Pure. */
int wsp_stream_id(const char *id, size_t n, uint64_t *seq);

#endif
