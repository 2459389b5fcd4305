/* cmd_contacts.c -- `sinkd contacts`: the recorded contacts as JSON lines, read from the log. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "event/event.h"
#include "evidence/access.h"
#include "evidence/log.h"
#include "util/hex.h"
#include "util/keyset.h"

static const char contacts_usage[] =
    "usage: sinkd contacts --state DIR [--all] --justification TEXT [--operator NAME]\n"
    "       sinkd contacts --state DIR --summary\n"
    "\n"
    "Prints every contact recorded in DIR's evidence log as one JSON object per line, with\n"
    "its log index: index, time, src_ip, src_port, dst_ip, dst_port, transport, family,\n"
    "command, type, bot_key and the bot-identity fields (host, user, os, local_ip, campaign,\n"
    "version), plus enrichment (cc, asn, tags) where known. Safe while the server runs: only\n"
    "durable entries are read.\n"
    "\n"
    "  --all       print every record kind (decisions, commands, node and policy notes too)\n"
    "  --summary   print totals instead (JSON): contacts (every message the log vouches for:\n"
    "              contact records and the polls heartbeats records count), messages by\n"
    "              type and transport, heartbeats records, unique bots,\n"
    "              unique source IPs, first/last time, contacts per second, and the server's\n"
    "              own counters from its last node-stopped record; contacts still sealed\n"
    "              (erased, or no key here), and the polls of heartbeats records naming such\n"
    "              a leaf, count as sealed_contacts, and their bots once per\n"
    "              epoch as sealed_bot_epochs; counts only, no address\n"
    "              or name, so it needs no --justification\n" CLI_ACCESS_USAGE
    "  --help      this text\n"
    "\n"
    "The records are printed only after their access record is durable in DIR's log.\n";

struct summary {
    uint64_t records;
    uint64_t contacts;
    uint64_t by_type[CONTACT_MSG_TYPES];
    uint64_t by_transport[4];
    uint64_t heartbeats_records;
    uint64_t first_us;
    uint64_t last_us;
    struct keyset bots; /* by identity, or by address when never identified */
    struct keyset ips;
    struct keyset identified_ips; /* addresses a bot identified itself from (registry's fold) */
    struct keyset undecoded_ips;
    json_t *last_stopped;
    uint64_t node_started;
    /* Contacts still sealed (their epoch erased, or no key here): counted by epoch and the
     * per-epoch pseudonym, since they name no bot and no address. */
    uint64_t sealed_contacts;
    struct keyset sealed_bot_epochs;
};

static void summary_add(struct summary *s, const struct record *rec)
{
    s->records++;
    if (rec->kind == RECORD_NODE_STARTED) {
        s->node_started++;
    }
    if (rec->kind == RECORD_NODE_STOPPED) {
        json_decref(s->last_stopped);
        s->last_stopped = json_loads(rec->u.note.detail, 0, NULL);
    }
    /* Messages the log vouches for: each contact record, and each poll a heartbeats record
     * counts (issue 20 roll-up), so the totals add up with what bots sent. */
    uint64_t n;
    uint8_t type, transport;
    uint64_t first, last;
    const char *bot_key;
    const struct net_addr *src;
    if (rec->kind == RECORD_CONTACT) {
        const struct contact *c = &rec->u.contact;
        n = 1;
        type = c->msg_type;
        transport = c->transport;
        first = last = c->time_us;
        bot_key = c->bot_key;
        src = &c->src;
    } else if (rec->kind == RECORD_HEARTBEATS) {
        const struct heartbeats *h = &rec->u.heartbeats;
        s->heartbeats_records++;
        n = h->count;
        type = CONTACT_MSG_HEARTBEAT;
        transport = h->transport;
        first = h->first_time_us ? h->first_time_us : h->time_us;
        last = h->time_us;
        bot_key = h->bot_key;
        src = &h->src;
    } else {
        return;
    }
    s->contacts += n;
    s->by_type[type < CONTACT_MSG_TYPES ? type : 0] += n;
    /* Time and transport are clear fields, sealed or not: an erasure keeps these numbers. */
    if (type != CONTACT_MSG_UNDECODED) {
        s->by_transport[transport <= 3 ? transport : 0] += n;
        if (s->first_us == 0 || first < s->first_us) {
            s->first_us = first;
        }
        if (last > s->last_us) {
            s->last_us = last;
        }
    }
    if (rec->kind == RECORD_HEARTBEATS && rec->seal.epoch == 0 && src->family == 0) {
        /* Polls whose bot is not known here: the leaf the record names is sealed (erased, or no
         * key here; that leaf counts its bot by pseudonym), or an erasure came first. */
        s->sealed_contacts += n;
        return;
    }
    if (rec->seal.epoch != 0) {
        /* Still sealed (its epoch erased, or no key here): no bot key and no address to count
         * by, only the per-epoch pseudonym. */
        s->sealed_contacts += n;
        if (rec->seal.has_bot_ref) {
            uint8_t ref[16] = {0};
            memcpy(ref, &rec->seal.epoch, sizeof(rec->seal.epoch));
            memcpy(ref + 4, rec->seal.bot_ref, EVENT_SEAL_BOT_REF_SIZE);
            keyset_add(&s->sealed_bot_epochs, ref);
        }
        return;
    }
    if (type == CONTACT_MSG_UNDECODED) {
        /* Callers no family decoded are no bots: counted apart, by address. */
        uint8_t uip[16] = {0};
        memcpy(uip, src->ip, src->family == AF_INET ? 4 : 16);
        uip[15] ^= src->family == AF_INET ? 0x4 : 0;
        keyset_add(&s->undecoded_ips, uip);
        return;
    }
    uint8_t ip[16] = {0};
    memcpy(ip, src->ip, src->family == AF_INET ? 4 : 16);
    if (src->family == AF_INET) {
        ip[15] ^= 0x4; /* keep IPv4 and IPv6 spaces apart */
    }
    keyset_add(&s->ips, ip);
    /* A bot is its identity's key, or (never identified, as every bot of a passive sinkhole)
     * its address's: event_bot_key of a contact without identity. As the registry counts
     * (docs/registry.md, "Hello before machine-info"): when a bot identifies itself, its
     * address's key folds into it, and later contacts without identity from that address count
     * for the address only, not as another bot. */
    struct contact anon;
    memset(&anon, 0, sizeof(anon));
    anon.src = *src;
    memcpy(anon.family,
           rec->kind == RECORD_CONTACT ? rec->u.contact.family : rec->u.heartbeats.family,
           sizeof(anon.family));
    char hex[33];
    uint8_t anon_key[16], key[16];
    event_bot_key(&anon, hex);
    (void)hex_decode(hex, anon_key, sizeof(anon_key));
    if (hex_decode(bot_key, key, sizeof(key)) == 0 && memcmp(key, anon_key, sizeof(key)) != 0) {
        keyset_add(&s->bots, key);
        keyset_add(&s->identified_ips, ip);
        keyset_remove(&s->bots, anon_key);
    } else if (!keyset_contains(&s->identified_ips, ip)) {
        keyset_add(&s->bots, anon_key);
    }
}

static void summary_print(struct summary *s, FILE *out)
{
    json_t *o = json_object();
    double span = s->last_us > s->first_us ? (double)(s->last_us - s->first_us) / 1e6 : 0.0;
    char first[32] = "";
    char last[32] = "";
    if (s->contacts > 0) {
        event_format_time(s->first_us, first);
        event_format_time(s->last_us, last);
    }
    json_object_set_new(o, "records", json_integer((json_int_t)s->records));
    json_object_set_new(o, "contacts", json_integer((json_int_t)s->contacts));
    json_t *types = json_object();
    for (unsigned t = 0; t < CONTACT_MSG_TYPES; t++) {
        json_object_set_new(types, event_msg_type_name((uint8_t)t),
                            json_integer((json_int_t)s->by_type[t]));
    }
    json_object_set_new(o, "by_type", types);
    json_t *tr = json_object();
    json_object_set_new(tr, "tcp",
                        json_integer((json_int_t)s->by_transport[CONTACT_TRANSPORT_TCP]));
    json_object_set_new(tr, "http",
                        json_integer((json_int_t)s->by_transport[CONTACT_TRANSPORT_HTTP]));
    json_object_set_new(tr, "http-header",
                        json_integer((json_int_t)s->by_transport[CONTACT_TRANSPORT_HTTP_HEADER]));
    json_object_set_new(o, "heartbeats_records", json_integer((json_int_t)s->heartbeats_records));
    json_object_set_new(o, "by_transport", tr);
    json_object_set_new(o, "unique_bots", json_integer((json_int_t)s->bots.n));
    json_object_set_new(o, "sealed_contacts", json_integer((json_int_t)s->sealed_contacts));
    json_object_set_new(o, "sealed_bot_epochs", json_integer((json_int_t)s->sealed_bot_epochs.n));
    json_object_set_new(o, "unique_source_ips", json_integer((json_int_t)s->ips.n));
    json_object_set_new(o, "undecoded_source_ips", json_integer((json_int_t)s->undecoded_ips.n));
    json_object_set_new(o, "first", json_string(first));
    json_object_set_new(o, "last", json_string(last));
    json_object_set_new(o, "contacts_per_second",
                        json_real(span > 0 ? (double)s->contacts / span : 0.0));
    json_object_set_new(o, "node_starts", json_integer((json_int_t)s->node_started));
    if (s->last_stopped != NULL) {
        json_object_set(o, "server", s->last_stopped);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    fprintf(out, "%s\n", text);
    free(text);
    json_decref(o);
}

int cmd_contacts(int argc, char **argv)
{
    static const struct option options[] = {
        {"state", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'a'},
        {"summary", no_argument, NULL, 'S'},
        {"justification", required_argument, NULL, 'j'},
        {"operator", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL;
    bool all = false;
    bool summary = false;
    struct cli_access access = {0};
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = cli_getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            state = optarg;
            break;
        case 'a':
            all = true;
            break;
        case 'S':
            summary = true;
            break;
        case 'j':
            access.justification = optarg;
            break;
        case 'o':
            access.operator_name = optarg;
            break;
        case 'h':
            fputs(contacts_usage, stdout);
            return 0;
        default:
            return cli_usage_error("contacts", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("contacts", "unexpected argument '%s'", argv[optind]);
    }
    if (state == NULL) {
        return cli_usage_error("contacts", "--state DIR is required");
    }
    /* Totals name nobody; every other output is victims' data and goes on the record. */
    bool recorded = !summary || access.justification != NULL;
    if (recorded) {
        int urc = cli_access_check("contacts", &access);
        if (urc != 0) {
            return urc;
        }
    }
    /* The access record goes into the state directory: as its owner, like the service. */
    if (recorded && cli_act_as_state_owner("contacts", state) != 0) {
        return 1;
    }
    char err[512];
    struct evlog_reader *r = NULL;
    if (evlog_reader_open(&r, state, 0, err, sizeof(err)) != 0 ||
        evlog_reader_fill_described(r) != 0) {
        fprintf(stderr, "sinkd contacts: %s\n", r == NULL ? err : "out of memory");
        evlog_reader_close(r);
        return 1;
    }
    struct access_output *held = NULL;
    FILE *out = stdout;
    if (recorded) {
        if (access_output_open(&held, state, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd contacts: %s\n", err);
            evlog_reader_close(r);
            return 1;
        }
        out = access_output_stream(held);
    }
    uint64_t rows = 0;
    struct summary sum;
    memset(&sum, 0, sizeof(sum));
    int status = 0;
    for (;;) {
        const uint8_t *entry;
        size_t len;
        uint64_t index;
        int rc = evlog_reader_next(r, &entry, &len, &index, err, sizeof(err));
        if (rc == 0) {
            break;
        }
        if (rc < 0) {
            fprintf(stderr, "sinkd contacts: %s\n", err);
            status = 1;
            break;
        }
        struct record rec;
        if (event_decode(entry, len, &rec, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd contacts: entry %llu: %s\n", (unsigned long long)index, err);
            status = 1;
            continue;
        }
        if (summary) {
            summary_add(&sum, &rec);
            continue;
        }
        if (!all && rec.kind != RECORD_CONTACT) {
            continue;
        }
        json_t *o = event_to_json(&rec);
        json_object_set_new(o, "index", json_integer((json_int_t)index));
        json_t *sealed = json_object_get(o, "sealed");
        if (sealed != NULL) {
            /* Why its personal fields are not shown: erased by an order or retention, or no key
             * for it here (not readable by this user, or lost). */
            int st = evlog_reader_seal_state(r);
            json_object_set_new(sealed, "personal_data",
                                json_string(st == 2 ? "erased" : "sealed, no key here"));
        }
        char *text = json_dumps(o, JSON_COMPACT);
        if (text == NULL || fputs(text, out) == EOF || fputc('\n', out) == EOF) {
            free(text);
            json_decref(o);
            status = 1;
            break;
        }
        rows++;
        free(text);
        json_decref(o);
    }
    evlog_reader_close(r);
    if (summary) {
        summary_print(&sum, out);
        keyset_free(&sum.bots);
        keyset_free(&sum.ips);
        keyset_free(&sum.identified_ips);
        keyset_free(&sum.undecoded_ips);
        keyset_free(&sum.sealed_bot_epochs);
        json_decref(sum.last_stopped);
        rows = 1;
    }
    if (held != NULL) {
        uint8_t sha[32];
        char scope[EVLOG_PATH_MAX + 64];
        snprintf(scope, sizeof(scope), "state=%s records=%s", state,
                 summary ? "totals"
                 : all   ? "all"
                         : "contacts");
        if (access_output_digest(held, sha, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd contacts: %s\n", err);
            access_output_close(held);
            return 1;
        }
        if (cli_access_record("contacts", state, &access,
                              summary ? "contacts --summary"
                              : all   ? "contacts --all"
                                      : "contacts",
                              scope, rows, sha) != 0) {
            access_output_close(held);
            return 1;
        }
        if (access_output_copy(held, stdout, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd contacts: %s\n", err);
            status = 1;
        }
        access_output_close(held);
    }
    if (fflush(stdout) != 0) {
        status = 1;
    }
    return status;
}
