/* Fuzzes the Sec-WebSocket-Extensions parser and permessage-deflate negotiation (common/pmd.c).
 * Input: header lines separated by '\n', each one field value as a request would carry it.
 * Checks, besides memory safety:
 * - several lines mean their comma-joined value: when every line parses, the joined value
 *   parses to the same list (the converse need not hold: a quote may span the comma);
 * - the server accepts the first valid permessage-deflate offer, or none when all are bad,
 *   and its answer is one a client that made that offer accepts, agreeing on the same terms;
 * - a valid offer formatted by wsp_pmd_offer() parses back to itself;
 * - a client's check of the input as an answer only accepts one well-formed element. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pmd.h"

static void check_accept(const wsp_pmd_list_t *l)
{
    wsp_pmd_t srv;
    const char *a = wsp_pmd_accept(l, &srv);
    unsigned n = l->n_pmd < WSP_PMD_MAX_ELEMS ? l->n_pmd : WSP_PMD_MAX_ELEMS;
    unsigned first = 0;
    while (first < n && l->elem[first].bad)
        first++;
    if (first == n) {
        WSP_FUZZ_CHECK(a == NULL && !srv.on);
        return;
    }
    WSP_FUZZ_CHECK(a != NULL && srv.on);
    WSP_FUZZ_CHECK(srv.server_no_context_takeover && srv.client_no_context_takeover);
    WSP_FUZZ_CHECK(srv.server_max_window_bits >= 8 && srv.server_max_window_bits <= 15);
    WSP_FUZZ_CHECK(srv.client_max_window_bits >= 8 && srv.client_max_window_bits <= 15);
    /* The answer, parsed by the client that made the chosen offer. */
    wsp_pmd_list_t ans;
    wsp_pmd_init(&ans);
    WSP_FUZZ_CHECK(wsp_pmd_parse(&ans, a, strlen(a)) == 0);
    WSP_FUZZ_CHECK(ans.n_pmd == 1 && ans.n_other == 0 && !ans.elem[0].bad);
    wsp_pmd_t cli;
    WSP_FUZZ_CHECK(wsp_pmd_check(&l->elem[first], &ans, &cli) == 1);
    WSP_FUZZ_CHECK(memcmp(&cli, &srv, sizeof(cli)) == 0);
}

static void check_offers(const wsp_pmd_list_t *l)
{
    unsigned n = l->n_pmd < WSP_PMD_MAX_ELEMS ? l->n_pmd : WSP_PMD_MAX_ELEMS;
    for (unsigned i = 0; i < n; i++) {
        const wsp_pmd_params_t *e = &l->elem[i];
        if (e->bad)
            continue;
        char out[256];
        int len = wsp_pmd_offer(e, out, sizeof(out));
        WSP_FUZZ_CHECK(len > 0 && (size_t)len == strlen(out));
        wsp_pmd_list_t back;
        wsp_pmd_init(&back);
        WSP_FUZZ_CHECK(wsp_pmd_parse(&back, out, (size_t)len) == 0);
        WSP_FUZZ_CHECK(back.n_pmd == 1 && back.n_other == 0);
        WSP_FUZZ_CHECK(memcmp(&back.elem[0], e, sizeof(*e)) == 0);
    }
}

/* The input read as a server's answer to a few offers a client might make. */
static void check_as_answer(const wsp_pmd_list_t *l)
{
    static const wsp_pmd_params_t offers[] = {
        {.client_max_window_bits = WSP_PMD_BITS_NOVALUE},
        {.server_no_context_takeover = true, .server_max_window_bits = 10},
        {.client_no_context_takeover = true, .client_max_window_bits = 12},
    };
    for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
        wsp_pmd_t out;
        int rv = wsp_pmd_check(&offers[i], l, &out);
        WSP_FUZZ_CHECK(rv == 1 || rv == 0 || rv == -EPROTO);
        WSP_FUZZ_CHECK(out.on == (rv == 1));
        if (rv == 0)
            WSP_FUZZ_CHECK(l->n_pmd == 0 && l->n_other == 0);
        if (rv == 1) {
            WSP_FUZZ_CHECK(l->n_pmd == 1 && l->n_other == 0 && !l->elem[0].bad);
            WSP_FUZZ_CHECK(out.server_max_window_bits >= 8 && out.server_max_window_bits <= 15);
            WSP_FUZZ_CHECK(out.client_max_window_bits >= 8 && out.client_max_window_bits <= 15);
            if (offers[i].server_no_context_takeover)
                WSP_FUZZ_CHECK(out.server_no_context_takeover);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    wsp_pmd_list_t lines;
    wsp_pmd_init(&lines);
    bool ok = true;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && s[i] != '\n')
            continue;
        if (ok && wsp_pmd_parse(&lines, s + start, i - start) < 0)
            ok = false;
        start = i + 1;
    }
    /* The same lines joined by commas, in an exact-size copy. */
    char *joined = malloc(size ? size : 1);
    WSP_FUZZ_CHECK(joined != NULL);
    for (size_t i = 0; i < size; i++)
        joined[i] = s[i] == '\n' ? ',' : s[i];
    wsp_pmd_list_t one;
    wsp_pmd_init(&one);
    int rv = wsp_pmd_parse(&one, joined, size);
    free(joined);
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG);
    if (ok) {
        WSP_FUZZ_CHECK(rv == 0);
        WSP_FUZZ_CHECK(memcmp(&lines, &one, sizeof(one)) == 0);
    }
    if (rv == 0) {
        check_accept(&one);
        check_offers(&one);
        check_as_answer(&one);
    }
    return 0;
}
