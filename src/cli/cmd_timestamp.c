/* cmd_timestamp.c -- `sinkd timestamp`: has an RFC 3161 time-stamping authority certify that a
 * signed checkpoint existed, online (HTTP POST through libcurl) or offline (request file out,
 * reply file in). The checks and the files are the evidence module's (evlog_ts_*). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/http_post.h"
#include "evidence/log.h"
#include "util/lockfile.h"

static const char timestamp_usage[] =
    "usage: sinkd timestamp --state DIR (--tsa-url URL | --request-out FILE | --reply FILE)\n"
    "                       [--size N] [--tsa-ca FILE] [--timeout SECONDS]\n"
    "\n"
    "Has a time-stamping authority (RFC 3161) certify that a signed checkpoint existed no later\n"
    "than a given time. Its token is kept as log/timestamps/<size>.tsr next to\n"
    "log/checkpoints/<size> and is checked by `sinkd verify`, in evidence bundles, and without\n"
    "sinkd by: openssl ts -verify -data log/checkpoints/<size> -in log/timestamps/<size>.tsr\n"
    "-CAfile TSA_CA.pem. Safe to run while `sinkd serve` writes the same state.\n"
    "\n"
    "  --state DIR         the sinkd state directory\n"
    "  --tsa-url URL       send the request to this TSA (HTTP POST of\n"
    "                      application/timestamp-query) and store its reply\n"
    "  --request-out FILE  offline: write the request to FILE (it is kept as\n"
    "                      log/timestamps/<size>.tsq) to send by other means\n"
    "  --reply FILE        offline: store the TSA's reply to the pending request\n"
    "  --size N            checkpoint to timestamp (default: the latest; with --reply, the\n"
    "                      newest pending request)\n"
    "  --tsa-ca FILE       PEM CA certificate(s) of the TSA: the reply's signer must chain to\n"
    "                      one (checked at the token's time); without it only the signature\n"
    "                      with the certificate the reply carries is checked\n"
    "  --timeout SECONDS   HTTP timeout, 1-600 (default 30)\n"
    "  --help              this text\n";

#define HTTP_TIMEOUT_DEFAULT 30

static int read_whole(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open", path);
        return -1;
    }
    uint8_t *buf = malloc(EVLOG_TS_RESP_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, EVLOG_TS_RESP_MAX + 1, f) : 0;
    int failed = buf == NULL || ferror(f);
    fclose(f);
    if (failed || n > EVLOG_TS_RESP_MAX) {
        snprintf(err, errlen, "%s: %s", path,
                 failed ? "cannot read" : "longer than a timestamp reply may be");
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int write_whole(const char *path, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        snprintf(err, errlen, "%s: cannot write", path);
        return -1;
    }
    return 0;
}

static void print_stored(const char *log_dir, uint64_t size, const struct evlog_timestamp *ts)
{
    printf("sinkd timestamp: checkpoint %llu timestamped %s by %s (serial %s, policy %s); %s\n"
           "  %s/timestamps/%llu.tsr\n",
           (unsigned long long)size, ts->time_text, ts->tsa, ts->serial, ts->policy,
           ts->chain_checked ? "signer chains to --tsa-ca"
                             : "signer chain NOT checked (no --tsa-ca)",
           log_dir, (unsigned long long)size);
}

static int timestamp_locked(const char *state, const char *log_dir, const char *url,
                            const char *req_out, const char *reply, const char *ca, uint64_t size,
                            uint64_t timeout);

int cmd_timestamp(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"tsa-url", required_argument, NULL, 'u'},
        {"request-out", required_argument, NULL, 'q'},
        {"reply", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 'n'},
        {"tsa-ca", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *url = NULL, *req_out = NULL, *reply = NULL, *ca = NULL;
    uint64_t size = 0, timeout = HTTP_TIMEOUT_DEFAULT;
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
        case 'q':
            req_out = optarg;
            break;
        case 'r':
            reply = optarg;
            break;
        case 'c':
            ca = optarg;
            break;
        case 'n':
            if (!cli_parse_u64("timestamp", "size", optarg, 1, UINT64_MAX, &size)) {
                return 2;
            }
            break;
        case 't':
            if (!cli_parse_u64("timestamp", "timeout", optarg, 1, 600, &timeout)) {
                return 2;
            }
            break;
        case 'h':
            fputs(timestamp_usage, stdout);
            return 0;
        default:
            return cli_usage_error("timestamp", "unknown option or missing value '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("timestamp", "unexpected argument '%s'", argv[optind]);
    }
    if (state == NULL || (url != NULL) + (req_out != NULL) + (reply != NULL) != 1) {
        return cli_usage_error("timestamp", "--state and exactly one of --tsa-url, --request-out "
                                            "and --reply are required");
    }
    if (cli_act_as_state_owner("timestamp", state) != 0) {
        return 1;
    }
    char log_dir[EVLOG_PATH_MAX], err[1024];
    snprintf(log_dir, sizeof log_dir, "%s/log", state);
    /* One writer of log/timestamps/ at a time (issue 19 #3); `serve` writes elsewhere. */
    int lock_fd = lockfile_take(state, LOCKFILE_TIMESTAMP, NULL, false, err, sizeof err);
    if (lock_fd < 0) {
        fprintf(stderr, "sinkd timestamp: %s\n", err);
        return 1;
    }
    int rc = timestamp_locked(state, log_dir, url, req_out, reply, ca, size, timeout);
    lockfile_release(lock_fd);
    return rc;
}

static int timestamp_locked(const char *state, const char *log_dir, const char *url,
                            const char *req_out, const char *reply, const char *ca, uint64_t size,
                            uint64_t timeout)
{
    char err[1024];
    struct evlog_timestamp ts;
    uint8_t *req = NULL, *resp = NULL;
    size_t req_len = 0, resp_len = 0;
    int rc = 1;

    if (reply != NULL) {
        if ((size == 0 && evlog_ts_pending(log_dir, &size, err, sizeof err) != 0) ||
            read_whole(reply, &resp, &resp_len, err, sizeof err) != 0 ||
            evlog_ts_store(log_dir, size, resp, resp_len, ca, &ts, err, sizeof err) != 0) {
            fprintf(stderr, "sinkd timestamp: %s\n", err);
        } else {
            print_stored(log_dir, size, &ts);
            rc = 0;
        }
        free(resp);
        return rc;
    }
    bool latest = size == 0;
    rc = evlog_ts_prepare(log_dir, size, &size, &req, &req_len, err, sizeof err);
    if (rc == 1 && latest) {
        /* Nothing logged since the last token (a timer's idle hour): done, not failed. */
        printf("sinkd timestamp: nothing to do: the latest checkpoint (%llu) is timestamped "
               "already\n",
               (unsigned long long)size);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "sinkd timestamp: %s\n", err);
        return 1;
    }
    rc = 1;
    if (req_out != NULL) {
        if (write_whole(req_out, req, req_len, err, sizeof err) != 0) {
            fprintf(stderr, "sinkd timestamp: %s\n", err);
        } else {
            printf("sinkd timestamp: request for checkpoint %llu written to %s; send it to a TSA,\n"
                   "  e.g. curl -sS -H 'Content-Type: application/timestamp-query' "
                   "--data-binary @%s URL > reply.tsr\n"
                   "  then: sinkd timestamp --state %s --reply reply.tsr\n",
                   (unsigned long long)size, req_out, req_out, state);
            rc = 0;
        }
        free(req);
        return rc;
    }
    if (!http_post_global(true)) {
        fprintf(stderr, "sinkd timestamp: libcurl failed to start\n");
        free(req);
        return 1;
    }
    struct http_reply http;
    bool ok = http_post(url, "application/timestamp-query", req, req_len, (long)timeout,
                        EVLOG_TS_RESP_MAX, &http, err, sizeof err) == 0;
    if (ok && http.status != 200) {
        snprintf(err, sizeof err, "%s: HTTP status %ld", url, http.status);
        ok = false;
    }
    ok = ok && evlog_ts_store(log_dir, size, (const uint8_t *)http.body, http.len, ca, &ts, err,
                              sizeof err) == 0;
    if (ok) {
        print_stored(log_dir, size, &ts);
        rc = 0;
    } else {
        fprintf(stderr, "sinkd timestamp: %s\n", err);
    }
    http_reply_free(&http);
    free(req);
    http_post_global(false);
    return rc;
}
