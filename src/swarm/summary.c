/* summary.c -- the swarm's counts as a readable text block and as JSON (names in docs/swarm.md). */
#include "swarm/swarm.h"
#include "util/err.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

/* " p50 N  p90 N  p99 N  max N" and the end of the line. */
static void print_percentiles(const struct hist *h, FILE *out)
{
    fprintf(out, " p50 %llu  p90 %llu  p99 %llu  max %llu\n",
            (unsigned long long)hist_percentile(h, 0.50),
            (unsigned long long)hist_percentile(h, 0.90),
            (unsigned long long)hist_percentile(h, 0.99), (unsigned long long)h->max);
}

void swarm_summary_print(const struct swarm_summary *s, FILE *out)
{
    fprintf(out, "swarm: %.1f s, %u bots: %u run, %u replied to, %u answered\n", s->duration_s,
            s->bots, s->bots_run, s->bots_replied, s->bots_answered);
    fprintf(out, "  contacts sent %llu, replies received %llu\n",
            (unsigned long long)s->contacts_sent, (unsigned long long)s->replies_received);
    fprintf(out, "  reply latency us:");
    print_percentiles(&s->latency_us, out);
    fprintf(out, "  heartbeats only (%llu):", (unsigned long long)s->heartbeat_latency_us.count);
    print_percentiles(&s->heartbeat_latency_us, out);
    fprintf(out, "  errors: connect %llu, reset %llu, timeout %llu, protocol %llu\n",
            (unsigned long long)s->err_connect, (unsigned long long)s->err_reset,
            (unsigned long long)s->err_timeout, (unsigned long long)s->err_protocol);
    fprintf(out, "  uninstalled %u, ignored uninstall %u\n", s->uninstalled, s->uninstall_ignored);
    fprintf(out, "  addresses: replied %u unknown-variant %u\n", s->addresses_replied,
            s->addresses_unknown);
    /* one "name count" list per line, so a script can read it with awk */
    fprintf(out,
            "  kinds: raw %u http-body %u http-header %u unknown-variant %u asked-info %u "
            "answered %u\n",
            s->bots_by_kind[SWARM_KIND_RAW], s->bots_by_kind[SWARM_KIND_HTTP_BODY],
            s->bots_by_kind[SWARM_KIND_HTTP_HEADER], s->bots_by_kind[SWARM_KIND_UNKNOWN],
            s->bots_asked, s->bots_answered);
    fprintf(out,
            "  contacts: raw %llu http-body %llu http-header %llu; machine info requests %llu "
            "sent %llu volunteered %llu\n",
            (unsigned long long)s->contacts_by_kind[SWARM_KIND_RAW],
            (unsigned long long)s->contacts_by_kind[SWARM_KIND_HTTP_BODY],
            (unsigned long long)s->contacts_by_kind[SWARM_KIND_HTTP_HEADER],
            (unsigned long long)s->info_requests, (unsigned long long)s->info_sent,
            (unsigned long long)s->info_volunteered);
    fprintf(out, "  unknown-variant: sent %llu replied %llu closed %llu silent %llu\n",
            (unsigned long long)s->unknown_sent, (unsigned long long)s->unknown_replied,
            (unsigned long long)s->unknown_closed, (unsigned long long)s->unknown_silent);
    fprintf(out, "  top countries (bots run):");
    /* the eight largest, by insertion into a fixed top list */
    size_t top[8];
    size_t ntop = 0;
    for (size_t i = 0; i < s->countries; i++) {
        uint32_t b = s->per_country[i].bots;
        if (b == 0) {
            continue;
        }
        size_t at = ntop;
        while (at > 0 && s->per_country[top[at - 1]].bots < b) {
            at--;
        }
        if (at >= 8) {
            continue;
        }
        size_t move = ntop < 8 ? ntop : 7;
        memmove(top + at + 1, top + at, (move - at) * sizeof(top[0]));
        top[at] = i;
        if (ntop < 8) {
            ntop++;
        }
    }
    for (size_t k = 0; k < ntop; k++) {
        fprintf(out, " %s %u", s->per_country[top[k]].cc, s->per_country[top[k]].bots);
    }
    fprintf(out, "\n");
}

/* {"p50", "p90", "p99", "max"}, and "count" when asked. */
static json_t *percentiles_json(const struct hist *h, bool with_count)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I}", "p50", (json_int_t)hist_percentile(h, 0.50),
                          "p90", (json_int_t)hist_percentile(h, 0.90), "p99",
                          (json_int_t)hist_percentile(h, 0.99), "max", (json_int_t)h->max);
    if (o != NULL && with_count) {
        json_object_set_new(o, "count", json_integer((json_int_t)h->count));
    }
    return o;
}

static json_t *to_json(const struct swarm_summary *s)
{
    json_t *pc = json_object();
    for (size_t i = 0; pc != NULL && i < s->countries; i++) {
        if (s->per_country[i].bots > 0) {
            json_object_set_new(pc, s->per_country[i].cc, json_integer(s->per_country[i].bots));
        }
    }
    return json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:I, s:I, s:f, s:o}",
        "bots", (json_int_t)s->bots, "bots_run", (json_int_t)s->bots_run, "bots_replied",
        (json_int_t)s->bots_replied, "bots_answered", (json_int_t)s->bots_answered, "contacts_sent",
        (json_int_t)s->contacts_sent, "replies_received", (json_int_t)s->replies_received,
        "latency_us", percentiles_json(&s->latency_us, false), "heartbeat_latency_us",
        percentiles_json(&s->heartbeat_latency_us, true), "errors", "connect",
        (json_int_t)s->err_connect, "reset", (json_int_t)s->err_reset, "timeout",
        (json_int_t)s->err_timeout, "protocol", (json_int_t)s->err_protocol, "uninstalled",
        (json_int_t)s->uninstalled, "uninstall_ignored", (json_int_t)s->uninstall_ignored,
        "duration_s", s->duration_s, "per_country", pc);
}

/* The counts added with the header form, unknown variants and asked-for machine information. */
static int add_kinds(json_t *j, const struct swarm_summary *s)
{
    json_t *kinds =
        json_pack("{s:I, s:I, s:I, s:I}", "raw", (json_int_t)s->bots_by_kind[SWARM_KIND_RAW],
                  "http_body", (json_int_t)s->bots_by_kind[SWARM_KIND_HTTP_BODY], "http_header",
                  (json_int_t)s->bots_by_kind[SWARM_KIND_HTTP_HEADER], "unknown",
                  (json_int_t)s->bots_by_kind[SWARM_KIND_UNKNOWN]);
    json_t *contacts =
        json_pack("{s:I, s:I, s:I}", "raw", (json_int_t)s->contacts_by_kind[SWARM_KIND_RAW],
                  "http_body", (json_int_t)s->contacts_by_kind[SWARM_KIND_HTTP_BODY], "http_header",
                  (json_int_t)s->contacts_by_kind[SWARM_KIND_HTTP_HEADER]);
    json_t *info =
        json_pack("{s:I, s:I, s:I, s:I}", "bots_asked", (json_int_t)s->bots_asked, "requests",
                  (json_int_t)s->info_requests, "sent", (json_int_t)s->info_sent, "volunteered",
                  (json_int_t)s->info_volunteered);
    json_t *unknown =
        json_pack("{s:I, s:I, s:I, s:I}", "contacts_sent", (json_int_t)s->unknown_sent, "replied",
                  (json_int_t)s->unknown_replied, "closed", (json_int_t)s->unknown_closed, "silent",
                  (json_int_t)s->unknown_silent);
    int rc = json_object_set_new(j, "kinds", kinds) |
             json_object_set_new(j, "contacts_by_kind", contacts) |
             json_object_set_new(j, "machine_info", info) |
             json_object_set_new(j, "unknown", unknown) |
             json_object_set_new(j, "addresses_replied", json_integer(s->addresses_replied)) |
             json_object_set_new(j, "addresses_unknown", json_integer(s->addresses_unknown));
    return rc == 0 && kinds != NULL && contacts != NULL && info != NULL && unknown != NULL ? 0 : -1;
}

int swarm_summary_write_json(const struct swarm_summary *s, const char *path, char *err,
                             size_t errlen)
{
    json_t *j = to_json(s);
    if (j != NULL && add_kinds(j, s) != 0) {
        json_decref(j);
        j = NULL;
    }
    if (j == NULL) {
        return err_set(err, errlen, "%s: cannot build JSON summary", path), SWARM_E_NOMEM;
    }
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (rc != 0) {
        return err_set(err, errlen, "%s: cannot write: %s", path, strerror(errno)), SWARM_E_FILE;
    }
    return 0;
}
