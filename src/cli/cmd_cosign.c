/* cmd_cosign.c -- `sinkd cosign`: submits the latest checkpoint to a C2SP tlog-witness
 * (add-checkpoint, with the consistency proof from what the witness last cosigned) and keeps its
 * cosignature in log/cosignatures/. The request and checks are the evidence module's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/http_post.h"
#include "evidence/log.h"
#include "util/lockfile.h"

static const char cosign_usage[] =
    "usage: sinkd cosign --state DIR --witness-url URL --witness-key VKEY_FILE\n"
    "                    [--size N] [--timeout SECONDS]\n"
    "\n"
    "Asks a witness (C2SP tlog-witness: POST add-checkpoint) to cosign the latest signed\n"
    "checkpoint, proving it consistent with the last one that witness cosigned. A witness run\n"
    "by a third party (a foreign CERT, the defence's expert) thereby attests that the log never\n"
    "showed two different histories. The cosigned checkpoint is kept as\n"
    "log/cosignatures/<size>; `sinkd verify --witness VKEY_FILE` checks it. Safe while `sinkd\n"
    "serve` runs on the same state.\n"
    "\n"
    "  --state DIR            the sinkd state directory\n"
    "  --witness-url URL      the witness's add-checkpoint URL\n"
    "  --witness-key FILE     the witness's public key: <name>+<keyid>+base64(0x04 || key)\n"
    "  --size N               checkpoint to submit (default: the latest)\n"
    "  --timeout SECONDS      HTTP timeout, 1-600 (default 30)\n"
    "  --help                 this text\n";

#define COSIGN_TIMEOUT_DEFAULT 30

/* One add-checkpoint round: 0 stored, 1 the witness knows another size (*witness_size), -1. */
static int submit(const char *log_dir, const char *url, const struct evlog_verifier *w,
                  uint64_t size, uint64_t old, long timeout, uint64_t *size_out,
                  uint64_t *witness_size, char *err, size_t errlen)
{
    char *body;
    size_t len;
    uint64_t used_old;
    int rc =
        evlog_witness_request(log_dir, w, size, old, size_out, &used_old, &body, &len, err, errlen);
    if (rc == 1) {
        return 2; /* cosigned already */
    }
    if (rc != 0) {
        return -1;
    }
    struct http_reply reply;
    rc = http_post(url, "text/plain; charset=utf-8", body, len, timeout, EVLOG_NOTE_MAX, &reply,
                   err, errlen);
    free(body);
    if (rc != 0) {
        return -1;
    }
    if (reply.status == 409 && reply.body != NULL) {
        /* The witness's last cosigned size for this log differs: text/x.tlog.size. */
        char *end;
        unsigned long long v = strtoull(reply.body, &end, 10);
        bool ok = end != reply.body && (*end == '\n' || *end == '\0');
        http_reply_free(&reply);
        if (ok) {
            *witness_size = v;
            return 1;
        }
        snprintf(err, errlen, "%s: HTTP 409 without a tree size", url);
        return -1;
    }
    if (reply.status != 200) {
        const char *b = reply.body != NULL ? reply.body : "";
        snprintf(err, errlen, "%s: HTTP status %ld (%.*s) submitting checkpoint %llu with old %llu",
                 url, reply.status, (int)strcspn(b, "\n"), b, (unsigned long long)*size_out,
                 (unsigned long long)used_old);
        http_reply_free(&reply);
        return -1;
    }
    uint64_t when = 0;
    rc = evlog_witness_store(log_dir, *size_out, w, reply.body != NULL ? reply.body : "", reply.len,
                             &when, err, errlen);
    http_reply_free(&reply);
    if (rc != 0) {
        return -1;
    }
    printf("sinkd cosign: checkpoint %llu cosigned by %s at %llu (POSIX time); proof from %llu\n",
           (unsigned long long)*size_out, w->name, (unsigned long long)when,
           (unsigned long long)used_old);
    return 0;
}

int cmd_cosign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"witness-url", required_argument, NULL, 'u'},
        {"witness-key", required_argument, NULL, 'k'},
        {"size", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *url = NULL, *wkey = NULL;
    uint64_t size = 0, timeout = COSIGN_TIMEOUT_DEFAULT;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state = optarg;
            break;
        case 'u':
            url = optarg;
            break;
        case 'k':
            wkey = optarg;
            break;
        case 'n':
            if (!cli_parse_u64("cosign", "size", optarg, 1, UINT64_MAX - 1, &size)) {
                return 2;
            }
            break;
        case 't':
            if (!cli_parse_u64("cosign", "timeout", optarg, 1, 600, &timeout)) {
                return 2;
            }
            break;
        case 'h':
            fputs(cosign_usage, stdout);
            return 0;
        default:
            return cli_usage_error("cosign", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("cosign", "unexpected argument '%s'", argv[optind]);
    }
    if (state == NULL || url == NULL || wkey == NULL) {
        return cli_usage_error("cosign", "--state, --witness-url and --witness-key are required");
    }
    if (cli_act_as_state_owner("cosign", state) != 0) {
        return 1;
    }
    char log_dir[4096], err[1024];
    snprintf(log_dir, sizeof log_dir, "%s/log", state);
    struct evlog_verifier w;
    if (evlog_verifier_load(wkey, &w, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd cosign: %s\n", err);
        return 1;
    }
    if (!w.witness) {
        fprintf(stderr, "sinkd cosign: %s: a log key (type 0x01), not a witness key (0x04)\n",
                wkey);
        return 1;
    }
    /* One writer of log/cosignatures/ at a time (issue 19 #3): two runs for two witnesses
     * would each rewrite cosignatures/<size> and one witness's line would be lost. */
    int lock_fd = lockfile_take(state, LOCKFILE_COSIGN, NULL, false, err, sizeof err);
    if (lock_fd < 0) {
        fprintf(stderr, "sinkd cosign: %s\n", err);
        return 1;
    }
    if (!http_post_global(true)) {
        fprintf(stderr, "sinkd cosign: libcurl failed to start\n");
        lockfile_release(lock_fd);
        return 1;
    }
    uint64_t done_size = 0, witness_size = 0;
    int rc = submit(log_dir, url, &w, size, UINT64_MAX, (long)timeout, &done_size, &witness_size,
                    err, sizeof err);
    if (rc == 1) {
        /* The witness has another size on record (it lost state, or cosigned a checkpoint we
         * did not keep): one retry from there, which it accepts only with a valid proof. */
        rc = submit(log_dir, url, &w, size, witness_size, (long)timeout, &done_size, &witness_size,
                    err, sizeof err);
        if (rc == 1) {
            snprintf(err, sizeof err, "%s: the witness insists on size %llu", url,
                     (unsigned long long)witness_size);
            rc = -1;
        }
    }
    http_post_global(false);
    lockfile_release(lock_fd);
    if (rc == 2) {
        printf("sinkd cosign: nothing to do: checkpoint %llu is cosigned by %s already\n",
               (unsigned long long)done_size, w.name);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "sinkd cosign: %s\n", err);
        return 1;
    }
    return 0;
}
