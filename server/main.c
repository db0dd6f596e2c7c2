/* wspush: a WebSocket push server. main() parses flags, sizes the process to its fd limit and
 * hands over to the coordinator (server/coordinator.c), or under --procs to the supervisor
 * (server/supervisor.c). docs/ARCHITECTURE.md maps the modules. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include <openssl/crypto.h>

#include "config.h"
#include "coordinator.h"
#include "framed.h"
#include "jwt.h"
#include "log.h"
#include "net.h"
#include "publisher.h"
#include "reexec.h"
#include "supervisor.h"
#include "tlsterm.h"
#include "uring.h"

/* Descriptors a process needs besides connections: stdio, epoll and eventfds per loop,
 * listeners, libuv's reserved EMFILE descriptor, signal pipes. */
static uint64_t reserved_fds(unsigned threads) { return 32 + 8ull * threads; }

/* Who this process is (single, supervisor or worker), for the log lines and, in a worker,
 * its supervisor's death. Returns 0 or 1 (exit status). */
static int main_role(const wsp_config_t *cfg)
{
    if (cfg->worker_fd >= 0) {
        snprintf(wsp_log_tag, sizeof(wsp_log_tag), "worker=%u pid=%d ", cfg->worker_id,
                 (int)getpid());
        /* A worker never outlives its supervisor, even one killed with SIGKILL. If it died
         * before this call, the pipe to it reads EOF and the coordinator drains anyway (no
         * getppid() == 1 test: a supervisor may itself be PID 1 in a container). */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
            fprintf(stderr, "wspush: worker %u: supervisor gone\n", cfg->worker_id);
            return 1;
        }
    } else if (cfg->procs > 1) {
        snprintf(wsp_log_tag, sizeof(wsp_log_tag), "supervisor pid=%d ", (int)getpid());
    }
    return 0;
}

/* Once, before any worker or shard exists: `--io-uring on` must fail at startup, not later;
 * auto falls back to off. Returns 0 or 1 (exit status). */
static int main_probe_uring(wsp_config_t *cfg)
{
    if (cfg->io_uring == WSP_CONFIG_URING_OFF)
        return 0;
    int rv = wsp_uring_probe();
    if (rv < 0 && cfg->io_uring == WSP_CONFIG_URING_ON) {
        fprintf(stderr,
                "wspush: --io-uring on: io_uring is not available here: %s (an old kernel, "
                "kernel.io_uring_disabled or a seccomp profile); use --io-uring auto or off\n",
                strerror(-rv));
        return 1;
    }
    if (rv < 0) {
        WSP_LOG(WSP_LOG_INFO,
                "event=io_uring_unavailable error=%s msg=\"broadcasting with one send per "
                "connection\"",
                uv_err_name(rv));
        cfg->io_uring = WSP_CONFIG_URING_OFF;
    }
    return 0;
}

/* With --auth-jwt-alg the key must load now: one clear error at startup rather than P
 * workers failing later. Each serving process loads it again for itself. Returns 0 or 1. */
static int main_check_auth(const wsp_config_t *cfg)
{
    if (!cfg->auth_jwt_alg)
        return 0;
    wsp_jwt_key_t *key;
    char err[256];
    if (wsp_jwt_key_load(&key, cfg->auth_jwt_alg, cfg->auth_jwt_key, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "wspush: --auth-jwt-key: %s\n", err); /* path and algorithm only */
        return 1;
    }
    wsp_jwt_key_free(key);
    return 0;
}

/* TLS (issue #18) in a serving process: the session ticket keys (this process's own, or
 * under --procs the supervisor's, from the descriptor it handed down), whether the kernel
 * seals records (logged once: event=tls_path), and the certificate and key. *out stays NULL
 * without --tls-cert. Returns 0, or 1 (exit status) after one line on stderr. */
static int main_tls(const wsp_config_t *cfg, wsp_tlsterm_t **out)
{
    *out = NULL;
    if (cfg->tls_cert[0] == '\0')
        return 0;
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN];
    int rv = cfg->worker_fd >= 0 ? wsp_tlsterm_keys_read(WSP_SUPER_TLS_KEYS_FD, keys)
                                 : wsp_tlsterm_keys_random(keys);
    if (rv < 0) {
        fprintf(stderr, "wspush: no TLS session ticket keys: %s\n", strerror(-rv));
        return 1;
    }
    int k = cfg->tls_ktls == WSP_CONFIG_KTLS_OFF ? -ECANCELED : wsp_tlsterm_ktls_probe();
    char err[512] = "";
    rv = wsp_tlsterm_new(out, cfg->tls_cert, cfg->tls_key, keys, k == 0, err, sizeof(err));
    OPENSSL_cleanse(keys, sizeof(keys));
    if (rv < 0) {
        fprintf(stderr, "wspush: %s\n", err);
        return 1;
    }
    WSP_LOG(WSP_LOG_INFO, "event=tls_path path=%s reason=\"%s\"", k == 0 ? "ktls" : "user_records",
            k == 0            ? "the kernel has the tls ULP: it seals what is sent"
            : k == -ECANCELED ? "--tls-ktls off: records sealed here, one per connection"
            : k == -ENOENT    ? "no tls ULP in this kernel: records sealed here, one per connection"
                           : "the tls ULP probe failed: records sealed here, one per connection");
    return 0;
}

/* A serving process: sized to its nofile limit, then the coordinator. Returns what
 * wsp_coord_run() returned, or 1 when the limit or TLS cannot be set up (said on stderr). */
static int main_serve(const wsp_config_t *cfg, int ho_fd)
{
    wsp_tlsterm_t *tls; /* first: a bad certificate is the only line printed */
    if (main_tls(cfg, &tls) != 0)
        return 1;
    uint64_t limit = 0;
    int rv = wsp_net_raise_nofile(&limit);
    if (rv < 0) {
        fprintf(stderr, "wspush: cannot read the nofile limit: %s\n", strerror(-rv));
        wsp_tlsterm_free(tls);
        return 1;
    }
    uint64_t room = limit > reserved_fds(cfg->threads) ? limit - reserved_fds(cfg->threads) : 0;
    WSP_LOG(WSP_LOG_INFO,
            "event=nofile msg=\"nofile limit %llu: room for about %llu connections in this "
            "process\"",
            (unsigned long long)limit, (unsigned long long)room);
    /* room is the fd budget: accepting pauses there, well before EMFILE. By default a
     * margin of it is kept for the 503 answers to clients over --max-conns. */
    uint64_t margin = room / 16 < 1024 ? room / 16 : 1024;
    uint64_t max_conns = cfg->max_conns ? cfg->max_conns : room - margin;
    if (cfg->max_conns > room)
        WSP_LOG(WSP_LOG_WARN,
                "event=max_conns_over_nofile max_conns=%llu room=%llu msg=\"accepting pauses "
                "at the nofile room\"",
                (unsigned long long)cfg->max_conns, (unsigned long long)room);
    WSP_LOG(WSP_LOG_INFO, "event=limits max_conns=%llu fd_budget=%llu",
            (unsigned long long)max_conns, (unsigned long long)room);
    rv = wsp_coord_run(cfg, max_conns, room, tls, ho_fd);
    wsp_tlsterm_free(tls);
    return rv;
}

/* The supervisor checks the certificate and key once (one error instead of P dying workers)
 * and makes the session ticket keys every worker shares. Returns the keys' descriptor, -1
 * without TLS, or -2 after one line on stderr. */
static int main_super_tls(const wsp_config_t *cfg)
{
    if (cfg->tls_cert[0] == '\0')
        return -1;
    char err[512] = "";
    if (wsp_tlsterm_check(cfg->tls_cert, cfg->tls_key, err, sizeof(err)) < 0) {
        fprintf(stderr, "wspush: %s\n", err);
        return -2;
    }
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN];
    int fd = wsp_tlsterm_keys_random(keys);
    if (fd == 0)
        fd = wsp_tlsterm_keys_fd(keys);
    OPENSSL_cleanse(keys, sizeof(keys));
    if (fd < 0) {
        fprintf(stderr, "wspush: no TLS session ticket keys: %s\n", strerror(-fd));
        return -2;
    }
    return fd;
}

/* Says why startup failed. Returns the exit status: 0 when rv is 0, else 1. */
static int main_exit(const wsp_config_t *cfg, int rv)
{
    if (rv <= -WSP_PUB_EADMIN) {
        int aerr = -rv - WSP_PUB_EADMIN;
        fprintf(stderr, "wspush: cannot open the admin API on %s port %d: %s\n", cfg->admin_host,
                cfg->admin_port,
                aerr == EINVAL ? "not a numeric IPv4/IPv6 address" : strerror(aerr));
        return 1;
    }
    if (rv < 0) {
        if (rv == -EADDRINUSE || rv == -EACCES || rv == -EINVAL || rv == -EADDRNOTAVAIL)
            fprintf(stderr, "wspush: cannot listen on %s port %d: %s\n", cfg->bind, cfg->port,
                    rv == -EINVAL ? "not a numeric IPv4/IPv6 address" : strerror(-rv));
        else
            fprintf(stderr, "wspush: cannot start: %s\n", uv_strerror(rv));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    wsp_config_t cfg;
    char err[256];
    int rv = wsp_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rv == 1)
        return 0;
    if (rv < 0) {
        fprintf(stderr, "wspush: %s\n", err);
        wsp_config_usage(stderr);
        return 2;
    }
    wsp_log_level = cfg.log_level;
    if (main_role(&cfg) != 0)
        return 1;
    /* What SIGUSR2 starts again (issue #20): this binary's path now, these arguments. */
    int ho_fd = wsp_reexec_inherited();
    const char *ho_epoch = ho_fd >= 0 ? wsp_reexec_inherited_epoch() : NULL;
    if (ho_epoch && cfg.worker_fd < 0 && strlen(ho_epoch) <= WSP_CONFIG_EPOCH_MAX) {
        /* The old process's epoch: its clients' numbers go on. Which channel is where is
         * learnt from what is published, as by a worker started late. */
        strcpy(cfg.epoch, ho_epoch);
        cfg.worker_restart = 1;
    }
    if ((rv = wsp_reexec_record(argc, argv)) < 0)
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_unavailable error=%s", uv_err_name(rv));
    /* This process's epoch (issue #17): its channel numbers start here. A worker has its
     * supervisor's (--worker-epoch). */
    if (cfg.epoch[0] == '\0' && (rv = wsp_framed_epoch_new(cfg.epoch)) < 0) {
        fprintf(stderr, "wspush: cannot make an epoch: %s\n", strerror(-rv));
        return 1;
    }
    /* A peer that resets while we write must cost an EPIPE, not the process. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "wspush: cannot ignore SIGPIPE: %s\n", strerror(errno));
        return 1;
    }
    if (main_probe_uring(&cfg) != 0 || main_check_auth(&cfg) != 0)
        return 1;
    if (cfg.procs > 1 && cfg.worker_fd < 0) {
        int keys_fd = main_super_tls(&cfg);
        if (keys_fd == -2)
            return 1;
        rv = wsp_super_run(&cfg, argc, argv, keys_fd); /* each worker sizes itself */
        if (keys_fd >= 0)
            close(keys_fd);
    } else if ((rv = main_serve(&cfg, ho_fd)) == 1) {
        return 1;
    }
    return main_exit(&cfg, rv);
}
