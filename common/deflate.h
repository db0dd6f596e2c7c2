#ifndef WSP_DEFLATE_H
#define WSP_DEFLATE_H

/* permessage-deflate's data path (RFC 7692 section 7.2) without context takeover: a broadcast
 * compressed once into a frame every deflate connection shares, and a client message inflated
 * whole under a hard bound. No state is kept per connection or between messages.
 *
 * Why libdeflate and not zlib: with no context takeover each message is a DEFLATE stream of its
 * own, which is exactly libdeflate's one-shot, whole-buffer API: no stream state to keep or to
 * reset per message. On a 2 KiB JSON array of notifications (test/common/deflate_tool measure,
 * CPU time, 2026-12-06, a busy shared machine) level 9 gives 0.365 of the size in 10.8-13.8 us
 * where zlib level 6 (reset per message, sync flush) gives 0.364 in 13.3-20.3 us; inflating
 * costs the same (3.7-4.2 us against 3.8-4.6). Its one limit, a fixed 32 KiB window, is met by
 * sending uncompressed what a peer's server_max_window_bits cannot hold (wsp_pmd_fits()).
 * Memory per context: 653 KiB of compressor at levels 2-9 (198 KiB at 1, 8.6 MiB at 10-12),
 * 11 KiB of decompressor, and a scratch buffer the size of the largest message. */

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* The compression level broadcasts use (libdeflate's 1..12). On the 2 KiB payload levels 6 and
 * 9 give the same 725 bytes, 1 gives 740 in 0.7x the time, 12 gives 718 in 14x; on 64 KiB of
 * JSON 9 is 2.7% smaller than 6 for about 3x the time. One compress per broadcast against one
 * send per connection: bytes win. */
#define WSP_DEFLATE_LEVEL 9

/* A thread's compressor and decompressor; one per thread that compresses or inflates (one per
 * shard): libdeflate's objects are not safe to share between threads. */
typedef struct wsp_deflate_s wsp_deflate_t;

/* Makes a context compressing at level (1..12; 0 makes an inflate-only context). Returns NULL
 * on OOM or a level out of range. The caller owns it; it belongs to the calling thread. */
wsp_deflate_t *wsp_deflate_new(int level);

/* Frees z (NULL is a no-op). Owning thread. */
void wsp_deflate_free(wsp_deflate_t *z);

/* Compresses payload[0..len) once into a complete server frame (FIN, RSV1, opcode TEXT or
 * BINARY, unmasked) in a new message whose one reference *out is the caller's. The frame may be
 * longer than the plain one (incompressible data): compare and send either, RSV1 is per message.
 * Returns 0, -EINVAL (a control opcode, or an inflate-only z) or -ENOMEM. Owning thread. */
int wsp_deflate_frame(wsp_deflate_t *z, unsigned opcode, const void *payload, size_t len,
                      wsp_msg_t **out);

/* Inflates one compressed client message: in[0..len) is the payload of all its frames joined
 * (RFC 7692 section 7.2.2's 00 00 ff ff is appended here), written to out[0..cap) (out not
 * NULL, even with cap 0) with the length in *out_len. Returns 0, -EMSGSIZE when it would
 * inflate past cap (checked while inflating: a bomb stops at cap bytes; the server closes
 * 1009), -EBADMSG when it is not valid DEFLATE (1002), or -ENOMEM. Owning thread; nothing is
 * kept once it returns but the scratch buffer. */
int wsp_deflate_inflate(wsp_deflate_t *z, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len);

#endif
