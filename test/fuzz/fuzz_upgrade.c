/* Fuzzes wsp_upgrade_parse() (server/upgrade.c), the first parser an anonymous peer reaches.
 * The input is the bytes a client sent. Beyond memory safety it checks the contract conn.c
 * relies on: the verdict is one of the documented ones, a complete request points into the
 * buffer, and a verdict on a prefix is final (conn.c re-parses the growing buffer and acts on
 * the first verdict other than -EAGAIN). */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "upgrade.h"

static int inside(const uint8_t *buf, size_t n, const char *p, size_t len)
{
    const uint8_t *q = (const uint8_t *)p;
    return q >= buf && len <= n && (size_t)(q - buf) <= n - len;
}

/* Parses buf[0..n) and checks the result's shape; returns rv, status in *status. */
static int parse_checked(const uint8_t *buf, size_t n, int *status)
{
    wsp_upgrade_req_t req;
    memset(&req, 0xA5, sizeof(req)); /* garbage: the parser must fill what it returns */
    *status = 0;
    int rv = wsp_upgrade_parse(buf, n, &req, status);
    if (rv > 0) {
        size_t end = (size_t)rv;
        WSP_FUZZ_CHECK(end <= n && end <= WSP_UPGRADE_MAX_HEADER);
        WSP_FUZZ_CHECK(buf[end - 1] == '\n'); /* the block ends with its empty line */
        WSP_FUZZ_CHECK(req.path_len >= 1 && inside(buf, end, req.path, req.path_len));
        WSP_FUZZ_CHECK(req.path[0] == '/');
        for (size_t i = 0; i < req.path_len; i++)
            WSP_FUZZ_CHECK((uint8_t)req.path[i] > 0x20 && (uint8_t)req.path[i] < 0x7f &&
                           req.path[i] != '?' && req.path[i] != '#');
        if (req.query != NULL) {
            WSP_FUZZ_CHECK(inside(buf, end, req.query, req.query_len));
            WSP_FUZZ_CHECK(req.query == req.path + req.path_len + 1);
        } else {
            WSP_FUZZ_CHECK(req.query_len == 0);
        }
        WSP_FUZZ_CHECK(req.key_len == 24 && inside(buf, end, req.key, req.key_len));
        for (unsigned i = 0; i < req.n_ext && i < WSP_UPGRADE_EXT_LINES; i++)
            WSP_FUZZ_CHECK(inside(buf, end, req.ext[i], req.ext_len[i]));
        char resp[320];
        WSP_FUZZ_CHECK((req.subprotocols & ~WSP_UPGRADE_SP_WSPUSH_V1) == 0);
        int len = wsp_upgrade_response(req.key, req.key_len, req.subprotocols ? "wspush.v1" : NULL,
                                       NULL, resp, sizeof(resp));
        WSP_FUZZ_CHECK(len > 0 && (size_t)len < sizeof(resp));
        WSP_FUZZ_CHECK(memcmp(resp, "HTTP/1.1 101 ", 13) == 0);
    } else if (rv == -EAGAIN) {
        WSP_FUZZ_CHECK(n < WSP_UPGRADE_MAX_HEADER);
    } else {
        WSP_FUZZ_CHECK(rv == -EBADMSG);
        WSP_FUZZ_CHECK(*status == 400 || *status == 405 || *status == 426 || *status == 431);
        size_t elen = 0;
        const char *e = wsp_upgrade_error(*status, &elen);
        char want[16];
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", *status);
        WSP_FUZZ_CHECK(elen > strlen(want) && memcmp(e, want, strlen(want)) == 0);
    }
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int status;
    int rv = parse_checked(data, size, &status);
    /* Prefixes: a verdict, once given, must not change as more bytes arrive. */
    size_t cuts[2] = {size / 2, size > 0 ? size - 1 : 0};
    for (size_t i = 0; i < 2; i++) {
        if (cuts[i] == 0 || cuts[i] == size)
            continue;
        int pst;
        int prv = parse_checked(data, cuts[i], &pst);
        if (prv == -EAGAIN)
            continue;
        WSP_FUZZ_CHECK(prv == rv);
        WSP_FUZZ_CHECK(prv > 0 || pst == status);
    }
    return 0;
}
