/* cmd_prove.c -- `sinkd prove`: an evidence bundle of the records a court or a CERT asks for
 * (entries, a bot, or an address over a period), written only once its access is on record. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "event/event.h"
#include "evidence/access.h"
#include "evidence/log.h"
#include "evidence/seal.h"
#include "report/report.h"
#include "util/addr.h"

#define PROVE_MAX_ENTRIES 100000u
#define PROVE_MAX_BOTS 64
/* A connection's first message (a hello: no identity yet, so no bot key) comes at most one
 * header timeout (10 s by default, an hour at most) before the message that identifies the bot;
 * an unkeyed contact on the same connection this much earlier still belongs to it. */
#define PROVE_FIRST_CONTACT_US (3600ull * 1000000u)

static const char prove_usage[] =
    "usage: sinkd prove --state DIR (--bot KEY | --ip ADDR | --entry INDEX)... --out BUNDLE_DIR\n"
    "                   [--since T] [--until T] [--checkpoint SIZE]\n"
    "                   --justification TEXT [--operator NAME]\n"
    "\n"
    "Writes an evidence bundle: the chosen log entries, their inclusion proofs to the latest\n"
    "signed checkpoint, the checkpoint, the verifier key and a README explaining how to check\n"
    "it by hand, plus the checkpoint's RFC 3161 timestamp if it has one (`sinkd timestamp`)\n"
    "and, under raw/, the message bodies `serve --keep-raw` kept for the chosen contacts.\n"
    "\n"
    "  --state DIR        the sinkd state directory\n"
    "  --bot KEY          32-hex bot key (as in `sinkd contacts`), may repeat: every record\n"
    "                     of that bot (contacts, heartbeats, decisions, commands), and the\n"
    "                     first contact of each of its connections, which came before the bot\n"
    "                     named itself (same source and destination address and port)\n"
    "  --ip ADDR          a source address, as CERT reports name victims, may repeat: every\n"
    "                     record whose source is ADDR\n"
    "  --since T, --until T  only records in [since, until) (with --bot and --ip); T is\n"
    "                     YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS' UTC; a bare --until date\n"
    "                     includes that day\n"
    "  --entry INDEX      one log entry, may repeat\n"
    "  --out DIR          bundle directory to create\n"
    "  --checkpoint SIZE  prove against the archived checkpoint of this size (e.g. a\n"
    "                     timestamped one) instead of the latest\n" CLI_ACCESS_USAGE
    "  --help             this text\n"
    "\n"
    "A bundle discloses victims' data: it is written under a hidden name beside BUNDLE_DIR\n"
    "and renamed into place only once DIR's log records the access (the SHA-256 of the\n"
    "bundle's files, as `sha256sum` lists them).\n";

/* The fields selection looks at, whatever the record's kind; NULL/0 where a kind has none. */
struct record_view {
    const char *bot_key;
    const struct net_addr *src;
    const struct net_addr *dst;
    uint64_t time_us;
    bool contact; /* a contact (the kind a connection's first message is) */
};

static struct record_view record_view(const struct record *rec)
{
    struct record_view v = {0};
    switch (rec->kind) {
    case RECORD_CONTACT:
        v = (struct record_view){rec->u.contact.bot_key, &rec->u.contact.src, &rec->u.contact.dst,
                                 rec->u.contact.time_us, true};
        break;
    case RECORD_HEARTBEATS:
        v = (struct record_view){rec->u.heartbeats.bot_key, &rec->u.heartbeats.src,
                                 &rec->u.heartbeats.dst, rec->u.heartbeats.time_us, false};
        break;
    case RECORD_DECISION:
        v = (struct record_view){rec->u.decision.bot_key, &rec->u.decision.src, NULL,
                                 rec->u.decision.time_us, false};
        break;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        v = (struct record_view){rec->u.command.bot_key, &rec->u.command.src, NULL,
                                 rec->u.command.time_us, false};
        break;
    default:
        break;
    }
    return v;
}

/* A connection seen in a selected bot's contacts: its addresses (packed, comparable with
 * memcmp) and when it identified itself. */
struct connection {
    uint8_t key[40];
    uint64_t time_us;
};

static void connection_key(const struct net_addr *src, const struct net_addr *dst, uint8_t key[40])
{
    memset(key, 0, 40);
    key[0] = (uint8_t)src->family;
    memcpy(key + 1, src->ip, 16);
    key[17] = (uint8_t)(src->port >> 8);
    key[18] = (uint8_t)src->port;
    key[19] = (uint8_t)dst->family;
    memcpy(key + 20, dst->ip, 16);
    key[36] = (uint8_t)(dst->port >> 8);
    key[37] = (uint8_t)dst->port;
}

static int cmp_connection(const void *a, const void *b)
{
    const struct connection *x = a, *y = b;
    int c = memcmp(x->key, y->key, sizeof(x->key));
    return c != 0 ? c : x->time_us < y->time_us ? -1 : x->time_us > y->time_us;
}

struct selection {
    const char *bots[PROVE_MAX_BOTS];
    size_t nbots;
    struct net_addr ips[PROVE_MAX_BOTS];
    size_t nips;
    uint64_t since_us, until_us; /* 0: no bound */
    uint64_t *idx;
    size_t n;
    struct connection *conns;
    size_t nconns, conns_cap;
};

static bool in_period(const struct selection *s, uint64_t t)
{
    return (s->since_us == 0 || t >= s->since_us) && (s->until_us == 0 || t < s->until_us);
}

static int add_index(struct selection *s, uint64_t index)
{
    if (s->n == PROVE_MAX_ENTRIES) {
        return -1;
    }
    s->idx[s->n++] = index;
    return 0;
}

static int remember_connection(struct selection *s, const struct record_view *v)
{
    if (s->nconns == s->conns_cap) {
        size_t cap = s->conns_cap ? s->conns_cap * 2 : 256;
        struct connection *c = realloc(s->conns, cap * sizeof(*c));
        if (c == NULL) {
            return -1;
        }
        s->conns = c;
        s->conns_cap = cap;
    }
    connection_key(v->src, v->dst, s->conns[s->nconns].key);
    s->conns[s->nconns++].time_us = v->time_us;
    return 0;
}

/* Whether an unkeyed contact opened one of the selected bots' connections: same source and
 * destination address and port, at most PROVE_FIRST_CONTACT_US before a keyed contact on it.
 * s->conns is sorted (cmp_connection): the first connection with this key at or after the
 * contact's time decides. */
static bool opened_a_connection(const struct selection *s, const struct record_view *v)
{
    struct connection probe;
    connection_key(v->src, v->dst, probe.key);
    probe.time_us = v->time_us;
    size_t lo = 0, hi = s->nconns;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_connection(&s->conns[mid], &probe) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < s->nconns && memcmp(s->conns[lo].key, probe.key, sizeof(probe.key)) == 0 &&
           s->conns[lo].time_us - v->time_us <= PROVE_FIRST_CONTACT_US;
}

typedef int (*select_pass)(struct selection *s, uint64_t index, const struct record *rec);

/* First pass: records of a chosen bot or from a chosen address. */
static int select_named(struct selection *s, uint64_t index, const struct record *rec)
{
    struct record_view v = record_view(rec);
    if (v.src == NULL || !in_period(s, v.time_us)) {
        return 0;
    }
    bool chosen = false;
    for (size_t b = 0; !chosen && v.bot_key[0] != '\0' && b < s->nbots; b++) {
        chosen = strcmp(v.bot_key, s->bots[b]) == 0;
    }
    if (chosen && v.contact && remember_connection(s, &v) != 0) {
        return -1;
    }
    for (size_t i = 0; !chosen && i < s->nips; i++) {
        chosen = net_addr_equal_ip(v.src, &s->ips[i]);
    }
    if (!chosen) {
        return 0;
    }
    /* A heartbeats record naming the leaf that describes its bot is proved with that leaf: it
     * is what says who polled. */
    if (rec->kind == RECORD_HEARTBEATS && rec->u.heartbeats.described_in != 0 &&
        add_index(s, rec->u.heartbeats.described_in) != 0) {
        return -1;
    }
    return add_index(s, index);
}

/* Second pass: the first contacts of the chosen bots' connections (no bot key yet). */
static int select_first_contacts(struct selection *s, uint64_t index, const struct record *rec)
{
    struct record_view v = record_view(rec);
    if (!v.contact || v.bot_key[0] != '\0' || !in_period(s, v.time_us) ||
        !opened_a_connection(s, &v)) {
        return 0;
    }
    for (size_t i = 0; i < s->nips; i++) {
        if (net_addr_equal_ip(v.src, &s->ips[i])) {
            return 0; /* chosen by its address in the first pass already */
        }
    }
    return add_index(s, index);
}

static int scan(const char *state, struct selection *s, select_pass pass, char *err, size_t errlen)
{
    struct evlog_reader *r = NULL;
    struct record *rec = malloc(sizeof *rec);
    if (rec == NULL) {
        return snprintf(err, errlen, "out of memory"), -1;
    }
    if (evlog_reader_open(&r, state, 0, err, errlen) != 0 || evlog_reader_fill_described(r) != 0) {
        if (r != NULL) {
            evlog_reader_close(r);
            snprintf(err, errlen, "out of memory");
        }
        free(rec);
        return -1;
    }
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    int got;
    while ((got = evlog_reader_next(r, &entry, &len, &index, err, errlen)) == 1) {
        if (event_decode(entry, len, rec, NULL, 0) != 0) {
            continue;
        }
        if (pass(s, index, rec) != 0) {
            snprintf(err, errlen, "more than %u entries or out of memory", PROVE_MAX_ENTRIES);
            got = -1;
            break;
        }
    }
    evlog_reader_close(r);
    free(rec);
    return got < 0 ? -1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Entries in log order, each once. */
static void sort_unique(struct selection *s)
{
    if (s->n == 0) {
        return;
    }
    qsort(s->idx, s->n, sizeof(*s->idx), cmp_u64);
    size_t w = 1;
    for (size_t i = 1; i < s->n; i++) {
        if (s->idx[i] != s->idx[w - 1]) {
            s->idx[w++] = s->idx[i];
        }
    }
    s->n = w;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a bundle that was never handed out (its access record could not be made). */
static void remove_held(const char *dir)
{
    (void)nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes the bundle under a hidden name beside `out`, makes its access record durable, and only
 * then renames it into place. Prints why on failure. */
static int prove_recorded(const char *state, uint64_t at_size, const uint64_t *idx, size_t n,
                          const char *out, const struct cli_access *access, const char *scope)
{
    char err[1024];
    struct stat st;
    if (stat(out, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(out) != 0)) {
        fprintf(stderr, "sinkd prove: %s: exists and is not an empty directory\n", out);
        return 1;
    }
    char held[EVLOG_PATH_MAX];
    if ((size_t)snprintf(held, sizeof held, "%s.held-XXXXXX", out) >= sizeof held ||
        mkdtemp(held) == NULL) {
        fprintf(stderr, "sinkd prove: --out: %s: cannot make a directory beside it: %s%s\n", out,
                strerror(errno), cli_acting_as());
        return 1;
    }
    uint8_t sha[32];
    uint64_t files = 0;
    if (evlog_bundle_write(state, at_size, idx, n, held, event_describe_json, NULL, err,
                           sizeof err) != 0 ||
        access_dir_digest(held, sha, &files, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd prove: %s\n", err);
        remove_held(held);
        return 1;
    }
    if (cli_access_record("prove", state, access, "prove", scope, n, sha) != 0) {
        remove_held(held);
        return 1;
    }
    if (rename(held, out) != 0) {
        fprintf(stderr, "sinkd prove: %s -> %s: %s\n", held, out, strerror(errno));
        return 1;
    }
    return 0;
}

/* What was asked, for the access record (sealed with the record's personal fields: it may
 * name an address). */
static void describe_scope(const struct selection *s, const char *state, size_t entries, char *out,
                           size_t cap)
{
    int len = snprintf(out, cap, "state=%s entries=%zu", state, entries);
    for (size_t b = 0; b < s->nbots && len > 0 && (size_t)len < cap; b++) {
        len += snprintf(out + len, cap - (size_t)len, " bot=%s", s->bots[b]);
    }
    for (size_t i = 0; i < s->nips && len > 0 && (size_t)len < cap; i++) {
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&s->ips[i], ip);
        len += snprintf(out + len, cap - (size_t)len, " ip=%s", ip);
    }
    char t[32];
    if (s->since_us != 0 && len > 0 && (size_t)len < cap) {
        event_format_time(s->since_us, t);
        len += snprintf(out + len, cap - (size_t)len, " since=%s", t);
    }
    if (s->until_us != 0 && len > 0 && (size_t)len < cap) {
        event_format_time(s->until_us, t);
        snprintf(out + len, cap - (size_t)len, " until=%s", t);
    }
}

/* The erasure records in the log (what a court asks about an erased record: when, on what
 * basis). */
static void list_erasures(const char *state)
{
    struct evlog_reader *r = NULL;
    struct record *rec = malloc(sizeof *rec);
    if (rec == NULL || evlog_reader_open(&r, state, 0, NULL, 0) != 0) {
        free(rec);
        return;
    }
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    while (evlog_reader_next(r, &entry, &len, &index, NULL, 0) == 1) {
        /* before_us 0: an erase that found no key to destroy, and erased nothing. */
        if (len < 2 || entry[1] != RECORD_ERASURE || event_decode(entry, len, rec, NULL, 0) != 0 ||
            rec->u.erasure.before_us == 0) {
            continue;
        }
        char when[32], before[32];
        event_format_time(rec->u.erasure.time_us, when);
        event_format_time(rec->u.erasure.before_us, before);
        printf("  erasure record: entry %llu at %s by %s: personal data recorded before %s; legal "
               "basis: %s\n",
               (unsigned long long)index, when, rec->u.erasure.operator_name, before,
               rec->u.erasure.legal_basis);
    }
    evlog_reader_close(r);
    free(rec);
}

/* Which entries of the bundle are sealed without their key, and why: "erased" (with the day the
 * epoch key was destroyed, and the erasure records), or no key here. */
static void say_erased(const char *state, const char *out)
{
    char path[EVLOG_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/bundle.json", out);
    json_t *m = json_load_file(path, 0, NULL);
    struct seal_epoch_file *epochs = NULL;
    size_t ne = 0;
    (void)seal_epochs_list(state, &epochs, &ne, NULL, 0);
    size_t erased = 0, i;
    json_t *e;
    json_array_foreach(json_object_get(m, "entries"), i, e)
    {
        const char *why = json_string_value(json_object_get(e, "sealed"));
        if (why == NULL) {
            continue;
        }
        json_int_t idx = json_integer_value(json_object_get(e, "index"));
        char bin[EVLOG_PATH_MAX + 64];
        snprintf(bin, sizeof bin, "%s/entries/%lld.bin", out, (long long)idx);
        uint8_t buf[EVENT_RECORD_MAX + EVENT_SEALED_MAX];
        FILE *f = fopen(bin, "rb");
        size_t n = f != NULL ? fread(buf, 1, sizeof buf, f) : 0;
        if (f != NULL) {
            fclose(f);
        }
        uint32_t epoch = 0;
        uint64_t t = 0;
        (void)seal_inspect(buf, n, &epoch, &t);
        char day[32] = "?", at[32] = "?";
        event_format_time((uint64_t)epoch * 1000000u, day);
        for (size_t k = 0; k < ne; k++) {
            if (epochs[k].erased && epochs[k].start == epoch) {
                event_format_time(epochs[k].erased_at * 1000000u, at);
            }
        }
        if (strcmp(why, "erased") == 0) {
            printf("  entry %lld: its personal data was erased: the key of its epoch (from %.10s) "
                   "was destroyed at %s; its clear fields and its place in the tree stand\n",
                   (long long)idx, day, at);
            erased++;
        } else {
            printf("  entry %lld: sealed, and its epoch key (from %.10s) is not here: the bundle "
                   "cannot disclose its personal data\n",
                   (long long)idx, day);
        }
    }
    json_decref(m);
    free(epochs);
    if (erased > 0) {
        list_erasures(state);
    }
}

int cmd_prove(int argc, char **argv)
{
    enum {
        OPT_STATE = 1,
        OPT_OUT,
        OPT_BOT,
        OPT_IP,
        OPT_ENTRY,
        OPT_SINCE,
        OPT_UNTIL,
        OPT_CP,
        OPT_JUSTIFICATION,
        OPT_OPERATOR,
        OPT_HELP
    };
    static const struct option options[] = {
        {"state", required_argument, NULL, OPT_STATE},
        {"out", required_argument, NULL, OPT_OUT},
        {"bot", required_argument, NULL, OPT_BOT},
        {"ip", required_argument, NULL, OPT_IP},
        {"entry", required_argument, NULL, OPT_ENTRY},
        {"since", required_argument, NULL, OPT_SINCE},
        {"until", required_argument, NULL, OPT_UNTIL},
        {"checkpoint", required_argument, NULL, OPT_CP},
        {"justification", required_argument, NULL, OPT_JUSTIFICATION},
        {"operator", required_argument, NULL, OPT_OPERATOR},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *out = NULL;
    uint64_t at_size = 0, v = 0;
    struct cli_access access = {0};
    struct selection s;
    memset(&s, 0, sizeof s);
    s.idx = calloc(PROVE_MAX_ENTRIES, sizeof(*s.idx));
    if (s.idx == NULL) {
        fprintf(stderr, "sinkd prove: out of memory\n");
        return 1;
    }
    char err[1024];
    int rc = 0, opt;
    optind = 1;
    opterr = 0;
    while (rc == 0 && (opt = cli_getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_STATE:
            state = optarg;
            break;
        case OPT_OUT:
            out = optarg;
            break;
        case OPT_BOT:
            if (s.nbots == PROVE_MAX_BOTS) {
                rc = cli_usage_error("prove", "at most %d --bot options", PROVE_MAX_BOTS);
            } else if (strlen(optarg) != 32 || strspn(optarg, "0123456789abcdef") != 32) {
                rc = cli_usage_error("prove", "--bot: '%s' is not a 32-hex bot key", optarg);
            } else {
                s.bots[s.nbots++] = optarg;
            }
            break;
        case OPT_IP:
            if (s.nips == PROVE_MAX_BOTS) {
                rc = cli_usage_error("prove", "at most %d --ip options", PROVE_MAX_BOTS);
            } else if (net_addr_parse_ip(optarg, &s.ips[s.nips]) != 0) {
                rc = cli_usage_error("prove", "--ip: '%s' is not an IPv4 or IPv6 address", optarg);
            } else {
                s.nips++;
            }
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            if (report_parse_time(optarg, opt == OPT_UNTIL,
                                  opt == OPT_SINCE ? &s.since_us : &s.until_us, err,
                                  sizeof err) != 0) {
                rc =
                    cli_usage_error("prove", "--%s: %s", opt == OPT_SINCE ? "since" : "until", err);
            }
            break;
        case OPT_CP:
            if (!cli_parse_u64("prove", "checkpoint", optarg, 1, UINT64_MAX, &at_size)) {
                rc = 2;
            }
            break;
        case OPT_ENTRY:
            if (!cli_parse_u64("prove", "entry", optarg, 0, UINT64_MAX - 1, &v)) {
                rc = 2;
            } else if (add_index(&s, v) != 0) {
                rc = cli_usage_error("prove", "more than %u entries", PROVE_MAX_ENTRIES);
            }
            break;
        case OPT_JUSTIFICATION:
            access.justification = optarg;
            break;
        case OPT_OPERATOR:
            access.operator_name = optarg;
            break;
        case OPT_HELP:
            fputs(prove_usage, stdout);
            free(s.idx);
            return 0;
        default:
            rc = cli_usage_error("prove", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (rc == 0 && optind < argc) {
        rc = cli_usage_error("prove", "unexpected argument '%s'", argv[optind]);
    }
    if (rc == 0 && (state == NULL || out == NULL || (s.n == 0 && s.nbots == 0 && s.nips == 0))) {
        rc = cli_usage_error("prove", "--state, --out and at least one --bot, --ip or --entry "
                                      "are required");
    }
    if (rc == 0 && (s.since_us != 0 || s.until_us != 0) && s.nbots == 0 && s.nips == 0) {
        rc = cli_usage_error("prove", "--since and --until select records of --bot or --ip");
    }
    if (rc == 0 && s.since_us != 0 && s.until_us != 0 && s.since_us >= s.until_us) {
        rc = cli_usage_error("prove", "--since is not before --until");
    }
    if (rc == 0) {
        rc = cli_access_check("prove", &access);
    }
    if (rc != 0 || state == NULL || out == NULL) {
        free(s.idx);
        return rc != 0 ? rc : 2;
    }
    if (cli_act_as_state_owner("prove", state) != 0) {
        free(s.idx);
        return 1;
    }
    size_t asked = s.n;
    if (s.nbots > 0 || s.nips > 0) {
        int src = scan(state, &s, select_named, err, sizeof err);
        if (src == 0 && s.nconns > 0) {
            qsort(s.conns, s.nconns, sizeof(*s.conns), cmp_connection);
            src = scan(state, &s, select_first_contacts, err, sizeof err);
        }
        if (src != 0) {
            fprintf(stderr, "sinkd prove: %s\n", err);
            free(s.conns);
            free(s.idx);
            return 1;
        }
        if (s.n == asked) {
            fprintf(stderr,
                    "sinkd prove: no records of the given bot key(s) or address(es)%s in "
                    "%s\n",
                    s.since_us != 0 || s.until_us != 0 ? " in that period" : "", state);
            free(s.conns);
            free(s.idx);
            return 1;
        }
    }
    free(s.conns);
    sort_unique(&s);
    char scope[512];
    describe_scope(&s, state, s.n, scope, sizeof scope);
    rc = prove_recorded(state, at_size, s.idx, s.n, out, &access, scope);
    free(s.idx);
    if (rc != 0) {
        return 1;
    }
    printf("sinkd prove: %zu entries with inclusion proofs written to %s\n", s.n, out);
    say_erased(state, out);
    return 0;
}
