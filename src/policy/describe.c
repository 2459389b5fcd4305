/* describe.c -- a plain-words account of a loaded policy, for `sinkd policy check` and logs. */
#include "policy/policy_impl.h"

#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static void put_time(FILE *f, uint64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char buf[32] = "?";
    if (gmtime_r(&t, &tm) != NULL) {
        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
    }
    fputs(buf, f);
}

static void put_cidrs(FILE *f, const struct net_cidr *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct net_addr a = {.family = list[i].family};
        char ip[NET_ADDR_STRLEN];
        memcpy(a.ip, list[i].ip, sizeof(a.ip));
        net_addr_format_ip(&a, ip);
        fprintf(f, "%s%s/%u", i ? ", " : "", ip, list[i].prefix);
    }
}

static void put_authorisation(FILE *f, const struct policy *p, const struct policy_authorisation *a,
                              size_t idx)
{
    fprintf(f, "\nAuthorisation %zu: '%s' (line %u)\n", idx + 1, a->id, a->line);
    fprintf(f, "  authority:        %s\n", a->authority);
    fprintf(f, "  legal reference:  %s\n", a->legal_reference);
    fprintf(f, "  covers bots:      ");
    const char *join = "";
    if (a->n_countries > 0) {
        fprintf(f, "located in ");
        for (size_t i = 0; i < a->n_countries; i++) {
            fprintf(f, "%s%s", i ? ", " : "", a->countries[i]);
        }
        join = "\n                    AND ";
    }
    if (a->n_asns > 0) {
        fprintf(f, "%sin network ", join);
        for (size_t i = 0; i < a->n_asns; i++) {
            fprintf(f, "%sAS%u", i ? ", " : "", a->asns[i]);
        }
        join = "\n                    AND ";
    }
    if (a->n_prefixes > 0) {
        fprintf(f, "%scalling from ", join);
        put_cidrs(f, a->prefixes, a->n_prefixes);
    }
    fprintf(f, "\n  never sends to:   ");
    if (a->n_exclude_tags == 0 && a->n_exclude_prefixes == 0) {
        fprintf(f, "(no exclusions)");
    }
    if (a->n_exclude_tags > 0) {
        fprintf(f, "bots tagged ");
        for (size_t i = 0; i < a->n_exclude_tags; i++) {
            fprintf(f, "%s%s", i ? " or " : "", a->exclude_tags[i]);
        }
        /* a promise only the tag table can keep: say which, and that serve will not run
         * without one (policy_check_env) */
        fprintf(f, " (in the tag table serve loads with --tags;\n                    "
                   "serve refuses this policy without one)");
    }
    if (a->n_exclude_prefixes > 0) {
        fprintf(f, "%sbots calling from ", a->n_exclude_tags > 0 ? "; " : "");
        put_cidrs(f, a->exclude_prefixes, a->n_exclude_prefixes);
    }
    fprintf(f, "\n  window:           from ");
    put_time(f, a->not_before_us);
    fprintf(f, " until ");
    put_time(f, a->not_after_us);
    fprintf(f, " (end not included)\n");
    fprintf(f,
            "  rate:             at most %g commands per second across all workers "
            "(one every %.6g ms)\n",
            a->rate, (double)a->interval_ns / 1e6);
    fprintf(f, "  repeat:           %s\n",
            a->once_per_bot ? "at most once per bot"
                            : "again at every contact (once_per_bot = false), within the rate");
    if (a->command == POLICY_COMMAND_COLLECT) {
        fprintf(f, "  command:          collect: asks the bot for its machine information (host "
                   "and user names:\n"
                   "                    personal data), with the family's own request\n");
    } else if (a->command_id != 0) {
        fprintf(f,
                "  command:          uninstall with command id 0x%04X (the seized variant's "
                "self-delete,\n                    as this authorisation gives it)\n",
                a->command_id);
    } else if (p->default_uninstall_id != 0) {
        fprintf(f,
                "  command:          uninstall with command id 0x%04X (no command_id here: the "
                "server's\n                    --uninstall-command)\n",
                p->default_uninstall_id);
    } else if (a->mode == POLICY_MODE_ENFORCE) {
        fprintf(f, "  command:          uninstall, NO command id: there is no default, so serve "
                   "refuses to start\n"
                   "                    with --enforce unless it is given --uninstall-command "
                   "ID\n");
    } else {
        fprintf(f, "  command:          uninstall, no command id: dry runs record none; to "
                   "enforce, give command_id\n"
                   "                    here or serve --uninstall-command ID (there is no "
                   "default)\n");
    }
    if (a->mode == POLICY_MODE_ENFORCE) {
        fprintf(f, "  mode:             enforce: sends only if the server also runs with "
                   "--enforce; without it, dry-run\n");
    } else {
        fprintf(f, "  mode:             dry-run: decisions are logged, nothing is sent, even "
                   "with --enforce\n");
    }
}

char *policy_describe(const struct policy *p)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        return NULL;
    }
    fprintf(f, "Policy %s%s%s%s%s\n", p->name[0] ? "'" : "(no name)", p->name,
            p->name[0] ? "'" : "", p->version[0] ? " version " : "", p->version);
    fprintf(f, "SHA-256 %s", "");
    for (size_t i = 0; i < sizeof(p->sha256); i++) {
        fprintf(f, "%02x", p->sha256[i]);
    }
    fprintf(f,
            "\n%zu authorisation%s. Each allows one command (uninstall or collect), decided "
            "apart. For each bot\nand command: if any authorisation of that command that covers "
            "it excludes it, nothing is\nsent; otherwise the first covering one, in the order "
            "below, that is in its window, has not\nalready sent to the bot (a dry run never "
            "counts as sent) and has rate left applies.\n",
            p->n_auth, p->n_auth == 1 ? "" : "s");
    for (size_t i = 0; i < p->n_auth; i++) {
        put_authorisation(f, p, p->auth[i], i);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
