#include "pmd.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* A cursor over one field value. */
struct cur {
    const char *p, *end;
};

/* A parameter's value: present or not, its length once unescaped and its first bytes (a valid
 * window size has at most two digits, so three tell a valid one from anything longer). */
struct val {
    bool present;
    size_t len;
    char head[3];
};

/* RFC 7230 section 3.2.6 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Consumes a token; returns its length, 0 when none starts here. */
static size_t token(struct cur *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    return (size_t)(c->p - start);
}

static void val_put(struct val *v, char ch)
{
    if (v->len < sizeof(v->head))
        v->head[v->len] = ch;
    v->len++;
}

/* Consumes a quoted-string (RFC 7230 section 3.2.6) whose unescaped content must be a token
 * (RFC 6455 section 9.1). Returns 0 or -EBADMSG. */
static int quoted(struct cur *c, struct val *v)
{
    c->p++; /* the opening DQUOTE */
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p++;
        if (ch == '"')
            return v->len > 0 ? 0 : -EBADMSG;
        if (ch == '\\') {
            if (c->p == c->end)
                return -EBADMSG;
            ch = (unsigned char)*c->p++;
        }
        /* Every qdtext or quoted-pair octet that is not a tchar breaks the token rule. */
        if (!is_tchar(ch))
            return -EBADMSG;
        val_put(v, (char)ch);
    }
    return -EBADMSG; /* no closing DQUOTE */
}

/* Consumes a value after '=': a token or a quoted-string. Returns 0 or -EBADMSG. */
static int value(struct cur *c, struct val *v)
{
    v->present = true;
    if (c->p < c->end && *c->p == '"')
        return quoted(c, v);
    const char *start = c->p;
    size_t n = token(c);
    for (size_t i = 0; i < n; i++)
        val_put(v, start[i]);
    return n > 0 ? 0 : -EBADMSG;
}

/* A window size: a decimal 8..15 without leading zeros (RFC 7692 section 7.1.2); 0 if not. */
static uint8_t window_bits(const struct val *v)
{
    if (v->len == 1 && v->head[0] >= '8' && v->head[0] <= '9')
        return (uint8_t)(v->head[0] - '0');
    if (v->len == 2 && v->head[0] == '1' && v->head[1] >= '0' && v->head[1] <= '5')
        return (uint8_t)(10 + v->head[1] - '0');
    return 0;
}

static bool name_is(const char *n, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(n, want, len) == 0;
}

/* Records one parameter of a permessage-deflate element; what RFC 7692 section 7 says an
 * offer must be declined for (unknown, duplicated, invalid value) sets bad. */
static void pmd_param(wsp_pmd_params_t *p, const char *n, size_t len, const struct val *v)
{
    if (name_is(n, len, "server_no_context_takeover")) {
        p->bad |= p->server_no_context_takeover || v->present;
        p->server_no_context_takeover = true;
    } else if (name_is(n, len, "client_no_context_takeover")) {
        p->bad |= p->client_no_context_takeover || v->present;
        p->client_no_context_takeover = true;
    } else if (name_is(n, len, "server_max_window_bits")) {
        uint8_t b = window_bits(v); /* a value is required */
        p->bad |= p->server_max_window_bits != 0 || b == 0;
        p->server_max_window_bits = b ? b : p->server_max_window_bits;
    } else if (name_is(n, len, "client_max_window_bits")) {
        uint8_t b = v->present ? window_bits(v) : WSP_PMD_BITS_NOVALUE;
        p->bad |= p->client_max_window_bits != 0 || b == 0;
        p->client_max_window_bits = b ? b : p->client_max_window_bits;
    } else {
        p->bad = true;
    }
}

/* Consumes one extension: token *( OWS ";" OWS param ). Returns 0 or -EBADMSG. */
static int element(struct cur *c, wsp_pmd_list_t *l)
{
    const char *name = c->p;
    size_t len = token(c);
    if (len == 0)
        return -EBADMSG;
    /* Case-sensitive, as RFC 7230 tokens are and as Chromium, Firefox, ws and websockets
     * compare: a client sending another case may check our lowercase answer the same way and
     * fail the connection, while an offer we ignore only costs compression. */
    bool pmd = name_is(name, len, "permessage-deflate");
    wsp_pmd_params_t p = {0};
    for (;;) {
        skip_ows(c);
        if (c->p == c->end || *c->p != ';')
            break;
        c->p++;
        skip_ows(c);
        const char *pname = c->p;
        size_t plen = token(c);
        if (plen == 0)
            return -EBADMSG;
        skip_ows(c);
        struct val v = {0};
        if (c->p < c->end && *c->p == '=') {
            c->p++;
            skip_ows(c);
            if (value(c, &v) < 0)
                return -EBADMSG;
        }
        if (pmd)
            pmd_param(&p, pname, plen, &v);
    }
    if (!pmd) {
        l->n_other += l->n_other < UINT_MAX;
        return 0;
    }
    if (l->n_pmd < WSP_PMD_MAX_ELEMS)
        l->elem[l->n_pmd] = p;
    l->n_pmd += l->n_pmd < UINT_MAX;
    return 0;
}

void wsp_pmd_init(wsp_pmd_list_t *l) { memset(l, 0, sizeof(*l)); }

int wsp_pmd_parse(wsp_pmd_list_t *l, const char *v, size_t len)
{
    struct cur c = {v, v + len};
    for (;;) {
        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (*c.p == ',') { /* an empty list element */
            c.p++;
            continue;
        }
        if (element(&c, l) < 0)
            return -EBADMSG;
        skip_ows(&c);
        if (c.p == c.end)
            return 0;
        if (*c.p != ',')
            return -EBADMSG;
        c.p++;
    }
}

#define WSP_PMD_ANSWER "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* The answer per server_max_window_bits offered (0: none offered, so none answered). An offer
 * with it must be answered with it, at the same or a smaller value: the same value, kept by
 * compressing only payloads that fit (wsp_pmd_fits()). */
static const char *const answers[16] = {
    [0] = WSP_PMD_ANSWER,
    [8] = WSP_PMD_ANSWER "; server_max_window_bits=8",
    [9] = WSP_PMD_ANSWER "; server_max_window_bits=9",
    [10] = WSP_PMD_ANSWER "; server_max_window_bits=10",
    [11] = WSP_PMD_ANSWER "; server_max_window_bits=11",
    [12] = WSP_PMD_ANSWER "; server_max_window_bits=12",
    [13] = WSP_PMD_ANSWER "; server_max_window_bits=13",
    [14] = WSP_PMD_ANSWER "; server_max_window_bits=14",
    [15] = WSP_PMD_ANSWER "; server_max_window_bits=15",
};

const char *wsp_pmd_accept(const wsp_pmd_list_t *l, wsp_pmd_t *out)
{
    memset(out, 0, sizeof(*out));
    unsigned n = l->n_pmd < WSP_PMD_MAX_ELEMS ? l->n_pmd : WSP_PMD_MAX_ELEMS;
    for (unsigned i = 0; i < n; i++) {
        const wsp_pmd_params_t *e = &l->elem[i];
        if (e->bad)
            continue;
        out->on = true;
        out->server_no_context_takeover = true;
        out->client_no_context_takeover = true;
        out->server_max_window_bits = e->server_max_window_bits ? e->server_max_window_bits : 15;
        /* Not answered: the client keeps the limit it offered, if any (section 7.1.2.2). */
        out->client_max_window_bits =
            e->client_max_window_bits >= 8 ? e->client_max_window_bits : 15;
        return answers[e->server_max_window_bits];
    }
    return NULL;
}

/* Appends s to out[*len..cap) keeping a NUL; false when it does not fit. */
static bool put(char *out, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap - *len)
        return false;
    memcpy(out + *len, s, n + 1);
    *len += n;
    return true;
}

static bool bits_ok(uint8_t b) { return b >= 8 && b <= 15; }

int wsp_pmd_offer(const wsp_pmd_params_t *want, char *out, size_t cap)
{
    uint8_t s = want->server_max_window_bits, c = want->client_max_window_bits;
    if ((s != 0 && !bits_ok(s)) || (c != 0 && c != WSP_PMD_BITS_NOVALUE && !bits_ok(c)))
        return -EINVAL;
    if (cap == 0)
        return -ENOBUFS;
    char sbits[32], cbits[32];
    sbits[0] = cbits[0] = '\0';
    if (s != 0)
        (void)snprintf(sbits, sizeof(sbits), "; server_max_window_bits=%u", s); /* fits */
    if (c == WSP_PMD_BITS_NOVALUE)
        (void)snprintf(cbits, sizeof(cbits), "; client_max_window_bits");
    else if (c != 0)
        (void)snprintf(cbits, sizeof(cbits), "; client_max_window_bits=%u", c);
    size_t len = 0;
    out[0] = '\0';
    bool ok = put(out, cap, &len, "permessage-deflate") &&
              (!want->server_no_context_takeover ||
               put(out, cap, &len, "; server_no_context_takeover")) &&
              (!want->client_no_context_takeover ||
               put(out, cap, &len, "; client_no_context_takeover")) &&
              put(out, cap, &len, sbits) && put(out, cap, &len, cbits);
    return ok ? (int)len : -ENOBUFS;
}

int wsp_pmd_check(const wsp_pmd_params_t *offered, const wsp_pmd_list_t *l, wsp_pmd_t *out)
{
    memset(out, 0, sizeof(*out));
    if (l->n_other > 0 || l->n_pmd > 1) /* RFC 6455 4.1: only what was offered, once */
        return -EPROTO;
    if (l->n_pmd == 0)
        return 0;
    const wsp_pmd_params_t *a = &l->elem[0];
    uint8_t os = offered->server_max_window_bits, oc = offered->client_max_window_bits;
    if (a->bad || a->client_max_window_bits == WSP_PMD_BITS_NOVALUE) /* a value is required */
        return -EPROTO;
    if (offered->server_no_context_takeover && !a->server_no_context_takeover)
        return -EPROTO;
    if (os != 0 && (a->server_max_window_bits == 0 || a->server_max_window_bits > os))
        return -EPROTO;
    if (a->client_max_window_bits != 0 && (oc == 0 || (oc >= 8 && a->client_max_window_bits > oc)))
        return -EPROTO;
    out->on = true;
    out->server_no_context_takeover = a->server_no_context_takeover;
    /* Offering client_no_context_takeover commits the client whatever the answer says. */
    out->client_no_context_takeover =
        a->client_no_context_takeover || offered->client_no_context_takeover;
    out->server_max_window_bits = a->server_max_window_bits ? a->server_max_window_bits : 15;
    if (a->client_max_window_bits != 0)
        out->client_max_window_bits = a->client_max_window_bits;
    else
        out->client_max_window_bits = oc >= 8 ? oc : 15;
    return 1;
}
