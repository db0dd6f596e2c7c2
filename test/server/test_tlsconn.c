/* server/tlsconn.c (one TLS connection) and server/tlsterm.c (the process's context) against
 * a real OpenSSL client over memory: input in every split down to one byte at a time, the
 * partial record kept only while incomplete, KeyUpdate, close_notify, renegotiation, a key
 * at its record limit, a reload while two threads make handshakes, the ticket keys' memfd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlsconn.h"
#include "tlstest.h"

/* The server side of one connection and what it handed back. */
typedef struct srv_s {
    wsp_tlsconn_t *t;
    wsp_tlsconn_res_t res;
    BIO *to_client;     /* the client's input BIO */
    uint8_t got[65536]; /* plaintext the connection received */
    size_t ngot;
    int ready, stop_after; /* io->ready calls; plain returns 1 once ngot >= stop_after */
    wsp_tls_info_t info;
} srv_t;

static int on_write(void *user, const uint8_t *p, size_t n)
{
    srv_t *s = user;
    assert_int_equal(BIO_write(s->to_client, p, (int)n), (int)n);
    return 0;
}

static int on_ready(void *user, const wsp_tls_info_t *info)
{
    srv_t *s = user;
    s->ready++;
    s->info = *info;
    return 0;
}

static int on_plain(void *user, const uint8_t *p, size_t n)
{
    srv_t *s = user;
    assert_true(s->ngot + n <= sizeof(s->got));
    memcpy(s->got + s->ngot, p, n);
    s->ngot += n;
    return s->stop_after && s->ngot >= (size_t)s->stop_after;
}

static const wsp_tlsconn_io_t io = {.write = on_write, .ready = on_ready, .plain = on_plain};

static wsp_tlsterm_t *term_new(const char *cert, const char *key)
{
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN];
    assert_int_equal(wsp_tlsterm_keys_random(keys), 0);
    char err[256] = "";
    wsp_tlsterm_t *t = NULL;
    if (wsp_tlsterm_new(&t, tt_path(0, cert), tt_path(1, key), keys, 0, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    return t;
}

static void srv_init(srv_t *s, wsp_tlsterm_t *term, SSL *cl)
{
    memset(s, 0, sizeof(*s));
    s->t = wsp_tlsconn_new();
    assert_non_null(s->t);
    s->res.term = term;
    s->res.cx = EVP_CIPHER_CTX_new();
    s->res.pt = malloc(WSP_TLSREC_OPEN_MAX);
    s->res.out = malloc(WSP_TLSCONN_OUT);
    assert_true(s->res.cx && s->res.pt && s->res.out);
    s->to_client = SSL_get_rbio(cl);
}

static void srv_free(srv_t *s)
{
    wsp_tlsconn_free(s->t);
    EVP_CIPHER_CTX_free(s->res.cx);
    free(s->res.pt);
    free(s->res.out);
}

static SSL *client(SSL_CTX *cctx, SSL_SESSION *sess)
{
    SSL *cl = SSL_new(cctx);
    assert_non_null(cl);
    SSL_set_bio(cl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(cl);
    assert_int_equal(SSL_set1_host(cl, "localhost"), 1);
    if (sess)
        assert_int_equal(SSL_set_session(cl, sess), 1);
    return cl;
}

/* Moves what the client wrote into the server, split into pieces of step bytes (0: all at
 * once). Returns the last result of wsp_tlsconn_input() (or 0 when nothing was moved). */
static int pump(srv_t *s, SSL *cl, size_t step)
{
    static _Thread_local uint8_t buf[1 << 18]; /* per thread: test_term_reload_under_load */
    int n = BIO_read(SSL_get_wbio(cl), buf, sizeof(buf));
    int rv = 0;
    for (size_t off = 0; n > 0 && off < (size_t)n && rv >= 0;) {
        size_t k = step == 0 || (size_t)n - off < step ? (size_t)n - off : step;
        rv = wsp_tlsconn_input(s->t, &s->res, buf + off, k, &io, s);
        off += k;
    }
    return rv;
}

/* Handshake both ways with the client's bytes fed step at a time; asserts success. */
static void connect_pair(srv_t *s, SSL *cl, size_t step)
{
    for (int round = 0; round < 16 && (s->ready == 0 || !SSL_is_init_finished(cl)); round++) {
        (void)SSL_do_handshake(cl);
        assert_true(pump(s, cl, step) >= 0);
    }
    assert_int_equal(s->ready, 1);
    assert_int_equal(s->t->state, WSP_TLSCONN_OPEN);
    assert_null(s->t->hs); /* the SSL object is gone */
    assert_false(s->t->flags & 0xF0u);
}

/* The client reads exactly len bytes of application data. */
static void cl_read(SSL *cl, uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int r = SSL_read(cl, out + got, (int)(len - got));
        assert_true(r > 0);
        got += (size_t)r;
    }
}

static void srv_send(srv_t *s, const uint8_t *p, size_t n)
{
    ssize_t k = wsp_tlsconn_seal(s->t, &s->res, p, n, s->res.out, WSP_TLSCONN_OUT);
    assert_true(k > 0);
    assert_int_equal(on_write(s, s->res.out, (size_t)k), 0);
}

static void test_splits(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    static const size_t steps[] = {0, 1, 2, 5, 7, 4096, 16389};
    for (int v = 0; v < 2; v++) {
        SSL_CTX *cctx = tt_client_ctx("ca.pem", v ? TLS1_3_VERSION : TLS1_2_VERSION,
                                      v ? TLS1_3_VERSION : TLS1_2_VERSION, NULL, NULL);
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
            SSL *cl = client(cctx, NULL);
            srv_t s;
            srv_init(&s, term, cl);
            connect_pair(&s, cl, steps[i]);
            assert_int_equal(s.info.version, v ? 0x0304 : 0x0303);
            uint8_t msg[40000];
            tt_fill(msg, sizeof(msg), (uint32_t)i);
            /* 30 B, then 40,000 B in three records: every boundary crosses a split. */
            assert_int_equal(SSL_write(cl, msg, 30), 30);
            assert_int_equal(SSL_write(cl, msg, sizeof(msg)), (int)sizeof(msg));
            assert_int_equal(pump(&s, cl, steps[i]), WSP_TLSCONN_MORE);
            assert_int_equal(s.ngot, 30 + sizeof(msg));
            assert_memory_equal(s.got, msg, 30);
            assert_memory_equal(s.got + 30, msg, sizeof(msg));
            assert_null(s.t->part); /* at a record boundary nothing is kept */
            srv_send(&s, msg, sizeof(msg));
            uint8_t back[40000];
            cl_read(cl, back, sizeof(back));
            assert_memory_equal(back, msg, sizeof(msg));
            srv_free(&s);
            SSL_free(cl);
        }
        SSL_CTX_free(cctx);
    }
    wsp_tlsterm_free(term);
}

static void test_partial_kept_only_while_incomplete(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    SSL_CTX *cctx = tt_client_ctx("ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL);
    SSL *cl = client(cctx, NULL);
    srv_t s;
    srv_init(&s, term, cl);
    connect_pair(&s, cl, 0);
    assert_int_equal(SSL_write(cl, "hello", 5), 5);
    uint8_t rec[64];
    int n = BIO_read(SSL_get_wbio(cl), rec, sizeof(rec));
    assert_true(n > 10);
    assert_int_equal(wsp_tlsconn_input(s.t, &s.res, rec, 3, &io, &s), WSP_TLSCONN_MORE);
    assert_non_null(s.t->part); /* header incomplete: kept */
    assert_int_equal(wsp_tlsconn_input(s.t, &s.res, rec + 3, (size_t)n - 4, &io, &s), 0);
    assert_non_null(s.t->part);
    assert_int_equal(s.ngot, 0);
    assert_int_equal(wsp_tlsconn_input(s.t, &s.res, rec + n - 1, 1, &io, &s), 0);
    assert_null(s.t->part); /* complete: freed */
    assert_int_equal(s.ngot, 5);
    srv_free(&s);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    wsp_tlsterm_free(term);
}

/* Swaps s's TLS state for one resumed from it, as a live upgrade's new process makes it. */
static void srv_move(srv_t *s)
{
    wsp_tlsconn_t *t = wsp_tlsconn_new();
    assert_non_null(t);
    assert_int_equal(wsp_tlsconn_resume(t, &s->t->rec, s->t->part, s->t->part_len), 0);
    assert_int_equal(t->state, WSP_TLSCONN_OPEN);
    wsp_tlsconn_free(s->t);
    s->t = t;
}

/* A live upgrade in the middle of a record (its header cut, then its body cut): the new
 * state completes it with the rest and opens it; then a KeyUpdate and traffic both ways. A
 * "part" that is a whole record, which would have been opened, is refused. */
static void test_resume_part(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    SSL_CTX *cctx = tt_client_ctx("ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL);
    static const size_t cuts[] = {3, 12};
    for (size_t i = 0; i < 2; i++) {
        SSL *cl = client(cctx, NULL);
        srv_t s;
        srv_init(&s, term, cl);
        connect_pair(&s, cl, 0);
        assert_int_equal(SSL_write(cl, "hello upgrade", 13), 13);
        uint8_t rec[64];
        int n = BIO_read(SSL_get_wbio(cl), rec, sizeof(rec));
        assert_true(n > (int)cuts[i]);
        assert_int_equal(wsp_tlsconn_input(s.t, &s.res, rec, cuts[i], &io, &s), 0);
        assert_int_equal(s.t->part_len, cuts[i]);
        srv_move(&s);
        assert_int_equal(
            wsp_tlsconn_input(s.t, &s.res, rec + cuts[i], (size_t)n - cuts[i], &io, &s), 0);
        assert_null(s.t->part);
        assert_int_equal(s.ngot, 13);
        assert_memory_equal(s.got, "hello upgrade", 13);
        srv_move(&s); /* nothing in part: moves without one */
        assert_int_equal(SSL_key_update(cl, SSL_KEY_UPDATE_REQUESTED), 1);
        assert_int_equal(SSL_write(cl, "after", 5), 5);
        assert_int_equal(pump(&s, cl, 0), 0);
        assert_int_equal(s.ngot, 18);
        srv_send(&s, (const uint8_t *)"reply", 5); /* under our new key: the client follows */
        uint8_t b[5];
        cl_read(cl, b, 5);
        assert_memory_equal(b, "reply", 5);
        wsp_tlsconn_t *t = wsp_tlsconn_new();
        assert_int_equal(wsp_tlsconn_resume(t, &s.t->rec, rec, (size_t)n), -EBADMSG);
        wsp_tlsconn_free(t);
        srv_free(&s);
        SSL_free(cl);
    }
    SSL_CTX_free(cctx);
    wsp_tlsterm_free(term);
}

static void test_key_update_and_close(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    SSL_CTX *cctx = tt_client_ctx("ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL);
    SSL *cl = client(cctx, NULL);
    srv_t s;
    srv_init(&s, term, cl);
    connect_pair(&s, cl, 0);
    uint8_t b[8];
    assert_int_equal(SSL_key_update(cl, SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(SSL_write(cl, "after", 5), 5);
    assert_int_equal(pump(&s, cl, 1), 0);
    assert_int_equal(s.ngot, 5);
    srv_send(&s, (const uint8_t *)"reply", 5); /* under our new key: the client follows */
    cl_read(cl, b, 5);
    assert_memory_equal(b, "reply", 5);
    /* close_notify: ours answers, the client sees a clean end. */
    assert_true(SSL_shutdown(cl) >= 0);
    assert_int_equal(pump(&s, cl, 0), WSP_TLSCONN_CLOSED);
    assert_int_equal(SSL_read(cl, b, sizeof(b)), 0);
    assert_int_equal(SSL_get_error(cl, 0), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(wsp_tlsconn_close_notify(s.t, &s.res), 5 + 2 + 1 + 16);
    /* A TLS 1.3 key at its record limit (AES-GCM) moves on by itself: a KeyUpdate record
     * leads the data record, both 27 bytes, and the new key starts at sequence 0. */
    assert_int_equal(s.info.suite, 0x1301);
    s.t->rec.wr.seq = WSP_TLSREC_AESGCM_LIMIT - 2;
    assert_int_equal(
        wsp_tlsconn_seal(s.t, &s.res, (const uint8_t *)"limit", 5, s.res.out, WSP_TLSCONN_OUT),
        27 + 27);
    assert_int_equal(s.t->rec.wr.seq, 1);
    srv_free(&s);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    wsp_tlsterm_free(term);
}

static void test_failures(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    /* Not TLS: refused at the first bytes, the reason kept, nothing else allocated. */
    srv_t s;
    SSL_CTX *c12 = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_2_VERSION, NULL, NULL);
    SSL *cl = client(c12, NULL);
    srv_init(&s, term, cl);
    static const char get[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(wsp_tlsconn_input(s.t, &s.res, (const uint8_t *)get, 4, &io, &s), -EPROTO);
    assert_int_equal(wsp_tlsconn_fail_reason(s.t), WSP_TLS_FAIL_NOT_TLS);
    assert_int_equal(s.t->state, WSP_TLSCONN_FAILED);
    assert_null(s.t->hs);
    srv_free(&s);
    /* TLS 1.2 renegotiation: refused with no_renegotiation. */
    srv_init(&s, term, cl);
    connect_pair(&s, cl, 0);
    assert_int_equal(SSL_renegotiate(cl), 1);
    (void)SSL_do_handshake(cl);
    assert_int_equal(pump(&s, cl, 0), -EOPNOTSUPP);
    srv_free(&s);
    SSL_free(cl);
    /* A record that does not authenticate: bad_record_mac written, -EBADMSG. */
    cl = client(c12, NULL);
    srv_init(&s, term, cl);
    connect_pair(&s, cl, 0);
    assert_int_equal(SSL_write(cl, "x", 1), 1);
    uint8_t rec[64];
    int n = BIO_read(SSL_get_wbio(cl), rec, sizeof(rec));
    rec[n - 1] ^= 1;
    assert_int_equal(wsp_tlsconn_input(s.t, &s.res, rec, (size_t)n, &io, &s), -EBADMSG);
    srv_free(&s);
    SSL_free(cl);
    SSL_CTX_free(c12);
    wsp_tlsterm_free(term);
}

static void test_plain_refuses_rest(void **state)
{
    (void)state;
    wsp_tlsterm_t *term = term_new("ec.pem", "ec.key");
    SSL_CTX *cctx = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    SSL *cl = client(cctx, NULL);
    srv_t s;
    srv_init(&s, term, cl);
    connect_pair(&s, cl, 0);
    s.stop_after = 3;
    for (int i = 0; i < 3; i++)
        assert_int_equal(SSL_write(cl, "abc", 3), 3);
    assert_int_equal(pump(&s, cl, 0), WSP_TLSCONN_MORE); /* the rest dropped, quietly */
    assert_int_equal(s.ngot, 3);
    srv_free(&s);
    SSL_free(cl);
    SSL_CTX_free(cctx);
    wsp_tlsterm_free(term);
}

static void test_ktls_refused_here(void **state)
{
    (void)state;
    /* Without the tls ULP (this machine) the connection keeps sealing: the flag stays off.
     * Where the kernel has it, the ULP refuses a socketpair (not TCP) all the same. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    wsp_tlsconn_t *t = wsp_tlsconn_new();
    t->state = WSP_TLSCONN_OPEN;
    assert_true(wsp_tlsconn_ktls(t, sv[0]) < 0);
    assert_false(t->flags & WSP_TLSCONN_F_KTLS);
    wsp_tlsconn_free(t);
    close(sv[0]);
    close(sv[1]);
    int p = wsp_tlsterm_ktls_probe();
    assert_true(p == 0 || p == -ENOENT);
}

/* --- tlsterm --- */

static void test_term_errors_and_reload(void **state)
{
    (void)state;
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN] = {1};
    char err[256] = "";
    wsp_tlsterm_t *t = NULL;
    assert_int_equal(wsp_tlsterm_new(&t, tt_path(0, "ec.pem"), tt_path(1, "other.key"), keys, 0,
                                     err, sizeof(err)),
                     -EINVAL);
    assert_null(t);
    assert_non_null(strstr(err, "does not match"));
    assert_int_equal(
        wsp_tlsterm_check(tt_path(0, "garbage.pem"), tt_path(1, "ec.key"), err, sizeof(err)),
        -EINVAL);
    assert_int_equal(
        wsp_tlsterm_check(tt_path(0, "rsa.pem"), tt_path(1, "rsa.key"), err, sizeof(err)), 0);
    /* A reload reads the same paths: swap the files underneath it. */
    char dir[] = "/tmp/wsp-tlsterm-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[64], key[64], cmd[512];
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    snprintf(cmd, sizeof(cmd), "cp %s %s && cp %s %s", tt_path(0, "ec.pem"), cert,
             tt_path(1, "ec.key"), key);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(wsp_tlsterm_new(&t, cert, key, keys, 0, err, sizeof(err)), 0);
    assert_int_equal(wsp_tlsterm_ktls(t), 0);
    snprintf(cmd, sizeof(cmd), "cp %s %s", tt_path(0, "other.key"), key);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(wsp_tlsterm_reload(t), -EINVAL); /* kept the current pair */
    wsp_tls_hs_t *h = wsp_tlsterm_hs_new(t);
    assert_non_null(h);
    wsp_tls_hs_free(h);
    snprintf(cmd, sizeof(cmd), "cp %s %s && cp %s %s", tt_path(0, "rsa.pem"), cert,
             tt_path(1, "rsa.key"), key);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(wsp_tlsterm_reload(t), 0);
    wsp_tlsterm_free(t);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

typedef struct hs_thread_s {
    wsp_tlsterm_t *t;
    SSL_CTX *cctx;
    int done;
} hs_thread_t;

/* Whole handshakes on the terminator while the main thread reloads it. */
static void *hs_loop(void *arg)
{
    hs_thread_t *a = arg;
    for (int i = 0; i < 40; i++) {
        SSL *cl = client(a->cctx, NULL);
        srv_t s;
        srv_init(&s, a->t, cl);
        connect_pair(&s, cl, 0);
        srv_free(&s);
        SSL_free(cl);
        a->done++;
    }
    return NULL;
}

static void test_term_reload_under_load(void **state)
{
    (void)state;
    wsp_tlsterm_t *t = term_new("ec.pem", "ec.key");
    SSL_CTX *cctx = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    hs_thread_t a[2] = {{t, cctx, 0}, {t, cctx, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hs_loop, &a[i]), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(wsp_tlsterm_reload(t), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(a[0].done + a[1].done, 80);
    SSL_CTX_free(cctx);
    wsp_tlsterm_free(t);
}

static void test_term_keys_fd(void **state)
{
    (void)state;
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN], back[WSP_TLS_TICKET_KEYS_LEN];
    assert_int_equal(wsp_tlsterm_keys_random(keys), 0);
    int fd = wsp_tlsterm_keys_fd(keys);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(pwrite(fd, "x", 1, 0), -1); /* sealed: nobody changes them */
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    assert_int_equal(wsp_tlsterm_keys_read(dup, back), 0); /* reads, then closes dup */
    assert_memory_equal(keys, back, sizeof(keys));
    assert_int_equal(fcntl(dup, F_GETFD), -1);
    close(fd);
}

static int teardown(void **state)
{
    (void)state;
    tt_certs_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_partial_kept_only_while_incomplete),
        cmocka_unit_test(test_resume_part),
        cmocka_unit_test(test_key_update_and_close),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_plain_refuses_rest),
        cmocka_unit_test(test_ktls_refused_here),
        cmocka_unit_test(test_term_errors_and_reload),
        cmocka_unit_test(test_term_reload_under_load),
        cmocka_unit_test(test_term_keys_fd),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
