/* The per-shard auth arrays (server/authidx.c): slots parallel to a table with swap-removal,
 * the user chains, the expiry scan. A model (a plain array of uid/deadline per slot, removed
 * from by the table's own swap) runs beside every operation, and every invariant is checked
 * after each step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "authidx.h"

#define END WSP_AUTHIDX_END

/* What a table with swap-removal holds: the model the index must follow slot for slot. */
typedef struct model_s {
    uint64_t uid[1 << 15];
    uint32_t deadline[1 << 15];
    uint32_t n;
} model_t;

static void model_add(model_t *m, uint64_t uid, uint32_t deadline)
{
    m->uid[m->n] = uid;
    m->deadline[m->n] = deadline;
    m->n++;
}

static void model_remove(model_t *m, uint32_t i)
{
    m->n--;
    m->uid[i] = m->uid[m->n];
    m->deadline[i] = m->deadline[m->n];
}

static void add(wsp_authidx_t *x, model_t *m, uint64_t uid, uint32_t deadline)
{
    assert_int_equal(wsp_authidx_reserve(x, x->n + 1), 0);
    assert_int_equal(wsp_authidx_add(x, uid, deadline), m->n);
    model_add(m, uid, deadline);
}

static void del(wsp_authidx_t *x, model_t *m, uint32_t i)
{
    wsp_authidx_remove(x, i);
    model_remove(m, i);
}

/* The slots of uid, by walking its chain; each must hold uid. */
static uint32_t walk(const wsp_authidx_t *x, uint64_t uid, uint32_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t s = wsp_authidx_find(x, uid, END); s != END; s = wsp_authidx_find(x, uid, s)) {
        assert_true(n < cap);
        assert_true(s < x->n);
        assert_true(x->uid[s] == uid);
        out[n++] = s;
    }
    return n;
}

/* The index equals the model, its chains are whole, and a walk finds exactly the model's
 * slots of uid. */
static void check(const wsp_authidx_t *x, const model_t *m, uint64_t uid)
{
    assert_int_equal(wsp_authidx_check(x), 0);
    assert_int_equal(x->n, m->n);
    for (uint32_t i = 0; i < m->n; i++) {
        assert_true(x->uid[i] == m->uid[i]);
        assert_int_equal(x->deadline[i], m->deadline[i]);
    }
    static uint32_t got[1 << 15];
    uint32_t n = walk(x, uid, got, 1 << 15), want = 0;
    for (uint32_t i = 0; i < m->n; i++)
        want += m->uid[i] == uid;
    assert_int_equal(n, want);
}

static void test_empty(void **state)
{
    (void)state;
    wsp_authidx_t x = {0};
    assert_int_equal(wsp_authidx_find(&x, 7, END), END);
    assert_int_equal(wsp_authidx_expired(&x, 0, 100), END);
    assert_int_equal(wsp_authidx_check(&x), 0);
    wsp_authidx_free(&x);
}

/* A user with several connections, others around it; removing from the middle, the end and
 * the chain's head moves the last entry into the hole and keeps both chains right. */
static void test_swap_removal(void **state)
{
    (void)state;
    static model_t m;
    m.n = 0;
    wsp_authidx_t x = {0};
    /* uids 16 apart share a bucket's low bits in a small table: long chains on purpose. */
    for (uint32_t i = 0; i < 200; i++)
        add(&x, &m, i % 5 == 0 ? 42 : 42 + 16 * (uint64_t)(i + 1), 1000 + i);
    check(&x, &m, 42);
    del(&x, &m, 0); /* a user slot, replaced by the last (another user) */
    check(&x, &m, 42);
    del(&x, &m, m.n - 1); /* the last itself: nothing moves */
    check(&x, &m, 42);
    del(&x, &m, 100); /* a user slot with the last one also the user's, maybe */
    check(&x, &m, 42);
    while (m.n > 0) {
        del(&x, &m, m.n / 2);
        check(&x, &m, 42);
    }
    wsp_authidx_free(&x);
}

/* Random adds and removals against the model, through several growths (rehashes). */
static void test_random(void **state)
{
    (void)state;
    static model_t m;
    m.n = 0;
    wsp_authidx_t x = {0};
    uint64_t r = 0x9E3779B97F4A7C15ull;
    for (int step = 0; step < 40000; step++) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint64_t uid = (r >> 20) % 300; /* few users: many connections each */
        if (m.n == 0 || (r & 3) != 0 || (m.n < 20000 && (r & 12) == 0)) {
            if (m.n < (1u << 15))
                add(&x, &m, uid * 0x100000001b3ull, (uint32_t)(r >> 40));
        } else {
            del(&x, &m, (uint32_t)((r >> 8) % m.n));
        }
        if (step % 997 == 0)
            check(&x, &m, uid * 0x100000001b3ull);
    }
    check(&x, &m, 5 * 0x100000001b3ull);
    /* Chains stay near WSP_AUTHIDX_CHAIN long on average: buckets follow the capacity. */
    assert_true(x.nbuckets * WSP_AUTHIDX_CHAIN == x.cap);
    wsp_authidx_free(&x);
}

/* The expiry scan: from the end down, every slot whose deadline passed, and removing what it
 * finds (the table's swap) only brings in entries already looked at. */
static void test_expiry_scan(void **state)
{
    (void)state;
    static model_t m;
    m.n = 0;
    wsp_authidx_t x = {0};
    for (uint32_t i = 0; i < 1000; i++)
        add(&x, &m, i * 7919u, i % 3 == 0 ? 500 : 2000); /* a third expires at 500 */
    uint32_t closed = 0;
    for (uint32_t i = wsp_authidx_expired(&x, x.n, 1000); i != END;
         i = wsp_authidx_expired(&x, i, 1000)) {
        assert_true(x.deadline[i] <= 1000);
        del(&x, &m, i); /* what the shard's close does */
        closed++;
    }
    assert_int_equal(closed, 334);
    check(&x, &m, 0);
    for (uint32_t i = 0; i < x.n; i++)
        assert_int_equal(x.deadline[i], 2000); /* none left behind, none closed wrongly */
    assert_int_equal(wsp_authidx_expired(&x, x.n, 1999), END);
    assert_int_equal(wsp_authidx_expired(&x, x.n, 2000), x.n - 1); /* <=: at the deadline */
    wsp_authidx_free(&x);
}

/* The check itself can fail: a broken chain is caught. */
static void test_check_catches(void **state)
{
    (void)state;
    static model_t m;
    m.n = 0;
    wsp_authidx_t x = {0};
    for (uint32_t i = 0; i < 100; i++)
        add(&x, &m, i, 1);
    assert_int_equal(wsp_authidx_check(&x), 0);
    uint32_t b = (uint32_t)(x.uid[5] & (x.nbuckets - 1));
    uint32_t saved = x.head[b];
    x.head[b] = END; /* a bucket's chain lost */
    assert_int_equal(wsp_authidx_check(&x), -EINVAL);
    x.head[b] = saved;
    x.uid[3] ^= 1; /* an entry in the wrong bucket */
    assert_int_equal(wsp_authidx_check(&x), -EINVAL);
    x.uid[3] ^= 1;
    assert_int_equal(wsp_authidx_check(&x), 0);
    wsp_authidx_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),         cmocka_unit_test(test_swap_removal),
        cmocka_unit_test(test_random),        cmocka_unit_test(test_expiry_scan),
        cmocka_unit_test(test_check_catches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
