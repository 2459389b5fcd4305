/* cmd_verify_nodes.c -- `sinkd verify` over several nodes' logs (issue 22): each log checked as
 * `sinkd verify LOG_DIR --key VKEY` checks one, then, with --registry, the totals the shared
 * registry claims across the nodes recounted from the verified entries themselves. */
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "evidence/log.h"
#include "evidence/seal.h"
#include "registry/registry.h"

#define NODES_MAX 64
#define WITNESSES_MAX 16
#define DAYS_MAX 4096

struct node_log {
    const char *dir, *key;
    struct evlog_verifier vk;
    char name[REGISTRY_SOURCE_MAX + 1]; /* "origin+keyid", as the registry names the log */
    uint64_t entries;                   /* verified: the latest checkpoint's size */
    uint64_t applied;                   /* what the registry says it applied of this log */
    uint64_t contacts;                  /* contact records among the applied entries */
};

/* What one registry holds that does not depend on the order its logs were applied in
 * (docs/registry.md, "What order changes"). */
struct totals {
    uint64_t bots, ips, commanded;
    size_t ndays;
    struct {
        int64_t day;
        uint64_t contacts, sent, failed;
    } day[DAYS_MAX];
};

static bool is_option(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

bool cmd_verify_is_nodes(int argc, char **argv)
{
    int dirs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return false; /* the one usage text */
        }
        if (is_option(argv[i], "--registry")) {
            return true;
        }
        if (argv[i][0] != '-') {
            dirs++;
        } else if (strchr(argv[i], '=') == NULL && i + 1 < argc &&
                   (is_option(argv[i], "--key") || is_option(argv[i], "--tsa-ca") ||
                    is_option(argv[i], "--witness"))) {
            i++; /* its value */
        }
    }
    return dirs > 1;
}

/* "--opt VALUE" or "--opt=VALUE" at argv[*i]; NULL when argv[*i] is not --opt (*rc set to 2
 * when its value is missing). */
static const char *value_of(int argc, char **argv, int *i, const char *name, int *rc)
{
    if (!is_option(argv[*i], name)) {
        return NULL;
    }
    size_t n = strlen(name);
    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    /* argv[argc] is NULL: testing the element too keeps a NULL return meaning only "not this
     * option" (or an error in *rc). */
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        *rc = cli_usage_error("verify", "option '%s' needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

static int add_day(struct totals *t, int64_t day, uint64_t contacts, uint64_t sent, uint64_t failed)
{
    size_t i = 0;
    while (i < t->ndays && t->day[i].day != day) {
        i++;
    }
    if (i == t->ndays) {
        if (t->ndays == DAYS_MAX) {
            return -1;
        }
        t->ndays++;
        t->day[i].day = day;
        t->day[i].contacts = t->day[i].sent = t->day[i].failed = 0;
    }
    t->day[i].contacts += contacts;
    t->day[i].sent += sent;
    t->day[i].failed += failed;
    return 0;
}

static int on_day(void *ctx, const struct registry_day *d)
{
    return add_day(ctx, d->day, d->contacts, 0, 0);
}

static int on_rem_day(void *ctx, const struct registry_remediation_day *d)
{
    return add_day(ctx, d->day, 0, d->commands_sent, d->commands_failed);
}

static int read_totals(struct registry *reg, struct totals *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    struct registry_filter all = {0};
    struct registry_totals rt;
    if (registry_totals(reg, &all, &rt, err, errlen) < 0 ||
        registry_days(reg, 0, 0, NULL, on_day, t, err, errlen) != 0 ||
        registry_remediation_days(reg, 0, 0, on_rem_day, t, err, errlen) != 0) {
        return -1;
    }
    t->bots = rt.bots;
    t->ips = rt.ips;
    t->commanded = rt.commanded;
    return 0;
}

struct replay {
    struct registry *reg;
    struct node_log *log;
    uint64_t base; /* index in the recount registry of this log's first entry */
    char err[512];
    /* The log's epoch keys (its state directory is LOG_DIR/..): sealed entries are recounted
     * opened, as the registry's follower applied them; without keys they count only by day. */
    struct seal_keyring *keys;
    uint8_t opened[EVENT_RECORD_MAX + 128];
};

static int replay_entry(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
    struct replay *r = ctx;
    if (index >= r->log->applied) {
        return 1; /* the rest was not applied to the registry either */
    }
    size_t olen = 0;
    if (r->keys != NULL && seal_open(r->keys, index, entry, len, r->opened, sizeof(r->opened),
                                     &olen, NULL, 0) == SEAL_OPENED) {
        entry = r->opened;
        len = olen;
    }
    struct record rec;
    if (event_decode(entry, len, &rec, NULL, 0) == 0) {
        /* Bot messages: contact records (undecoded callers are no bots' contacts) and the polls a
         * heartbeats record rolls up, as the registry's per-day counts have them. */
        if (rec.kind == RECORD_CONTACT && rec.u.contact.msg_type != CONTACT_MSG_UNDECODED) {
            r->log->contacts++;
        } else if (rec.kind == RECORD_HEARTBEATS) {
            r->log->contacts += rec.u.heartbeats.count;
        }
    }
    int rc = registry_apply(r->reg, r->base + index, entry, len, r->err, sizeof(r->err));
    return rc < 0 && rc != REGISTRY_E_DECODE ? -1 : 0;
}

struct source_check {
    struct node_log *logs;
    size_t n;
    char unknown[REGISTRY_SOURCE_MAX + 1];
};

static int on_source(void *ctx, const char *name, uint64_t applied)
{
    struct source_check *s = ctx;
    for (size_t i = 0; i < s->n; i++) {
        if (name[0] == '\0' || strcmp(name, s->logs[i].name) == 0) {
            s->logs[i].applied = applied;
            return 0;
        }
    }
    if (applied > 0 && s->unknown[0] == '\0') {
        snprintf(s->unknown, sizeof(s->unknown), "%s", name);
    }
    return 0;
}

/* Reads what the registry says it applied of each log. Returns 0, or 1 after a line. */
static int claimed(const char *target, struct node_log *logs, size_t n, struct totals *t)
{
    char err[512];
    struct registry *reg = NULL;
    if (registry_open(&reg, target, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd verify: %s\n", err);
        return 1;
    }
    if (!registry_is_shared(reg) && n > 1) {
        fprintf(stderr,
                "sinkd verify: %s holds one node's log: give the registry the nodes "
                "share (a postgresql:// URL)\n",
                registry_target_name(target));
        registry_close(reg);
        return 1;
    }
    struct source_check s = {.logs = logs, .n = n};
    if (registry_sources(reg, on_source, &s, err, sizeof(err)) != 0 ||
        read_totals(reg, t, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd verify: %s: %s\n", registry_target_name(target), err);
        registry_close(reg);
        return 1;
    }
    registry_close(reg);
    if (s.unknown[0] != '\0') {
        fprintf(stderr,
                "sinkd verify: FAILED: the registry also holds log %s, which was not given: its "
                "totals cannot be checked without it\n",
                s.unknown);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (logs[i].applied > logs[i].entries) {
            fprintf(stderr,
                    "sinkd verify: FAILED: the registry has applied %llu entries of %s, whose "
                    "latest checkpoint covers %llu: verify once the node has published a "
                    "checkpoint over them (it does so within --checkpoint-ms, and when it stops)\n",
                    (unsigned long long)logs[i].applied, logs[i].name,
                    (unsigned long long)logs[i].entries);
            return 1;
        }
    }
    return 0;
}

/* The same logs, to the same points, applied one after another into a fresh SQLite registry.
 * Returns 0, or 1 after a line. */
static int recount(struct node_log *logs, size_t n, struct totals *t)
{
    char dir[] = "/tmp/sinkd-verify-XXXXXX", path[64], err[512];
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "sinkd verify: cannot make a scratch directory in /tmp\n");
        return 1;
    }
    snprintf(path, sizeof(path), "%s/registry.db", dir);
    struct registry *reg = NULL;
    int rc = registry_open(&reg, path, err, sizeof(err));
    uint64_t base = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct replay *r = calloc(1, sizeof(*r));
        if (r == NULL) {
            rc = -1;
            break;
        }
        *r = (struct replay){.reg = reg, .log = &logs[i], .base = base};
        char state[4200];
        snprintf(state, sizeof(state), "%s/..", logs[i].dir);
        if (seal_keyring_open(&r->keys, state, false, 0, NULL, 0) != 0) {
            r->keys = NULL;
        }
        logs[i].contacts = 0;
        int w = evlog_entries_walk(logs[i].dir, logs[i].entries, replay_entry, r, err, sizeof(err));
        if (w < 0 || (w == 0 && r->err[0] != '\0')) {
            fprintf(stderr, "sinkd verify: %s: %s\n", logs[i].dir, r->err[0] ? r->err : err);
            rc = -1;
        }
        seal_keyring_free(r->keys);
        free(r);
        base += logs[i].applied;
    }
    if (rc == 0 &&
        (registry_flush(reg, err, sizeof(err)) < 0 || read_totals(reg, t, err, sizeof(err)) < 0)) {
        fprintf(stderr, "sinkd verify: recounting: %s\n", err);
        rc = -1;
    }
    registry_close(reg);
    registry_destroy(path, err, sizeof(err));
    rmdir(dir);
    return rc == 0 ? 0 : 1;
}

/* Prints each figure as "what: N (registry M)"; returns the number that differ. */
static int compare(const struct totals *logs, const struct totals *reg, uint64_t contacts)
{
    int bad = 0;
    struct {
        const char *what;
        uint64_t mine, theirs;
    } f[] = {
        {"bots", logs->bots, reg->bots},
        {"source addresses", logs->ips, reg->ips},
        {"commanded bots", logs->commanded, reg->commanded},
    };
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        bool ok = f[i].mine == f[i].theirs;
        bad += !ok;
        printf("  %s: %llu in the logs, %llu in the registry%s\n", f[i].what,
               (unsigned long long)f[i].mine, (unsigned long long)f[i].theirs,
               ok ? "" : "  <- MISMATCH");
    }
    uint64_t in_days = 0;
    for (size_t i = 0; i < reg->ndays; i++) {
        in_days += reg->day[i].contacts;
    }
    bool ok = in_days == contacts;
    bad += !ok;
    printf("  contacts: %llu in the logs, %llu in the registry's days%s\n",
           (unsigned long long)contacts, (unsigned long long)in_days, ok ? "" : "  <- MISMATCH");
    /* Day by day: contacts, commands sent and failed. */
    for (size_t pass = 0; pass < 2; pass++) {
        const struct totals *a = pass == 0 ? logs : reg, *b = pass == 0 ? reg : logs;
        for (size_t i = 0; i < a->ndays; i++) {
            size_t j = 0;
            while (j < b->ndays && b->day[j].day != a->day[i].day) {
                j++;
            }
            bool same = j < b->ndays && b->day[j].contacts == a->day[i].contacts &&
                        b->day[j].sent == a->day[i].sent && b->day[j].failed == a->day[i].failed;
            if (!same && (pass == 0 || j == b->ndays)) {
                bad++;
                printf("  day %lld: contacts, commands sent, failed: %s %llu %llu %llu, "
                       "%s %llu %llu %llu  <- MISMATCH\n",
                       (long long)a->day[i].day, pass == 0 ? "logs" : "registry",
                       (unsigned long long)a->day[i].contacts, (unsigned long long)a->day[i].sent,
                       (unsigned long long)a->day[i].failed, pass == 0 ? "registry" : "logs",
                       (unsigned long long)(j < b->ndays ? b->day[j].contacts : 0),
                       (unsigned long long)(j < b->ndays ? b->day[j].sent : 0),
                       (unsigned long long)(j < b->ndays ? b->day[j].failed : 0));
            }
        }
    }
    printf("  days: %zu in the logs, %zu in the registry\n", logs->ndays, reg->ndays);
    return bad;
}

int cmd_verify_nodes(int argc, char **argv)
{
    static struct node_log logs[NODES_MAX];
    size_t n = 0, nwitness = 0;
    const char *registry = NULL, *ca = NULL, *witness_files[WITNESSES_MAX];
    memset(logs, 0, sizeof(logs));
    for (int i = 1; i < argc && argv[i] != NULL; i++) {
        int rc = 0;
        const char *v;
        if ((v = value_of(argc, argv, &i, "--key", &rc)) != NULL) {
            if (n == 0 || logs[n - 1].key != NULL) {
                return cli_usage_error("verify", "each --key follows the LOG_DIR it verifies");
            }
            logs[n - 1].key = v;
        } else if ((v = value_of(argc, argv, &i, "--registry", &rc)) != NULL) {
            registry = v;
        } else if ((v = value_of(argc, argv, &i, "--tsa-ca", &rc)) != NULL) {
            ca = v;
        } else if ((v = value_of(argc, argv, &i, "--witness", &rc)) != NULL) {
            if (nwitness == WITNESSES_MAX) {
                return cli_usage_error("verify", "at most %d --witness keys", WITNESSES_MAX);
            }
            witness_files[nwitness++] = v;
        } else if (rc != 0) {
            return rc;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("verify", "unknown option '%s'", argv[i]);
        } else if (n == NODES_MAX) {
            return cli_usage_error("verify", "at most %d logs", NODES_MAX);
        } else {
            if (n > 0 && logs[n - 1].key == NULL) {
                return cli_usage_error("verify", "%s has no --key", logs[n - 1].dir);
            }
            logs[n++].dir = argv[i];
        }
    }
    if (n == 0 || logs[n - 1].key == NULL) {
        return cli_usage_error("verify", "every LOG_DIR needs its --key after it");
    }
    char err[1024];
    struct evlog_verifier witnesses[WITNESSES_MAX];
    for (size_t i = 0; i < nwitness; i++) {
        if (evlog_verifier_load(witness_files[i], &witnesses[i], err, sizeof(err)) != 0 ||
            !witnesses[i].witness) {
            fprintf(stderr, "sinkd verify: --witness %s: %s\n", witness_files[i],
                    witnesses[i].witness ? err : "a log key (type 0x01), not a witness key");
            return 1;
        }
    }
    /* Each log as the one-log form checks it. */
    for (size_t i = 0; i < n; i++) {
        struct node_log *l = &logs[i];
        struct evlog_verify_report rep;
        if (evlog_verifier_load(l->key, &l->vk, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd verify: %s\n", err);
            return 1;
        }
        for (size_t j = 0; j < i; j++) {
            if (logs[j].vk.keyid == l->vk.keyid && strcmp(logs[j].vk.name, l->vk.name) == 0) {
                return cli_usage_error("verify", "%s and %s are the same log (%s)", logs[j].dir,
                                       l->dir, l->vk.name);
            }
        }
        char
            name[sizeof(l->name)]; /* through a copy: gcc -O0 sees l->vk.name and l->name overlap */
        snprintf(name, sizeof(name), "%s+%08x", l->vk.name, (unsigned)l->vk.keyid);
        memcpy(l->name, name, sizeof(name));
        int stamps = 0, cosigs = 0;
        if (evlog_verify_dir(l->dir, &l->vk, &rep, err, sizeof(err)) != 0 ||
            (stamps = evlog_ts_verify_dir(l->dir, ca, NULL, NULL, err, sizeof(err))) < 0 ||
            (cosigs = evlog_cosignatures_verify_dir(l->dir, witnesses, nwitness, NULL, NULL, err,
                                                    sizeof(err))) < 0) {
            fprintf(stderr, "sinkd verify: FAILED: %s: %s\n", l->dir, err);
            return 1;
        }
        l->entries = rep.entries;
        printf("sinkd verify: OK: %s (%s): %llu entries, %llu checkpoints, %llu tile files, %d "
               "timestamps, %d cosignatures checked\n",
               l->dir, l->name, (unsigned long long)rep.entries,
               (unsigned long long)rep.checkpoints, (unsigned long long)rep.tiles, stamps, cosigs);
    }
    if (registry == NULL) {
        printf("sinkd verify: OK: %zu logs\n", n);
        return 0;
    }
    /* The registry's claims, then the same recounted from the verified entries. */
    static struct totals theirs, mine;
    if (claimed(registry, logs, n, &theirs) != 0 || recount(logs, n, &mine) != 0) {
        return 1;
    }
    uint64_t contacts = 0;
    printf("sinkd verify: %s, applied per log:\n", registry_target_name(registry));
    for (size_t i = 0; i < n; i++) {
        contacts += logs[i].contacts;
        printf("  %s: %llu of %llu entries (%llu contacts)\n", logs[i].name,
               (unsigned long long)logs[i].applied, (unsigned long long)logs[i].entries,
               (unsigned long long)logs[i].contacts);
    }
    printf("sinkd verify: cross-node totals, recounted from the verified entries:\n");
    int bad = compare(&mine, &theirs, contacts);
    fflush(stdout); /* the figures first, then the verdict, also when both go to one file */
    if (bad > 0) {
        fprintf(stderr,
                "sinkd verify: FAILED: %d of the registry's cross-node figures differ "
                "from the logs'\n",
                bad);
        return 1;
    }
    printf("sinkd verify: OK: %zu logs, and the registry's cross-node totals agree with them\n", n);
    return 0;
}
