/* Broadcast fan-out through the real binary: 500 clients on two shards, SIGUSR1 three times.
 * Each broadcast is the next frame every client reads: so none got one twice, or out of turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "harness.h"

#define NCLIENTS 500

/* Reads exactly one broadcast from each client; checks every payload is the same well-formed
 * message with seq, stamped between t0 and now. Returns the message's time. */
static uint64_t expect_broadcast(wsp_it_client_t **cs, uint64_t seq, uint64_t t0)
{
    static wsp_it_frame_t f;
    char first[128] = "";
    size_t first_len = 0;
    uint64_t time_ms = 0;
    for (size_t i = 0; i < NCLIENTS; i++) {
        assert_int_equal(wsp_it_read_frame(cs[i], &f, WSP_IT_TIMEOUT_MS), 0);
        assert_true(f.fin);
        assert_int_equal(f.rsv, 0);
        assert_false(f.masked); /* RFC 6455 5.1: a server never masks */
        assert_int_equal(f.opcode, WSP_OP_TEXT);
        if (i == 0) {
            assert_true(f.len < sizeof(first));
            memcpy(first, f.payload, f.len + 1);
            first_len = f.len;
            uint64_t got_seq = 0;
            assert_int_equal(wsp_it_parse_time_msg(f.payload, f.len, &time_ms, &got_seq), 0);
            assert_int_equal(got_seq, seq);
            /* Causality, not speed: built after the signal, before we read it. One second of
             * slack covers a wall-clock step between the two processes' readings. */
            assert_true(time_ms + 1000 >= t0);
            assert_true(time_ms <= wsp_it_epoch_ms() + 1000);
        } else {
            assert_int_equal(f.len, first_len);
            assert_memory_equal(f.payload, first, first_len);
        }
    }
    return time_ms;
}

static void test_broadcast_500(void **state)
{
    wsp_it_server_t *srv = *state;
    assert_int_equal(wsp_it_raise_nofile(), 0);
    assert_int_equal(wsp_it_server_start(srv, NULL), 0);
    wsp_it_client_t **cs = calloc(NCLIENTS, sizeof(*cs));
    assert_non_null(cs);
    for (size_t i = 0; i < NCLIENTS; i++) {
        cs[i] = malloc(sizeof(*cs[i]));
        assert_non_null(cs[i]);
        /* The 101 is written in the same shard callback that makes the conn OPEN, before the
         * shard can run a broadcast: every client read its 101, so every conn is OPEN. */
        assert_int_equal(wsp_it_ws_connect(cs[i], srv->port, "/", WSP_IT_TIMEOUT_MS), 0);
    }

    /* The third is the marker: that it comes next shows the second came once. */
    uint64_t prev = 0;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        uint64_t t0 = wsp_it_epoch_ms();
        assert_int_equal(wsp_it_server_signal(srv, SIGUSR1), 0);
        uint64_t time_ms = expect_broadcast(cs, seq, t0);
        assert_true(time_ms + 1000 >= prev);
        prev = time_ms;
        char sseq[32];
        snprintf(sseq, sizeof(sseq), "seq=%llu ", (unsigned long long)seq);
        const char *const done[] = {"event=broadcast ", sseq, "written=500 ", "failed=0 ", NULL};
        assert_int_equal(wsp_it_server_wait_log(srv, done, WSP_IT_TIMEOUT_MS), 0);
    }

    /* Each broadcast is reported once by the coordinator, with both shards counted. */
    char *log = wsp_it_server_log(srv);
    assert_non_null(log);
    const char *const any[] = {"event=broadcast ", NULL};
    assert_int_equal(wsp_it_count_lines(log, any), 3);
    const char *const shards[] = {"event=broadcast ", "shards=2 ", NULL};
    assert_int_equal(wsp_it_count_lines(log, shards), 3);
    free(log);

    for (size_t i = 0; i < NCLIENTS; i++) {
        wsp_it_close(cs[i]);
        free(cs[i]);
    }
    free(cs);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_broadcast_500, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
};
WSP_IT_SUITE(tests, NULL, NULL);
