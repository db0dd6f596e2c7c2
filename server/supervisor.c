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

#include "alloc.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "publisher.h"
#include "reexec.h"

#define WSP_SUPER_KILL_EXTRA_MS 10000 /* SIGTERM to SIGKILL: the workers' drain, and room */
#define WSP_SUPER_BACKOFF_MIN_MS 100
#define WSP_SUPER_BACKOFF_MAX_MS 5000
#define WSP_SUPER_STABLE_MS 10000 /* a worker that lived this long resets the backoff */
#define WSP_SUPER_WORKER_FD 3     /* the socketpair in a worker; 4 is the metrics memfd */
#define WSP_SUPER_UPGRADE_FD 6    /* a replacement worker's live-upgrade control socket */
/* Live upgrade: how long a replacement may take, beyond --upgrade-timeout, until the worker it
 * replaces has handed over and exited (its last writes included). */
#define WSP_SUPER_UPGRADE_EXTRA_MS 60000

typedef struct wsp_super_s wsp_super_t;

/* One incarnation of a worker: its process and its end of the socketpair. Freed when both
 * handles have closed; a restart makes a new one. */
typedef struct wsp_worker_s {
    uv_process_t proc;
    wsp_link_t link;
    wsp_super_t *s;
    unsigned idx;
    int handles; /* open handles; the last close frees */
} wsp_worker_t;

typedef struct wsp_slot_s {
    wsp_worker_t *w; /* NULL while dead */
    uv_timer_t restart;
    unsigned failures; /* consecutive short lives: the backoff exponent */
    uint64_t started_ms;
} wsp_slot_t;

struct wsp_super_s {
    uv_loop_t loop;
    uv_timer_t kill_timer;
    const wsp_config_t *cfg;
    int loop_open;
    int port_fd; /* held bound for the supervisor's life: the port is ours */
    int port;
    char portstr[16];
    char epocharg[64]; /* --worker-epoch=<the supervisor's epoch> */
    char **wargv;
    wsp_slot_t *slots;
    unsigned n;
    unsigned alive;
    int stopping;
    int finished;
    int metrics_fd;          /* memfd holding every worker's counters */
    int tls_keys_fd;         /* TLS: memfd of the session ticket keys every worker shares */
    wsp_proc_stats_t *stats; /* its mapping: n slots */
    wsp_pub_t *pub;
    /* live upgrade (issue #20): workers replaced one at a time */
    const char *worker_exe; /* what a worker runs: /proc/self/exe until an upgrade */
    int upgrading;
    unsigned up_slot;     /* the slot being replaced */
    wsp_worker_t *up_new; /* its replacement, until the old worker has exited */
    uv_timer_t up_timer;
};

static void super_spawn(wsp_super_t *s, unsigned i);
static int super_up_exit(wsp_super_t *s, wsp_worker_t *w, int64_t status, int sig);

/* --- what the publisher delivers: the same bytes and seq to every live worker --- */

static int on_super_deliver(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                            size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason)
{
    wsp_super_t *s = user;
    /* Off the hot path (one per broadcast, not per connection): a packed copy. */
    size_t cap = 1 + chan_len + 1 + cs->epoch_len + 8 + len;
    uint8_t *packed = malloc(cap);
    if (packed == NULL)
        return -ENOMEM;
    int n = wsp_ipc_pack_broadcast(packed, cap, chan, chan_len, cs->seq, cs->epoch, cs->epoch_len,
                                   payload, len);
    if (n < 0) {
        free(packed);
        return n;
    }
    unsigned sent = 0;
    for (unsigned i = 0; i <= s->n; i++) {
        /* A replacement gets every broadcast too: it publishes those its predecessor did not
         * deliver (by seq) once it takes over. */
        wsp_worker_t *w = i < s->n ? s->slots[i].w : s->up_new;
        if (w == NULL)
            continue;
        int rv = wsp_link_send(&w->link, WSP_IPC_BROADCAST, seq, packed, (uint32_t)n);
        if (rv < 0)
            WSP_LOG(WSP_LOG_WARN, "event=worker_send_failed worker=%u error=%s", i,
                    uv_err_name(rv));
        else
            sent++;
    }
    free(packed);
    WSP_LOG(WSP_LOG_INFO, "event=supervisor_broadcast seq=%" PRIu64 " reason=%s workers=%u", seq,
            reason, sent);
    return 0;
}

/* The publisher's deliver_user (issue #16): the message to every live worker, which writes it
 * to that user's connections and reports back (WSP_IPC_REACHED) with tag. Returns how many
 * reports to expect. */
static int on_super_deliver_user(void *user, const char *sub, size_t sub_len,
                                 const uint8_t *payload, size_t len, uint64_t tag)
{
    wsp_super_t *s = user;
    /* One per user message, off the hot path: a packed copy. */
    uint8_t *packed = malloc(1 + sub_len + len);
    if (packed == NULL)
        return -ENOMEM;
    int n = wsp_ipc_pack_channel(packed, 1 + sub_len + len, sub, sub_len, payload, len);
    int sent = 0;
    for (unsigned i = 0; n > 0 && i < s->n; i++) {
        wsp_worker_t *w = s->slots[i].w;
        if (w != NULL && wsp_link_send(&w->link, WSP_IPC_USER, tag, packed, (uint32_t)n) == 0)
            sent++;
    }
    free(packed);
    return n < 0 ? n : sent;
}

static unsigned on_super_redis_reporters(void *user)
{
    return ((wsp_super_t *)user)->alive; /* each worker subscribes and reports for itself */
}

/* --- the workers --- */

static void on_worker_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload,
                             uint32_t len)
{
    wsp_worker_t *w = user;
    const char *chan;
    size_t chan_len;
    const uint8_t *msg;
    size_t msg_len;
    if (type == WSP_IPC_TRIGGER) {
        wsp_pub_time(w->s->pub, "worker_sigusr1");
    } else if (type == WSP_IPC_REACHED && len == 8) {
        uint64_t conns = 0;
        for (int i = 0; i < 8; i++)
            conns |= (uint64_t)payload[i] << (8 * i);
        wsp_pub_user_reached(w->s->pub, seq, conns);
    } else if (type == WSP_IPC_PUBLISH &&
               wsp_ipc_split_channel(payload, len, &chan, &chan_len, &msg, &msg_len) == 0) {
        (void)wsp_pub_publish(w->s->pub, chan, chan_len, msg, msg_len, "worker_publish", NULL);
    }
}

static void on_worker_end(void *user, int protocol, int err)
{
    (void)err; /* EOF or a read error: on_worker_exit follows and cleans up */
    wsp_worker_t *w = user;
    if (protocol)
        WSP_LOG(WSP_LOG_ERROR, "event=worker_protocol_error worker=%u", w->idx);
}

static void on_worker_handle_close(uv_handle_t *h)
{
    wsp_worker_t *w = h->data;
    if (--w->handles == 0) {
        wsp_link_reset(&w->link);
        free(w);
    }
}

static void super_finish(wsp_super_t *s)
{
    if (s->finished)
        return;
    s->finished = 1;
    wsp_pub_close(s->pub); /* /healthz answered 503 until every worker had drained */
    uv_close((uv_handle_t *)&s->kill_timer, NULL);
    uv_close((uv_handle_t *)&s->up_timer, NULL);
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
    uv_close((uv_handle_t *)&w->proc, on_worker_handle_close);
    uv_close((uv_handle_t *)&w->link.pipe, on_worker_handle_close);
    if (super_up_exit(s, w, exit_status, term_signal))
        return;
    s->slots[w->idx].w = NULL;
    s->alive--;
    if (s->stopping) {
        if (s->alive == 0)
            super_finish(s);
        return;
    }
    super_schedule_restart(s, w->idx);
}

/* Starts worker i: this binary again (or, after a live upgrade, the one at its path) with the
 * supervisor's argv, the slot number as its --worker-id, the socketpair as fd 3, the shared
 * counters as fd 4, with TLS the ticket keys as fd 5 and, for a replacement, its upgrade
 * control socket ctl as fd 6. Returns 0 or a negative errno (both handles of w are then
 * closing). */
static int super_exec(wsp_super_t *s, wsp_worker_t *w, unsigned i, int ctl)
{
    char id[16];
    snprintf(id, sizeof(id), "%u", i);
    char **argv = s->wargv;
    int k = 0;
    while (argv[k])
        k++;
    argv[k - 1] = id; /* the last argument is the id's value */
    /* A worker started after the first broadcast cannot take every channel to be at 0: it
     * learns positions from what it receives (issue #17). */
    if (wsp_pub_published(s->pub))
        argv[k - 3] = "--worker-restart";
    uv_stdio_container_t stdio[WSP_SUPER_UPGRADE_FD + 1];
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = 1;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    stdio[WSP_SUPER_WORKER_FD].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    stdio[WSP_SUPER_WORKER_FD].data.stream = (uv_stream_t *)&w->link.pipe;
    stdio[4].flags = UV_INHERIT_FD; /* the shared counters: the worker maps its slot */
    stdio[4].data.fd = s->metrics_fd;
    stdio[WSP_SUPER_TLS_KEYS_FD].flags = s->tls_keys_fd >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[WSP_SUPER_TLS_KEYS_FD].data.fd = s->tls_keys_fd;
    stdio[WSP_SUPER_UPGRADE_FD].flags = UV_INHERIT_FD;
    stdio[WSP_SUPER_UPGRADE_FD].data.fd = ctl;
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.file = s->worker_exe;
    opts.args = argv;
    opts.exit_cb = on_worker_exit;
    opts.stdio_count = ctl >= 0 ? WSP_SUPER_UPGRADE_FD + 1 : WSP_SUPER_TLS_KEYS_FD + 1;
    opts.stdio = stdio;
    opts.env = ctl >= 0 ? wsp_reexec_env(WSP_SUPER_UPGRADE_FD, NULL) : NULL; /* --worker-epoch */
    int rv = ctl >= 0 && opts.env == NULL ? -ENOMEM : uv_spawn(&s->loop, &w->proc, &opts);
    free(opts.env);
    argv[k - 1] = "0"; /* never left pointing at the stack */
    argv[k - 3] = s->epocharg;
    if (rv < 0) {
        /* uv_spawn() initialised the process handle even though it failed: close both. */
        uv_close((uv_handle_t *)&w->proc, on_worker_handle_close);
        uv_close((uv_handle_t *)&w->link.pipe, on_worker_handle_close);
    }
    return rv;
}

/* A worker for slot i (ctl: see super_exec()); NULL with *err set when it could not start. */
static wsp_worker_t *super_new_worker(wsp_super_t *s, unsigned i, int ctl, int *err)
{
    wsp_worker_t *w = calloc(1, sizeof(*w));
    int rv = w ? wsp_link_init(&w->link, &s->loop, 0) : -ENOMEM;
    if (rv == 0) {
        w->s = s;
        w->idx = i;
        w->link.pipe.data = w;
        w->proc.data = w;
        w->handles = 2;
        rv = super_exec(s, w, i, ctl); /* on failure w is freed by its close callbacks */
    } else {
        free(w);
    }
    *err = rv;
    return rv < 0 ? NULL : w;
}

static void super_spawn(wsp_super_t *s, unsigned i)
{
    int rv;
    wsp_worker_t *w = super_new_worker(s, i, -1, &rv);
    if (rv < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=worker_spawn_failed worker=%u error=%s", i, uv_err_name(rv));
        super_schedule_restart(s, i);
        return;
    }
    s->slots[i].w = w;
    s->slots[i].started_ms = wsp_net_epoch_ms();
    s->alive++;
    rv = wsp_link_read_start(&w->link, on_worker_packet, on_worker_end, w);
    if (rv < 0) /* the worker still runs; it only cannot ask for broadcasts */
        WSP_LOG(WSP_LOG_ERROR, "event=worker_pipe_failed worker=%u error=%s", i, uv_err_name(rv));
    WSP_LOG(WSP_LOG_INFO, "event=worker_started worker=%u pid=%d", i, w->proc.pid);
}

/* --- live upgrade (issue #20): one worker at a time --- */

static void super_up_next(wsp_super_t *s);

/* Sends w the UPGRADE packet with ctl (SCM_RIGHTS) beside libuv, which has nothing queued on
 * the link then (packets never interleave). Returns 0 or a negative errno. */
static int super_up_offer(wsp_worker_t *w, int ctl, uint64_t pid)
{
    uv_os_fd_t fd;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&w->link.pipe) != 0)
        return -EAGAIN;
    int rv = uv_fileno((uv_handle_t *)&w->link.pipe, &fd);
    if (rv < 0)
        return rv;
    uint8_t hdr[WSP_IPC_HDR];
    wsp_ipc_header(hdr, WSP_IPC_UPGRADE, pid, 0);
    return wsp_reexec_send(fd, hdr, sizeof(hdr), &ctl, 1);
}

static void super_up_stop(wsp_super_t *s, const char *why)
{
    if (why)
        WSP_LOG(WSP_LOG_ERROR,
                "event=upgrade_failed worker=%u reason=%s msg=\"the remaining "
                "workers keep running their binary\"",
                s->up_slot, why);
    if (s->up_new) {
        int rv = uv_process_kill(&s->up_new->proc, SIGKILL);
        (void)rv; /* ESRCH: it exited meanwhile, on_worker_exit follows */
    }
    (void)uv_timer_stop(&s->up_timer); /* cannot fail */
    s->upgrading = 0;
}

static void on_super_up_timeout(uv_timer_t *t) { super_up_stop(t->data, "timeout"); }

/* A worker exited: the end of a replacement step? Returns 1 when handled here. */
static int super_up_exit(wsp_super_t *s, wsp_worker_t *w, int64_t status, int sig)
{
    if (w == s->up_new) { /* the replacement died: its slot keeps the old worker */
        s->up_new = NULL;
        if (s->upgrading)
            super_up_stop(s, "new_worker_exited");
        return 1;
    }
    if (!s->upgrading || s->up_new == NULL || w != s->slots[s->up_slot].w)
        return 0;
    /* The old worker handed over and left (or died meanwhile: the new one serves what came). */
    wsp_worker_t *nw = s->up_new;
    s->up_new = NULL;
    s->slots[w->idx].w = nw;
    s->slots[w->idx].started_ms = wsp_net_epoch_ms();
    s->worker_exe = wsp_reexec_path(); /* restarts run the new binary too */
    WSP_LOG(status == 0 && !sig ? WSP_LOG_INFO : WSP_LOG_WARN,
            "event=worker_started worker=%u pid=%d upgrade=1 old_status=%d", w->idx, nw->proc.pid,
            (int)(sig ? -sig : status));
    (void)uv_timer_stop(&s->up_timer); /* cannot fail */
    s->up_slot++;
    super_up_next(s);
    return 1;
}

/* Replaces the next live worker: a new one from the binary at our path, given a control socket
 * whose other end goes to the old worker, which hands its connections over and exits. */
static void super_up_next(wsp_super_t *s)
{
    while (s->up_slot < s->n && s->slots[s->up_slot].w == NULL)
        s->up_slot++;
    if (s->up_slot == s->n || s->stopping) {
        WSP_LOG(WSP_LOG_INFO, "event=upgrade_workers_done workers=%u", s->up_slot);
        s->upgrading = 0;
        return;
    }
    unsigned i = s->up_slot;
    wsp_worker_t *old = s->slots[i].w;
    int sv[2];
    int rv = wsp_reexec_socketpair(sv);
    if (rv < 0) {
        super_up_stop(s, "socketpair");
        return;
    }
    const char *exe = s->worker_exe;
    s->worker_exe = wsp_reexec_path(); /* the binary installed at our path now */
    s->up_new = super_new_worker(s, i, sv[1], &rv);
    s->worker_exe = exe;
    close(sv[1]);
    if (rv == 0 && s->up_new &&
        (rv = wsp_link_read_start(&s->up_new->link, on_worker_packet, on_worker_end, s->up_new)) <
            0)
        WSP_LOG(WSP_LOG_ERROR, "event=worker_pipe_failed worker=%u error=%s", i, uv_err_name(rv));
    if (s->up_new) {
        WSP_LOG(WSP_LOG_INFO, "event=upgrade_worker_started worker=%u pid=%d old_pid=%d path=%s", i,
                s->up_new->proc.pid, old->proc.pid, wsp_reexec_path());
        rv = super_up_offer(old, sv[0], (uint64_t)s->up_new->proc.pid);
    }
    close(sv[0]);
    if (rv == 0)
        rv = uv_timer_start(&s->up_timer, on_super_up_timeout,
                            s->cfg->upgrade_timeout * 1000ull + WSP_SUPER_UPGRADE_EXTRA_MS, 0);
    if (rv < 0)
        super_up_stop(s, s->up_new ? "offer" : "spawn");
}

/* SIGUSR2 to the supervisor: replace every worker, one at a time. The supervisor itself
 * stays: it holds no client connection. */
static void on_super_upgrade(void *user)
{
    wsp_super_t *s = user;
    if (s->upgrading || s->up_new) {
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_ignored reason=busy");
        return;
    }
    WSP_LOG(WSP_LOG_INFO, "event=upgrade_workers workers=%u path=%s", s->alive, wsp_reexec_path());
    s->upgrading = 1;
    s->up_slot = 0;
    super_up_next(s);
}

/* --- stopping --- */

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

/* The publisher's stop: SIGINT or SIGTERM to the supervisor goes to every worker. */
static void on_super_stop(void *user, int signum)
{
    wsp_super_t *s = user;
    if (s->stopping)
        return;
    s->stopping = 1;
    WSP_LOG(WSP_LOG_INFO, "event=shutdown signal=%s workers=%u", strsignal(signum), s->alive);
    wsp_pub_stop(s->pub);
    if (s->upgrading || s->up_new)
        super_up_stop(s, NULL);
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

/* SIGHUP: each worker reloads what it serves (its TLS certificate and key, its JWT key)
 * itself: it loaded them itself at start. */
static void on_super_reload(void *arg)
{
    wsp_super_t *s = arg;
    for (unsigned i = 0; i < s->n; i++) {
        wsp_worker_t *w = s->slots[i].w;
        if (w != NULL) {
            int rv = uv_process_kill(&w->proc, SIGHUP);
            (void)rv; /* ESRCH: it exited meanwhile; its successor reads the files anew */
        }
    }
}

static const wsp_pub_ops_t super_pub_ops = {
    .deliver = on_super_deliver,
    .link = NULL,    /* the supervisor only publishes to Redis */
    .trigger = NULL, /* only a worker relays */
    .stop = on_super_stop,
    .upgrade = on_super_upgrade,
    .deliver_user = on_super_deliver_user,
    .redis_reporters = on_super_redis_reporters,
    .reached = NULL, /* only a worker passes reports on */
};

/* --- open, start, teardown --- */

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

/* The workers' command line: the supervisor's, then the port chosen here and the worker
 * flags; later flags win. The last value is the id, patched per spawn. */
static void super_worker_argv(wsp_super_t *s, int argc, char **argv)
{
    static char fdstr[] = "3"; /* WSP_SUPER_WORKER_FD */
    snprintf(s->portstr, sizeof(s->portstr), "%d", s->port);
    s->wargv = wsp_xcalloc((size_t)argc + 9, sizeof(char *));
    int k = 0;
    for (int i = 0; i < argc; i++)
        s->wargv[k++] = argv[i];
    s->wargv[k++] = "--port";
    s->wargv[k++] = s->portstr;
    s->wargv[k++] = "--worker-fd";
    s->wargv[k++] = fdstr;
    /* The supervisor's epoch: every worker numbers channels in it. Its repetition is the
     * slot super_exec() turns into --worker-restart for a worker started late. */
    snprintf(s->epocharg, sizeof(s->epocharg), "--worker-epoch=%s", s->cfg->epoch);
    s->wargv[k++] = s->epocharg;
    s->wargv[k++] = s->epocharg;
    s->wargv[k++] = "--worker-id";
    s->wargv[k++] = "0";
    s->wargv[k] = NULL;
}

/* Everything that can fail before a worker runs: the port, the shared counters, the loop
 * and its handles, the publisher (signals, admin API, Redis). */
static int super_open(wsp_super_t *s)
{
    /* Holding a bound socket on the port checks it now (one clear error instead of P dying
     * workers) and, with --port 0, picks the port every worker then binds. */
    int rv = wsp_net_bind_reuseport(s->cfg->bind, s->cfg->port, &s->port_fd);
    if (rv < 0)
        return rv;
    if ((s->port = wsp_net_local_port(s->port_fd)) < 0)
        return s->port;
    if ((rv = super_metrics_init(s)) < 0 || (rv = uv_loop_init(&s->loop)) < 0)
        return rv;
    s->loop_open = 1;
    if ((rv = uv_timer_init(&s->loop, &s->kill_timer)) < 0 ||
        (rv = uv_timer_init(&s->loop, &s->up_timer)) < 0)
        return rv;
    s->kill_timer.data = s;
    s->up_timer.data = s;
    for (unsigned i = 0; i < s->n; i++) {
        if ((rv = uv_timer_init(&s->loop, &s->slots[i].restart)) < 0)
            return rv;
        s->slots[i].restart.data = s;
    }
    if ((rv = wsp_pub_new(&s->pub, &s->loop, s->cfg, WSP_PUB_SUPERVISOR, s->stats, s->n,
                          &super_pub_ops, s)) < 0 ||
        (rv = wsp_pub_on_reload(s->pub, on_super_reload, s)) < 0)
        return rv;
    return wsp_pub_open(s->pub);
}

static void super_serve(wsp_super_t *s)
{
    const wsp_config_t *cfg = s->cfg;
    WSP_LOG(WSP_LOG_INFO,
            "event=supervisor_listening bind=%s port=%d procs=%u threads=%u admin_port=%d",
            cfg->bind, s->port, s->n, cfg->threads, wsp_pub_admin_port(s->pub));
    for (unsigned i = 0; i < s->n; i++)
        super_spawn(s, i);
    wsp_pub_start(s->pub);
    if (wsp_reexec_notify("READY=1") < 0)
        WSP_LOG(WSP_LOG_WARN, "event=sd_notify_failed");
    (void)uv_run(&s->loop, UV_RUN_DEFAULT); /* until every worker exited after a signal */
    WSP_LOG(WSP_LOG_INFO, "event=stopped");
}

static void on_super_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* The one way out, from wherever super_open() stopped or after super_serve(). */
static int super_teardown(wsp_super_t *s, int rv)
{
    wsp_pub_close(s->pub);
    if (s->loop_open) {
        uv_walk(&s->loop, on_super_walk_close, NULL);
        (void)uv_run(&s->loop, UV_RUN_DEFAULT);
        int crv = uv_loop_close(&s->loop);
        if (crv < 0)
            WSP_LOG(WSP_LOG_ERROR, "event=loop_close_failed error=%s", uv_err_name(crv));
    }
    wsp_pub_free(s->pub);
    if (s->port_fd >= 0)
        close(s->port_fd);
    if (s->metrics_fd >= 0)
        close(s->metrics_fd);
    if (s->stats) /* our own mapping: cannot fail */
        (void)munmap(s->stats, (size_t)s->n * sizeof(wsp_proc_stats_t));
    free(s->wargv);
    free(s->slots);
    free(s);
    return rv;
}

int wsp_super_run(const wsp_config_t *cfg, int argc, char **argv, int tls_keys_fd)
{
    wsp_super_t *s = wsp_xcalloc(1, sizeof(*s));
    s->cfg = cfg;
    s->n = cfg->procs;
    s->slots = wsp_xcalloc(s->n, sizeof(*s->slots));
    s->port_fd = -1;
    s->metrics_fd = -1;
    s->worker_exe = "/proc/self/exe"; /* this very binary, even if the path changed since */
    s->tls_keys_fd = tls_keys_fd;
    int rv = super_open(s);
    if (rv == 0) {
        super_worker_argv(s, argc, argv);
        super_serve(s);
    }
    return super_teardown(s, rv);
}
