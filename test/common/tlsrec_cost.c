/* What one sealed broadcast message costs per connection: wsp_tlsrec_seal() over N distinct
 * connection states with one shared EVP_CIPHER_CTX (re-keyed per call, as a shard does), next
 * to a lower bound: the same AEAD with one already-keyed EVP context per connection (what an
 * SSL object per connection would keep, at ~1 KB each), only the nonce changing per record.
 * Not a test: a measurement to run by hand, wrapped in /work/tools/cpu.
 *
 * usage: tlsrec_cost [CONNS [ROUNDS [RUNS [SUITE LEN]]]]     (defaults 10000 20 5, all)
 * Prints, per suite and message size, ns per message: min / median / max over RUNS runs.
 * SUITE (hex IANA id) and LEN limit it to one case, e.g. for instruction counts that do not
 * depend on a shared machine's load:
 *   valgrind --tool=callgrind tlsrec_cost 1000 5 1 1301 30, then callgrind_annotate
 *   --inclusive=yes: wsp_tlsrec_seal's instructions / its calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "tlsrec.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile uint8_t sink;

/* ns per message through wsp_tlsrec_seal(). noinline: callgrind attributes it by name. */
__attribute__((noinline)) static double run_seal(wsp_tlsrec_t *ts, size_t n, EVP_CIPHER_CTX *cx,
                                                 const uint8_t *msg, size_t len, uint8_t *out,
                                                 size_t cap, int rounds)
{
    double t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            ssize_t w = wsp_tlsrec_seal(&ts[i], cx, msg, len, out, cap);
            if (w <= 0)
                abort();
            sink ^= out[w - 1];
        }
    return (now() - t0) / ((double)n * rounds);
}

/* ns per message with a keyed EVP context per connection: nonce, AAD, data, tag only. */
__attribute__((noinline)) static double
run_keyed(EVP_CIPHER_CTX **cxs, size_t n, const uint8_t *msg, size_t len, uint8_t *out, int rounds)
{
    uint8_t nonce[12] = {0}, aad[5] = {23, 3, 3, 0, 0};
    double t0 = now();
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            int l;
            nonce[11] = (uint8_t)r;
            if (EVP_EncryptInit_ex(cxs[i], NULL, NULL, NULL, nonce) != 1 ||
                EVP_EncryptUpdate(cxs[i], NULL, &l, aad, 5) != 1 ||
                EVP_EncryptUpdate(cxs[i], out, &l, msg, (int)len) != 1 ||
                EVP_EncryptFinal_ex(cxs[i], out + len, &l) != 1 ||
                EVP_CIPHER_CTX_ctrl(cxs[i], EVP_CTRL_AEAD_GET_TAG, 16, out + len) != 1)
                abort();
            sink ^= out[len];
        }
    return (now() - t0) / ((double)n * rounds);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    int rounds = argc > 2 ? atoi(argv[2]) : 20, runs = argc > 3 ? atoi(argv[3]) : 5;
    unsigned only = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 16) : 0;
    size_t only_len = argc > 5 ? strtoul(argv[5], NULL, 10) : 0;
    if (n == 0 || rounds <= 0 || runs <= 0 || runs > 64)
        return 2;
    static const struct {
        uint16_t id;
        const char *evp;
    } suites[] = {{0x1301, "AES-128-GCM"}, {0x1303, "ChaCha20-Poly1305"}, {0xC02B, NULL}};
    static const size_t lens[] = {30, 2048};
    wsp_tlsrec_t *ts = calloc(n, sizeof(*ts));
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    static uint8_t msg[2048], out[4096];
    memset(msg, 'x', sizeof(msg));
    if (ts == NULL || cx == NULL)
        return 1;
    printf("%zu connections x %d rounds, %d runs; ns per message (min / median / max)\n", n, rounds,
           runs);
    for (size_t s = 0; s < sizeof(suites) / sizeof(suites[0]); s++) {
        if (only != 0 && suites[s].id != only)
            continue;
        uint8_t sec[48], cr[32] = {1}, sr[32] = {2};
        for (size_t i = 0; i < n; i++) {
            memcpy(sec, &i, sizeof(i)); /* a distinct key per connection */
            int rv = suites[s].id >> 8 == 0x13
                         ? wsp_tlsrec_init13(&ts[i], suites[s].id, sec, sec)
                         : wsp_tlsrec_init12(&ts[i], suites[s].id, sec, cr, sr, 1);
            if (rv != 0)
                return 1;
        }
        EVP_CIPHER_CTX **cxs = NULL;
        if (suites[s].evp != NULL) {
            EVP_CIPHER *c = EVP_CIPHER_fetch(NULL, suites[s].evp, NULL);
            cxs = calloc(n, sizeof(*cxs));
            for (size_t i = 0; c != NULL && cxs != NULL && i < n; i++)
                if ((cxs[i] = EVP_CIPHER_CTX_new()) == NULL ||
                    EVP_EncryptInit_ex(cxs[i], c, NULL, ts[i].wr.key, ts[i].wr.iv) != 1)
                    return 1;
            EVP_CIPHER_free(c);
        }
        for (size_t k = 0; k < 2; k++) {
            if (only_len != 0 && lens[k] != only_len)
                continue;
            double a[64], b[64];
            for (int r = 0; r < runs; r++) {
                a[r] = run_seal(ts, n, cx, msg, lens[k], out, sizeof(out), rounds);
                b[r] = cxs ? run_keyed(cxs, n, msg, lens[k], out, rounds) : 0;
            }
            qsort(a, (size_t)runs, sizeof(a[0]), cmp);
            qsort(b, (size_t)runs, sizeof(b[0]), cmp);
            printf("%-45s %5zu B: seal %7.0f / %7.0f / %7.0f", wsp_tlsrec_suite_name(suites[s].id),
                   lens[k], a[0], a[runs / 2], a[runs - 1]);
            if (cxs)
                printf("   keyed ctx per conn %7.0f / %7.0f / %7.0f", b[0], b[runs / 2],
                       b[runs - 1]);
            printf("\n");
        }
        for (size_t i = 0; cxs != NULL && i < n; i++)
            EVP_CIPHER_CTX_free(cxs[i]);
        free(cxs);
    }
    EVP_CIPHER_CTX_free(cx);
    free(ts);
    return 0;
}
