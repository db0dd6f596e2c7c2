/* Drives common/pmd.c and common/deflate.c for check_pmd_python.py (python3-websockets and
 * Python's zlib check what they produce) and measures compression. Not installed.
 *
 * usage: deflate_tool frames            lines "BITS PAYLOAD_HEX FRAME_HEX": frames to decode
 *        deflate_tool answer            for each stdin line (a request's header lines joined by
 *                                       0x1f), the server's answer: the value, "-" (declined)
 *                                       or "400" (malformed)
 *        deflate_tool inflate CAP       inflates each hex line of stdin within CAP bytes:
 *                                       prints the hex result, EMSGSIZE or EBADMSG
 *        deflate_tool measure [ROUNDS]  compress and inflate CPU times on a 2 KiB JSON payload */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "deflate.h"
#include "frame.h"
#include "pmd.h"
#include "sample_json.h"

static void put_hex(const uint8_t *p, size_t n)
{
    if (n == 0)
        fputc('=', stdout); /* an empty field stays a field */
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static int emit(wsp_deflate_t *z, unsigned bits, const void *p, size_t len)
{
    wsp_msg_t *m = NULL;
    int rv = wsp_deflate_frame(z, WSP_OP_TEXT, p, len, &m);
    if (rv < 0)
        return rv;
    printf("%u ", bits);
    put_hex(p, len);
    fputc(' ', stdout);
    put_hex(m->bytes, m->len);
    fputc('\n', stdout);
    wsp_msg_unref(m);
    return 0;
}

static int frames(wsp_deflate_t *z)
{
    static char json[70000];
    static uint8_t letters[32768];
    int rv = emit(z, 15, "Hello", 5);
    rv = rv < 0 ? rv : emit(z, 15, "", 0);
    for (uint32_t seed = 1; seed <= 3 && rv == 0; seed++) {
        size_t n = wsp_sample_json(json, sizeof(json), 1900, seed);
        rv = emit(z, 15, json, n);
    }
    size_t n = wsp_sample_json(json, sizeof(json), 65536 - 512, 4);
    rv = rv < 0 ? rv : emit(z, 15, json, n);
    /* For each window a peer may ask for, the largest payload wsp_pmd_fits() lets through,
     * random letters with the start copied to the end (the farthest back-reference). */
    uint32_t s = 7;
    for (unsigned bits = 8; bits <= 15 && rv == 0; bits++) {
        size_t len = (size_t)1 << bits;
        for (size_t i = 0; i < len; i++) {
            s = s * 1664525u + 1013904223u;
            letters[i] = (uint8_t)('a' + (s >> 24) % 16);
        }
        memcpy(letters + len - 64, letters, 64);
        if (!wsp_pmd_fits(bits, len) || wsp_pmd_fits(bits, len + 1) != (bits == 15))
            return -EINVAL;
        rv = emit(z, bits, letters, len);
    }
    return rv;
}

static void answer_one(char *line)
{
    wsp_pmd_list_t l;
    wsp_pmd_init(&l);
    for (char *v = line, *sep; v != NULL; v = sep ? sep + 1 : NULL) {
        sep = strchr(v, 0x1f);
        size_t len = sep ? (size_t)(sep - v) : strlen(v);
        if (wsp_pmd_parse(&l, v, len) < 0) {
            puts("400");
            return;
        }
    }
    wsp_pmd_t p;
    const char *a = wsp_pmd_accept(&l, &p);
    puts(a ? a : "-");
}

static int answer(void)
{
    static char line[1 << 16];
    while (fgets(line, sizeof(line), stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        answer_one(line);
    }
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static int inflate_lines(wsp_deflate_t *z, size_t cap)
{
    static char line[1 << 18];
    static uint8_t in[1 << 17], out[1 << 17];
    if (cap > sizeof(out))
        return -EINVAL;
    while (fgets(line, sizeof(line), stdin) != NULL) {
        size_t n = strcspn(line, "\r\n"), len = 0;
        if (n % 2 != 0 || n / 2 > sizeof(in))
            return -EINVAL;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(line[i]), lo = hexval(line[i + 1]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            in[len++] = (uint8_t)(hi << 4 | lo);
        }
        size_t olen = 0;
        int rv = wsp_deflate_inflate(z, in, len, out, cap, &olen);
        if (rv == -EMSGSIZE || rv == -EBADMSG)
            puts(rv == -EMSGSIZE ? "EMSGSIZE" : "EBADMSG");
        else if (rv < 0)
            return rv;
        else {
            put_hex(out, olen);
            fputc('\n', stdout);
        }
        fflush(stdout);
    }
    return 0;
}

/* CPU time of this thread: what a compress costs the shard, and what other processes on a
 * shared machine disturb least (they still share caches and cores). */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define ITERS 2000
#define MAX_ROUNDS 15

/* Prints min / median / max over rounds of the mean time per call in each round. */
static void report(const char *what, double *t, int rounds, size_t in, size_t out)
{
    qsort(t, (size_t)rounds, sizeof(*t), cmp_double);
    printf("%-22s %5zu -> %5zu B (%.3f)  us/call min %7.2f median %7.2f max %7.2f\n", what, in, out,
           (double)out / (double)in, t[0], t[rounds / 2], t[rounds - 1]);
}

enum { V_DEFLATE, V_ZLIB, V_INFLATE, V_ZINFLATE };

/* One thing measured: its state, output size and per-round times. */
struct variant {
    int kind, level;
    wsp_deflate_t *z;
    z_stream s;
    size_t out;
    double t[MAX_ROUNDS];
};

/* Times ITERS calls of v on json[0..len) (or on the compressed comp[0..clen) for inflates).
 * zlib is used the way a no-context-takeover server would: one z_stream reset per message,
 * sync flush, 00 00 ff ff removed (compress) or appended (inflate). */
static int run_round(struct variant *v, const char *json, size_t len, const uint8_t *comp,
                     size_t clen, uint8_t *buf, size_t cap)
{
    for (int i = 0; i < ITERS; i++) {
        if (v->kind == V_DEFLATE) {
            wsp_msg_t *m = NULL;
            if (wsp_deflate_frame(v->z, WSP_OP_TEXT, json, len, &m) < 0)
                return -ENOMEM;
            v->out = m->len - 4; /* a 4-byte header at this size */
            wsp_msg_unref(m);
        } else if (v->kind == V_ZLIB) {
            deflateReset(&v->s);
            v->s.next_in = (Bytef *)(uintptr_t)json;
            v->s.avail_in = (uInt)len;
            v->s.next_out = buf;
            v->s.avail_out = (uInt)cap;
            if (deflate(&v->s, Z_SYNC_FLUSH) != Z_OK)
                return -EIO;
            v->out = cap - v->s.avail_out - 4;
        } else if (v->kind == V_INFLATE) {
            if (wsp_deflate_inflate(v->z, comp, clen, buf, cap, &v->out) < 0 || v->out != len)
                return -EBADMSG;
        } else {
            inflateReset(&v->s);
            v->s.next_in = (Bytef *)(uintptr_t)comp; /* comp has 00 00 ff ff after clen */
            v->s.avail_in = (uInt)(clen + 4);
            v->s.next_out = buf;
            v->s.avail_out = (uInt)cap;
            int r = inflate(&v->s, Z_SYNC_FLUSH);
            v->out = cap - v->s.avail_out;
            if ((r != Z_OK && r != Z_STREAM_END) || v->out != len)
                return -EBADMSG;
        }
    }
    return 0;
}

/* Every variant once per round, interleaved, so that the machine's drift hits them alike. */
static int measure(int rounds)
{
    static char json[4096];
    static uint8_t comp[8192], buf[8192];
    size_t len = wsp_sample_json(json, sizeof(json), 1750, 1), clen = 0;
    static struct variant v[] = {
        {.kind = V_DEFLATE, .level = 1},  {.kind = V_DEFLATE, .level = 6},
        {.kind = V_DEFLATE, .level = 9},  {.kind = V_DEFLATE, .level = 12},
        {.kind = V_ZLIB, .level = 1},     {.kind = V_ZLIB, .level = 6},
        {.kind = V_ZLIB, .level = 9},     {.kind = V_INFLATE, .level = WSP_DEFLATE_LEVEL},
        {.kind = V_ZINFLATE, .level = 0},
    };
    const size_t nv = sizeof(v) / sizeof(v[0]);
    for (size_t i = 0; i < nv; i++) {
        int bad = v[i].kind == V_ZLIB       ? deflateInit2(&v[i].s, v[i].level, Z_DEFLATED, -15, 8,
                                                           Z_DEFAULT_STRATEGY) != Z_OK
                  : v[i].kind == V_ZINFLATE ? inflateInit2(&v[i].s, -15) != Z_OK
                                            : (v[i].z = wsp_deflate_new(v[i].level)) == NULL;
        if (bad)
            return -ENOMEM;
    }
    /* What the chosen level produced is what the inflates read. */
    wsp_msg_t *m = NULL;
    if (wsp_deflate_frame(v[7].z, WSP_OP_TEXT, json, len, &m) < 0)
        return -ENOMEM;
    clen = m->len - 4;
    memcpy(comp, m->bytes + 4, clen);
    memcpy(comp + clen, "\x00\x00\xff\xff", 4);
    wsp_msg_unref(m);
    for (int r = 0; r < rounds; r++) {
        for (size_t i = 0; i < nv; i++) {
            double t0 = now_us();
            int rv = run_round(&v[i], json, len, comp, clen, buf, 4096);
            if (rv < 0)
                return rv;
            v[i].t[r] = (now_us() - t0) / ITERS;
        }
    }
    static const char *const names[] = {"libdeflate", "zlib", "libdeflate inflate", "zlib inflate"};
    for (size_t i = 0; i < nv; i++) {
        char what[64];
        bool in = v[i].kind >= V_INFLATE;
        if (in)
            snprintf(what, sizeof(what), "%s", names[v[i].kind]);
        else
            snprintf(what, sizeof(what), "%s level %d", names[v[i].kind], v[i].level);
        report(what, v[i].t, rounds, in ? clen : len, v[i].out);
        if (v[i].kind == V_ZLIB)
            deflateEnd(&v[i].s);
        else if (v[i].kind == V_ZINFLATE)
            inflateEnd(&v[i].s);
        wsp_deflate_free(v[i].z);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s frames | answer | inflate CAP | measure [ROUNDS]\n", argv[0]);
        return 2;
    }
    int rv = -EINVAL;
    wsp_deflate_t *z = wsp_deflate_new(WSP_DEFLATE_LEVEL);
    if (z == NULL)
        rv = -ENOMEM;
    else if (strcmp(argv[1], "frames") == 0)
        rv = frames(z);
    else if (strcmp(argv[1], "answer") == 0)
        rv = answer();
    else if (strcmp(argv[1], "inflate") == 0 && argc == 3)
        rv = inflate_lines(z, strtoul(argv[2], NULL, 10));
    else if (strcmp(argv[1], "measure") == 0) {
        int rounds = argc > 2 ? atoi(argv[2]) : 5;
        rv = rounds >= 1 && rounds <= MAX_ROUNDS ? measure(rounds) : -EINVAL;
    }
    wsp_deflate_free(z);
    if (rv < 0)
        fprintf(stderr, "%s: %s\n", argv[0], strerror(-rv));
    return rv < 0 ? 1 : 0;
}
