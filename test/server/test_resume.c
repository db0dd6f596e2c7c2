/* server/resume.c: how a wspush.v1 connection comes in. A shard's table and its process's
 * positions are set up by hand; each case checks the decision (done, wait, fetch), the
 * hello and the frames owed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "resume.h"

#define EPOCH "e1"

typedef struct fix_s {
    wsp_chan_hist_t hist;
    wsp_chan_table_t t;
    wsp_chan_pos_t pos;
} fix_t;

static fix_t *fix_new(int complete)
{
    fix_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->hist.size = 100;
    f->hist.max_bytes = 1 << 20;
    f->hist.nshards = 1;
    atomic_init(&f->hist.units, 0);
    wsp_chan_table_init(&f->t, &f->hist, complete ? EPOCH : NULL, complete ? 2 : 0);
    assert_int_equal(
        wsp_chan_pos_init(&f->pos, complete ? EPOCH : NULL, complete ? 2 : 0, complete), 0);
    return f;
}

static void fix_free(fix_t *f)
{
    wsp_chan_table_free(&f->t);
    wsp_chan_pos_free(&f->pos);
    free(f);
}

/* The coordinator numbers message seq of chan; the shard processes it when shard is set. */
static void publish(fix_t *f, const char *chan, uint64_t seq, int shard)
{
    uint64_t g = wsp_chan_pos_note(&f->pos, chan, strlen(chan), seq, EPOCH, 2, 0);
    if (!shard)
        return;
    char p[64];
    int n = snprintf(p, sizeof(p), "%s#%llu", chan, (unsigned long long)seq);
    wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, p, (size_t)n);
    wsp_chan_position(&f->t, g);
    assert_int_equal(wsp_chan_record(&f->t, chan, strlen(chan), seq, EPOCH, 2, 0, m, 0), 0);
    wsp_msg_unref(m);
}

/* A resume state for channels "name[:since]" separated by commas, in epoch (NULL: none). */
static void ask(wsp_resume_t *r, const char *list, const char *epoch)
{
    memset(r, 0, sizeof(*r));
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *colon = strchr(tok, ':');
        unsigned i = r->ask.n++;
        if (colon) {
            *colon = '\0';
            r->ask.ch[i].has_since = 1;
            r->ask.ch[i].since = strtoull(colon + 1, NULL, 10);
        }
        r->ask.ch[i].len = (uint8_t)strlen(tok);
        memcpy(r->ask.ch[i].name, tok, strlen(tok));
    }
    if (epoch) {
        r->ask.epoch_len = (uint8_t)strlen(epoch);
        memcpy(r->ask.epoch, epoch, strlen(epoch));
    }
}

/* Decides; for DONE checks the hello's text and the frames' payloads (chan#seq, in order). */
static int decide(fix_t *f, wsp_resume_t *r, int redis, int peers, int final, const char *hello,
                  const char *frames)
{
    wsp_resume_ctx_t x = {&f->t, &f->pos, redis, peers, 0, final};
    wsp_resume_plan_t plan;
    int rv = wsp_resume_decide(r, &x, &plan);
    if (rv != WSP_RESUME_DONE)
        return rv;
    assert_int_equal(plan.hello->bytes[1] & 0x7f, strlen(hello));
    assert_memory_equal(plan.hello->bytes + 2, hello, strlen(hello));
    char got[512] = "";
    for (unsigned i = 0; i < plan.n; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof(got) - l, "%s%.*s", i ? " " : "", (int)plan.frames[i]->len - 2,
                 (const char *)plan.frames[i]->bytes + 2);
    }
    assert_string_equal(got, frames);
    wsp_resume_plan_free(&plan);
    return rv;
}

static void test_local(void **state)
{
    (void)state;
    fix_t *f = fix_new(1);
    for (uint64_t s = 1; s <= 10; s++)
        publish(f, "a", s, 1);
    wsp_resume_t r;
    ask(&r, "a:3", EPOCH);
    assert_int_equal(decide(f, &r, 0, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":10},\"recovered\":{\"a\":true}}",
                            "a#4 a#5 a#6 a#7 a#8 a#9 a#10"),
                     WSP_RESUME_DONE);
    /* No since: the hello only; a channel never published is at 0. */
    ask(&r, "a,time", NULL);
    assert_int_equal(decide(f, &r, 0, 0, 0, "{\"epoch\":\"e1\",\"top\":{\"a\":10,\"time\":0}}", ""),
                     WSP_RESUME_DONE);
    /* Nothing missed. */
    ask(&r, "a:10", EPOCH);
    assert_int_equal(decide(f, &r, 0, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":10},\"recovered\":{\"a\":true}}", ""),
                     WSP_RESUME_DONE);
    /* Another epoch, or ahead of a complete process: not recovered, never silent. */
    ask(&r, "a:3", "other");
    assert_int_equal(decide(f, &r, 0, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":10},\"recovered\":{\"a\":false}}",
                            ""),
                     WSP_RESUME_DONE);
    ask(&r, "a:11", EPOCH);
    assert_int_equal(decide(f, &r, 0, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":10},\"recovered\":{\"a\":false}}",
                            ""),
                     WSP_RESUME_DONE);
    /* Under --procs a peer process may be ahead: wait, then decide with what is known. */
    assert_int_equal(decide(f, &r, 0, 1, 0, "", ""), WSP_RESUME_WAIT);
    assert_int_equal(decide(f, &r, 0, 1, 1,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":10},\"recovered\":{\"a\":false}}",
                            ""),
                     WSP_RESUME_DONE);
    fix_free(f);
}

/* The shard is behind its process: what it reports is its own position, and a client that
 * already has more waits until the shard has processed it. */
static void test_behind(void **state)
{
    (void)state;
    fix_t *f = fix_new(1);
    for (uint64_t s = 1; s <= 5; s++)
        publish(f, "a", s, 1);
    publish(f, "a", 6, 0); /* in the shard's ring, not processed yet */
    publish(f, "b", 1, 0);
    wsp_resume_t r;
    ask(&r, "a:2", EPOCH);
    assert_int_equal(decide(f, &r, 0, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":5},\"recovered\":{\"a\":true}}",
                            "a#3 a#4 a#5"),
                     WSP_RESUME_DONE);
    ask(&r, "a:6", EPOCH); /* it saw 6 on another shard */
    assert_int_equal(decide(f, &r, 0, 0, 0, "", ""), WSP_RESUME_WAIT);
    ask(&r, "b", NULL); /* no state of its own for b, and the process moved it */
    assert_int_equal(decide(f, &r, 0, 0, 0, "", ""), WSP_RESUME_WAIT);
    assert_int_equal(decide(f, &r, 0, 0, 1, "{\"epoch\":\"e1\",\"top\":{\"b\":null}}", ""),
                     WSP_RESUME_DONE);
    publish(f, "a", 6, 1); /* the shard catches up */
    ask(&r, "a:6,b", EPOCH);
    assert_int_equal(
        decide(f, &r, 0, 0, 0,
               "{\"epoch\":\"e1\",\"top\":{\"a\":6,\"b\":1},\"recovered\":{\"a\":true}}", ""),
        WSP_RESUME_DONE);
    fix_free(f);
}

/* Under --redis: what the shard does not know is fetched; the answer, then the history, make
 * the replay. */
static void test_fetched(void **state)
{
    (void)state;
    fix_t *f = fix_new(0);
    publish(f, "a", 8, 1); /* this process subscribed late: it saw 8 first */
    publish(f, "a", 9, 1);
    wsp_resume_t r;
    ask(&r, "a:5", EPOCH);
    assert_int_equal(decide(f, &r, 1, 0, 0, "", ""), WSP_RESUME_FETCH);
    /* Redis: epoch e1, a at 8 (9 was published after the fetch), entries 6..8. */
    r.res.status = 0;
    r.res.epoch_len = 2;
    memcpy(r.res.epoch, EPOCH, 3);
    r.res.ch[0].top = 8;
    r.res.ch[0].n = 3;
    r.res.ch[0].frames = calloc(3, sizeof(wsp_msg_t *));
    for (int k = 0; k < 3; k++) {
        char p[16];
        int n = snprintf(p, sizeof(p), "a#%d", 6 + k);
        r.res.ch[0].frames[k] = wsp_frame_msg(WSP_OP_TEXT, p, (size_t)n);
    }
    wsp_resume_fetched(&r, &f->t);
    assert_int_equal(decide(f, &r, 1, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"a\":9},\"recovered\":{\"a\":true}}",
                            "a#6 a#7 a#8 a#9"),
                     WSP_RESUME_DONE);
    /* Redis answered for another epoch: not usable. */
    wsp_resume_t r2 = r;
    memset(r2.res.ch, 0, sizeof(r2.res.ch));
    memcpy(r2.res.epoch, "zz", 3);
    r2.fetched = 0;
    wsp_resume_fetched(&r2, &f->t);
    assert_int_equal(r2.res.status, -ESTALE);
    /* One fetch per connection: a failed one is not asked again. */
    wsp_resume_t r3;
    ask(&r3, "q:1", EPOCH);
    assert_int_equal(decide(f, &r3, 1, 0, 0, "", ""), WSP_RESUME_FETCH);
    r3.res.status = -EIO;
    wsp_resume_fetched(&r3, &f->t);
    assert_int_equal(decide(f, &r3, 1, 0, 0,
                            "{\"epoch\":\"e1\",\"top\":{\"q\":null},\"recovered\":{\"q\":false}}",
                            ""),
                     WSP_RESUME_DONE);
    for (int k = 0; k < 3; k++)
        wsp_msg_unref(r.res.ch[0].frames[k]);
    free(r.res.ch[0].frames);
    fix_free(f);
}

static void test_ask(void **state)
{
    (void)state;
    wsp_chanlist_t cl;
    wsp_framed_resume_t rs;
    wsp_resume_ask_t a;
    const char *q = "channels=a,time&since=time:4&epoch=xy";
    assert_int_equal(wsp_channels_parse_query(q, strlen(q), &cl), 0);
    assert_int_equal(wsp_framed_parse_resume(q, strlen(q), &rs), 0);
    assert_int_equal(wsp_resume_ask(&a, &cl, &rs), 0);
    assert_int_equal(a.n, 2);
    assert_true(a.wants_default);
    assert_false(a.ch[0].has_since);
    assert_true(a.ch[1].has_since);
    assert_int_equal(a.ch[1].since, 4);
    assert_string_equal(a.epoch, "xy");
    q = "channels=a&since=b:1&epoch=xy"; /* b is not asked for */
    assert_int_equal(wsp_channels_parse_query(q, strlen(q), &cl), 0);
    assert_int_equal(wsp_framed_parse_resume(q, strlen(q), &rs), 0);
    assert_int_equal(wsp_resume_ask(&a, &cl, &rs), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_behind),
        cmocka_unit_test(test_fetched),
        cmocka_unit_test(test_ask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
