#include "supervisor.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "alloc.h"
#include "coordinator.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "redis.h"

#define WSP_SUPER_KILL_EXTRA_MS 10000 /* SIGTERM to SIGKILL: the workers' drain, and room */
#define WSP_SUPER_BACKOFF_MIN_MS 100
#define WSP_SUPER_BACKOFF_MAX_MS 5000
#define WSP_SUPER_STABLE_MS 10000 /* a worker that lived this long resets the backoff */

typedef struct wsp_super_s wsp_super_t;

/* One incarnation of a worker: its process and its socketpair end. Freed when both handles
 * have closed; a restart makes a new one. */
typedef struct wsp_worker_s {
    uv_process_t proc;
    uv_pipe_t pipe;
    wsp_super_t *s;
    unsigned idx;
    int handles; /* open handles; the last close frees */
    wsp_ipc_reader_t rd;
} wsp_worker_t;

typedef struct wsp_slot_s {
    wsp_worker_t *w; /* NULL while dead */
    uv_timer_t restart;
    unsigned failures; /* consecutive short lives: the backoff exponent */
    uint64_t started_ms;
} wsp_slot_t;

struct wsp_super_s {
    uv_loop_t loop;
    uv_signal_t sig_usr1, sig_int, sig_term;
    uv_timer_t tick, kill_timer;
    const wsp_config_t *cfg;
    char **wargv;
    wsp_slot_t *slots;
    unsigned n;
    unsigned alive;
    uint64_t seq;
    uint64_t next_tick_ms;
    int stopping;
    int finished;
    int metrics_fd;          /* memfd holding every worker's counters */
    wsp_proc_stats_t *stats; /* its mapping: n slots */
    wsp_admin_t *admin;
    wsp_redis_t *redis; /* publisher only: the workers subscribe */
};

static void super_spawn(wsp_super_t *s, unsigned i);

static void on_worker_handle_close(uv_handle_t *h)
{
    wsp_worker_t *w = h->data;
    if (--w->handles == 0) {
        wsp_ipc_reset(&w->rd);
        free(w);
    }
}

static void on_super_write(uv_write_t *req, int status)
{
    (void)status; /* a dead worker shows up in on_worker_exit */
    free(req);
}

/* Sends one packet to a live worker; the bytes are copied. */
static int super_send(wsp_worker_t *w, uint8_t type, uint64_t seq, const uint8_t *payload,
                      uint32_t len)
{
    uv_write_t *req = malloc(sizeof(*req) + WSP_IPC_HDR + len);
    if (req == NULL)
        return -ENOMEM;
    uint8_t *p = (uint8_t *)(req + 1);
    wsp_ipc_header(p, type, seq, len);
    if (len)
        memcpy(p + WSP_IPC_HDR, payload, len);
    uv_buf_t b = uv_buf_init((char *)p, WSP_IPC_HDR + len);
    int rv = uv_write(req, (uv_stream_t *)&w->pipe, &b, 1, on_super_write);
    if (rv < 0)
        free(req);
    return rv;
}

/* Hands the same payload (channel + message, packed) and seq to every live worker. */
static uint64_t super_publish_packed(wsp_super_t *s, const uint8_t *packed, uint32_t len,
                                     const char *why)
{
    if (s->stopping)
        return 0;
    s->seq++;
    unsigned sent = 0;
    for (unsigned i = 0; i < s->n; i++) {
        wsp_worker_t *w = s->slots[i].w;
        if (w == NULL)
            continue;
        int rv = super_send(w, WSP_IPC_BROADCAST, s->seq, packed, len);
        if (rv < 0)
            WSP_LOG(WSP_LOG_WARN, "event=worker_send_failed worker=%u error=%s", i,
                    uv_err_name(rv));
        else
            sent++;
    }
    WSP_LOG(WSP_LOG_INFO, "event=supervisor_broadcast seq=%" PRIu64 " reason=%s workers=%u", s->seq,
            why, sent);
    return s->seq;
}

static int super_publish(wsp_super_t *s, const char *chan, size_t chan_len, const uint8_t *payload,
                         size_t len, const char *why, uint64_t *seq)
{
    /* Off the hot path (one per broadcast, not per connection): a packed copy. */
    uint8_t *packed = malloc(1 + chan_len + len);
    if (packed == NULL)
        return -ENOMEM;
    int n = wsp_ipc_pack_channel(packed, 1 + chan_len + len, chan, chan_len, payload, len);
    if (n < 0) {
        free(packed);
        return n;
    }
    uint64_t q = super_publish_packed(s, packed, (uint32_t)n, why);
    free(packed);
    if (seq)
        *seq = q;
    return 0;
}

static void super_broadcast_time(wsp_super_t *s, const char *why)
{
    char payload[96];
    int n = snprintf(payload, sizeof(payload), "{\"time\":%" PRIu64 ",\"seq\":%" PRIu64 "}",
                     wsp_net_epoch_ms(), s->seq + 1);
    (void)super_publish(s, NULL, 0, (const uint8_t *)payload, (size_t)n, why, NULL);
}

static void on_worker_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload,
                             uint32_t len)
{
    (void)seq;
    wsp_worker_t *w = user;
    if (type == WSP_IPC_TRIGGER)
        super_broadcast_time(w->s, "worker_sigusr1");
    else if (type == WSP_IPC_PUBLISH)
        (void)super_publish_packed(w->s, payload, len, "worker_publish");
}

static void on_worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[16384]; /* supervisor thread only */
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_worker_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    wsp_worker_t *w = st->data;
    if (nread <= 0) {
        if (nread < 0)
            (void)uv_read_stop(st); /* EOF: on_worker_exit follows and cleans up */
        return;
    }
    if (wsp_ipc_feed(&w->rd, (const uint8_t *)buf->base, (size_t)nread, on_worker_packet, w) < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=worker_protocol_error worker=%u", w->idx);
        (void)uv_read_stop(st);
    }
}

static void super_finish(wsp_super_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    wsp_admin_stop(s->admin); /* /healthz answered 503 until every worker had drained */
    s->admin = NULL;
    wsp_redis_stop(s->redis);
    s->redis = NULL;
    uv_close((uv_handle_t *)&s->sig_usr1, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_close((uv_handle_t *)&s->kill_timer, NULL);
    for (unsigned i = 0; i < s->n; i++)
        uv_close((uv_handle_t *)&s->slots[i].restart, NULL);
}

static void on_restart(uv_timer_t *t)
{
    wsp_slot_t *slot = WSP_CONTAINER_OF(t, wsp_slot_t, restart);
    wsp_super_t *s = t->data;
    if (!s->stopping && slot->w == NULL)
        super_spawn(s, (unsigned)(slot - s->slots));
}

static void super_schedule_restart(wsp_super_t *s, unsigned i)
{
    wsp_slot_t *slot = &s->slots[i];
    uint64_t lived = wsp_net_epoch_ms() - slot->started_ms;
    if (lived >= WSP_SUPER_STABLE_MS)
        slot->failures = 0;
    uint64_t delay = WSP_SUPER_BACKOFF_MIN_MS << (slot->failures < 6 ? slot->failures : 6);
    if (delay > WSP_SUPER_BACKOFF_MAX_MS)
        delay = WSP_SUPER_BACKOFF_MAX_MS;
    slot->failures++;
    WSP_LOG(WSP_LOG_INFO, "event=worker_restart_scheduled worker=%u delay_ms=%" PRIu64, i, delay);
    int rv = uv_timer_start(&slot->restart, on_restart, delay, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=worker_restart_failed worker=%u error=%s", i,
                uv_err_name(rv));
}

static void on_worker_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    wsp_worker_t *w = p->data;
    wsp_super_t *s = w->s;
    if (term_signal)
        WSP_LOG(s->stopping ? WSP_LOG_INFO : WSP_LOG_WARN,
                "event=worker_exit worker=%u pid=%d signal=%s", w->idx, p->pid,
                strsignal(term_signal));
    else
        WSP_LOG(s->stopping || exit_status == 0 ? WSP_LOG_INFO : WSP_LOG_WARN,
                "event=worker_exit worker=%u pid=%d status=%" PRId64, w->idx, p->pid, exit_status);
    s->slots[w->idx].w = NULL;
    s->alive--;
    uv_close((uv_handle_t *)&w->proc, on_worker_handle_close);
    uv_close((uv_handle_t *)&w->pipe, on_worker_handle_close);
    if (s->stopping) {
        if (s->alive == 0)
            super_finish(s);
        return;
    }
    super_schedule_restart(s, w->idx);
}

static void super_spawn(wsp_super_t *s, unsigned i)
{
    wsp_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        WSP_LOG(WSP_LOG_ERROR, "event=worker_spawn_failed worker=%u error=ENOMEM", i);
        super_schedule_restart(s, i);
        return;
    }
    w->s = s;
    w->idx = i;
    int rv = uv_pipe_init(&s->loop, &w->pipe, 0);
    if (rv < 0) {
        free(w);
        WSP_LOG(WSP_LOG_ERROR, "event=worker_spawn_failed worker=%u error=%s", i, uv_err_name(rv));
        super_schedule_restart(s, i);
        return;
    }
    w->pipe.data = w;
    w->proc.data = w;
    w->handles = 2;
    /* The slot number is the worker's --worker-id: patch it into the shared argv. */
    char id[16];
    snprintf(id, sizeof(id), "%u", i);
    char **argv = s->wargv;
    int k = 0;
    while (argv[k])
        k++;
    argv[k - 1] = id; /* the last argument is the id's value */
    uv_stdio_container_t stdio[5];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    stdio[3].data.stream = (uv_stream_t *)&w->pipe;
    stdio[4].flags = UV_INHERIT_FD; /* the shared counters: the worker maps its slot */
    stdio[4].data.fd = s->metrics_fd;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.file = "/proc/self/exe"; /* this very binary, even if the path changed since */
    opts.args = argv;
    opts.exit_cb = on_worker_exit;
    opts.stdio_count = 5;
    opts.stdio = stdio;
    rv = uv_spawn(&s->loop, &w->proc, &opts);
    argv[k - 1] = "0"; /* never left pointing at the stack */
    if (rv < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=worker_spawn_failed worker=%u error=%s", i, uv_err_name(rv));
        /* uv_spawn() initialised the process handle even though it failed: close both. */
        uv_close((uv_handle_t *)&w->proc, on_worker_handle_close);
        uv_close((uv_handle_t *)&w->pipe, on_worker_handle_close);
        super_schedule_restart(s, i);
        return;
    }
    s->slots[i].w = w;
    s->slots[i].started_ms = wsp_net_epoch_ms();
    s->alive++;
    rv = uv_read_start((uv_stream_t *)&w->pipe, on_worker_alloc, on_worker_read);
    if (rv < 0) /* the worker still runs; it only cannot ask for broadcasts */
        WSP_LOG(WSP_LOG_ERROR, "event=worker_pipe_failed worker=%u error=%s", i, uv_err_name(rv));
    WSP_LOG(WSP_LOG_INFO, "event=worker_started worker=%u pid=%d", i, w->proc.pid);
}

static void on_kill_timeout(uv_timer_t *t)
{
    wsp_super_t *s = t->data;
    for (unsigned i = 0; i < s->n; i++) {
        wsp_worker_t *w = s->slots[i].w;
        if (w == NULL)
            continue;
        WSP_LOG(WSP_LOG_WARN, "event=worker_kill worker=%u pid=%d", i, w->proc.pid);
        int rv = uv_process_kill(&w->proc, SIGKILL);
        (void)rv; /* ESRCH: it exited meanwhile, on_worker_exit follows */
    }
}

static void super_stop(wsp_super_t *s, int signum)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    WSP_LOG(WSP_LOG_INFO, "event=shutdown signal=%s workers=%u", strsignal(signum), s->alive);
    (void)uv_timer_stop(&s->tick); /* cannot fail for an initialised timer */
    for (unsigned i = 0; i < s->n; i++) {
        (void)uv_timer_stop(&s->slots[i].restart);
        wsp_worker_t *w = s->slots[i].w;
        if (w == NULL)
            continue;
        int rv = uv_process_kill(&w->proc, SIGTERM);
        (void)rv; /* ESRCH: it exited meanwhile, on_worker_exit follows */
    }
    if (s->alive == 0) {
        super_finish(s);
        return;
    }
    int rv = uv_timer_start(&s->kill_timer, on_kill_timeout,
                            (uint64_t)s->cfg->drain_seconds * 1000 + WSP_SUPER_KILL_EXTRA_MS, 0);
    if (rv < 0)
        on_kill_timeout(&s->kill_timer);
}

static void super_arm_tick(wsp_super_t *s);

static void on_super_tick(uv_timer_t *t)
{
    wsp_super_t *s = t->data;
    uint64_t now = wsp_net_epoch_ms();
    if (now < s->next_tick_ms) { /* the monotonic timer ran ahead of the wall clock */
        (void)uv_timer_start(&s->tick, on_super_tick, s->next_tick_ms - now, 0);
        return;
    }
    super_broadcast_time(s, "tick");
    super_arm_tick(s);
}

/* Arms the next tick on the next wall-clock multiple of the interval. */
static void super_arm_tick(wsp_super_t *s)
{
    if (s->cfg->interval == 0 || s->stopping)
        return;
    uint64_t per = (uint64_t)s->cfg->interval * 1000u;
    uint64_t now = wsp_net_epoch_ms();
    s->next_tick_ms = (now / per + 1) * per;
    int rv = uv_timer_start(&s->tick, on_super_tick, s->next_tick_ms - now, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
}

static void on_super_signal(uv_signal_t *sig, int signum)
{
    wsp_super_t *s = sig->data;
    if (signum == SIGUSR1)
        super_broadcast_time(s, "sigusr1");
    else
        super_stop(s, signum);
}

static int super_signal(wsp_super_t *s, uv_signal_t *sig, int signum)
{
    int rv = uv_signal_init(&s->loop, sig);
    if (rv < 0)
        return rv;
    sig->data = s;
    return uv_signal_start(sig, on_super_signal, signum);
}

static void on_super_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int on_admin_publish(void *user, const char *channel, size_t channel_len,
                            const uint8_t *payload, size_t len, uint64_t *seq, uint64_t *conns)
{
    wsp_super_t *s = user;
    if (s->stopping)
        return -EAGAIN;
    *conns = wsp_metrics_sum_open(s->stats, s->n);
    if (s->redis) { /* through Redis, so that every machine delivers it */
        *seq = 0;
        return wsp_redis_publish(s->redis, channel, channel_len, payload, len);
    }
    return super_publish(s, channel, channel_len, payload, len, "admin", seq);
}

static int on_admin_metrics(void *user, wsp_buf_t *out)
{
    wsp_super_t *s = user;
    return wsp_metrics_render(s->stats, s->n, out);
}

static int on_admin_stats(void *user, wsp_buf_t *out)
{
    wsp_super_t *s = user;
    return wsp_metrics_stats_json(s->stats, s->n, s->stopping, out);
}

static int on_admin_healthy(void *user) { return !((wsp_super_t *)user)->stopping; }

static const wsp_admin_ops_t wsp_super_admin_ops = {
    .publish = on_admin_publish,
    .metrics = on_admin_metrics,
    .stats = on_admin_stats,
    .healthy = on_admin_healthy,
};

/* One slot of counters per worker in a memfd that every worker maps: /metrics sums them. */
static int super_metrics_init(wsp_super_t *s)
{
    size_t len = (size_t)s->n * sizeof(wsp_proc_stats_t);
    int fd = memfd_create("wspush-metrics", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)len) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int err = -errno;
        close(fd);
        return err;
    }
    s->metrics_fd = fd;
    s->stats = p;
    return 0;
}

int wsp_super_run(const wsp_config_t *cfg, int argc, char **argv)
{
    /* Holding a bound socket on the port checks it now (one clear error instead of P dying
     * workers) and, with --port 0, picks the port every worker then binds. */
    int port_fd;
    int rv = wsp_net_bind_reuseport(cfg->bind, cfg->port, &port_fd);
    if (rv < 0)
        return rv;
    int port = wsp_net_local_port(port_fd);
    if (port < 0) {
        close(port_fd);
        return port;
    }
    wsp_super_t *s = wsp_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->n = cfg->procs;
    s->slots = wsp_xcalloc(s->n, sizeof(*s->slots));
    s->metrics_fd = -1;
    if ((rv = super_metrics_init(s)) < 0) {
        close(port_fd);
        free(s->slots);
        free(s);
        return rv;
    }
    /* Workers: the same command line, then the port chosen here and the worker flags; later
     * flags win. The last value is the id, patched per spawn. */
    char portstr[16], fdstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(fdstr, sizeof(fdstr), "%d", 3);
    s->wargv = wsp_xcalloc((size_t)argc + 7, sizeof(char *));
    int k = 0;
    s->wargv[k++] = argv[0];
    for (int i = 1; i < argc; i++)
        s->wargv[k++] = argv[i];
    s->wargv[k++] = "--port";
    s->wargv[k++] = portstr;
    s->wargv[k++] = "--worker-fd";
    s->wargv[k++] = fdstr;
    s->wargv[k++] = "--worker-id";
    s->wargv[k++] = "0";
    s->wargv[k] = NULL;

    if ((rv = uv_loop_init(&s->loop)) < 0) {
        close(port_fd);
        close(s->metrics_fd);
        (void)munmap(s->stats, (size_t)s->n * sizeof(wsp_proc_stats_t));
        free(s->wargv);
        free(s->slots);
        free(s);
        return rv;
    }
    if ((rv = uv_timer_init(&s->loop, &s->tick)) < 0 ||
        (rv = uv_timer_init(&s->loop, &s->kill_timer)) < 0 ||
        (rv = super_signal(s, &s->sig_usr1, SIGUSR1)) < 0 ||
        (rv = super_signal(s, &s->sig_int, SIGINT)) < 0 ||
        (rv = super_signal(s, &s->sig_term, SIGTERM)) < 0)
        goto out;
    s->tick.data = s;
    s->kill_timer.data = s;
    for (unsigned i = 0; i < s->n; i++) {
        if ((rv = uv_timer_init(&s->loop, &s->slots[i].restart)) < 0)
            goto out;
        s->slots[i].restart.data = s;
    }
    if (cfg->admin_host[0] != '\0' &&
        (rv = wsp_admin_start(&s->admin, &s->loop, cfg->admin_host, cfg->admin_port,
                              cfg->admin_token[0] ? cfg->admin_token : NULL, &wsp_super_admin_ops,
                              s)) < 0) {
        rv = -(WSP_EADMIN - rv); /* main() names the admin port */
        goto out;
    }
    if (cfg->redis_host[0] != '\0' &&
        (rv = wsp_redis_start(&s->redis, &s->loop, cfg, NULL, NULL)) < 0)
        goto out;
    WSP_LOG(WSP_LOG_INFO,
            "event=supervisor_listening bind=%s port=%d procs=%u threads=%u admin_port=%d",
            cfg->bind, port, s->n, cfg->threads, s->admin ? wsp_admin_port(s->admin) : 0);
    for (unsigned i = 0; i < s->n; i++)
        super_spawn(s, i);
    super_arm_tick(s);
    (void)uv_run(&s->loop, UV_RUN_DEFAULT); /* until every worker exited after a signal */
    WSP_LOG(WSP_LOG_INFO, "event=stopped");
out:
    wsp_admin_stop(s->admin);
    s->admin = NULL;
    wsp_redis_stop(s->redis);
    s->redis = NULL;
    uv_walk(&s->loop, on_super_walk_close, NULL);
    (void)uv_run(&s->loop, UV_RUN_DEFAULT);
    int crv = uv_loop_close(&s->loop);
    if (crv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=loop_close_failed error=%s", uv_err_name(crv));
    close(port_fd);
    close(s->metrics_fd);
    (void)munmap(s->stats, (size_t)s->n * sizeof(wsp_proc_stats_t)); /* our own mapping */
    free(s->wargv);
    free(s->slots);
    free(s);
    return rv;
}
