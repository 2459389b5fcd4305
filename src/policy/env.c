/* env.c -- what a policy needs from the server that applies it (tables, --enforce, a command id),
 * refused when missing; the one-line account the server prints at start and on reload. */
#include "policy/policy_impl.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Ids public PlugX command tables give a meaning other than self-delete (../PLUGX.md "Commands";
 * MITRE chopshop's plugx decoder, capa rules). Old builds use 0x0-0x8 for the same core
 * commands. Sending one of them "to uninstall" would do something else: 0x1001 would collect
 * personal data without a collect authorisation, 0x1005 could reinstall the malware. */
static const struct {
    uint32_t id;
    const char *meaning;
} known_ids[] = {
    {0x1000, "poll / nothing to do"},
    {0x1001, "machine information (host and user names)"},
    {0x1002, "change level / keep-alive"},
    {0x1003, "start plugin manager"},
    {0x1005, "install new copy / restart self"},
    {0x1006, "send settings"},
    {0x1007, "save settings"},
    {0x1008, "plugin information"},
    {0x0001, "machine information (old builds)"},
    {0x0002, "change level (old builds)"},
    {0x0003, "start plugin manager (old builds)"},
    {0x0005, "install new copy / restart self (old builds)"},
    {0x0006, "send settings (old builds)"},
    {0x0007, "save settings (old builds)"},
    {0x0008, "plugin information (old builds)"},
};

const char *policy_command_id_meaning(uint32_t id)
{
    for (size_t i = 0; i < sizeof(known_ids) / sizeof(known_ids[0]); i++) {
        if (known_ids[i].id == id) {
            return known_ids[i].meaning;
        }
    }
    return NULL;
}

uint32_t policy_uninstall_id(const struct policy *p, const struct policy_authorisation *a)
{
    return a->command_id != 0 ? a->command_id : p->default_uninstall_id;
}

/* "FILE:LINE: authorisation 'ID': why", like a parse error, so the operator finds the key. */
__attribute__((format(printf, 6, 7))) static int refuse(const struct policy *p,
                                                        const struct policy_authorisation *a,
                                                        unsigned line, char *err, size_t errlen,
                                                        const char *fmt, ...)
{
    char why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    return err_set(err, errlen, "%s:%u: authorisation '%s': %s", p->source, line, a->id, why);
}

int policy_check_env(struct policy *p, const struct policy_env *env, char *err, size_t errlen)
{
    if (p == NULL) {
        return err_set(err, errlen, "no policy");
    }
    static const struct policy_env none;
    if (env == NULL) {
        env = &none;
    }
    uint32_t def = env->default_uninstall_id;
    if (def > POLICY_COMMAND_ID_MAX) {
        return err_set(err, errlen, "%s: --uninstall-command %u is out of range (1..0x%X)",
                       p->source, def, POLICY_COMMAND_ID_MAX);
    }
    if (def != 0 && policy_command_id_meaning(def) != NULL) {
        return err_set(err, errlen,
                       "%s: --uninstall-command 0x%04X is '%s' in public PlugX command tables, "
                       "not a self-delete: give the seized variant's own id",
                       p->source, def, policy_command_id_meaning(def));
    }
    for (size_t i = 0; i < p->n_auth; i++) {
        const struct policy_authorisation *a = p->auth[i];
        if (a->n_exclude_tags > 0 && !env->tag_table) {
            return refuse(p, a, a->exclude_tags_line, err, errlen,
                          "exclude_tags cannot be evaluated: no tag table is loaded (serve "
                          "--tags FILE); refused rather than exclude nothing");
        }
        if (a->n_countries > 0 && !env->country_table) {
            return refuse(p, a, a->countries_line, err, errlen,
                          "countries cannot be evaluated: no country table is loaded (serve "
                          "without --no-enrich); refused rather than cover no bot");
        }
        if (a->n_asns > 0 && !env->asn_table) {
            return refuse(p, a, a->asns_line, err, errlen,
                          "asns cannot be evaluated: no ASN table is loaded (serve without "
                          "--no-enrich); refused rather than cover no bot");
        }
        if (env->enforce_flag && a->command == POLICY_COMMAND_UNINSTALL &&
            a->mode == POLICY_MODE_ENFORCE && a->command_id == 0 && def == 0) {
            return refuse(p, a, a->command_line, err, errlen,
                          "mode = enforce under --enforce needs the seized variant's self-delete "
                          "id: give command_id here or serve --uninstall-command ID (there is no "
                          "default: 0x1005 is 'install new copy / restart self')");
        }
    }
    p->default_uninstall_id = def;
    return 0;
}

/* What authorisation a really does under env, in a few words. */
static void put_effect(FILE *f, const struct policy_authorisation *a, const struct policy_env *env)
{
    bool has_id = a->command != POLICY_COMMAND_UNINSTALL || a->command_id != 0 ||
                  env->default_uninstall_id != 0;
    if (a->mode != POLICY_MODE_ENFORCE) {
        fputs("dry-run (mode = dry-run)", f);
    } else if (!env->enforce_flag) {
        fputs("dry-run (mode = enforce, serve without --enforce)", f);
    } else if (!has_id) {
        fputs("dry-run (mode = enforce, but no command id)", f);
    } else {
        fputs("ENFORCE (commands are sent)", f);
    }
}

char *policy_summary_line(const struct policy *p, const struct policy_env *env)
{
    static const struct policy_env none;
    if (p == NULL) {
        return NULL;
    }
    if (env == NULL) {
        env = &none;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL) {
        return NULL;
    }
    fprintf(f, "policy %s sha256 ", p->source);
    for (size_t i = 0; i < sizeof(p->sha256); i++) {
        fprintf(f, "%02x", p->sha256[i]);
    }
    fprintf(f, ": %zu authorisation%s", p->n_auth, p->n_auth == 1 ? "" : "s");
    for (size_t i = 0; i < p->n_auth; i++) {
        const struct policy_authorisation *a = p->auth[i];
        fprintf(f, "%s %s %s", i == 0 ? ":" : ";", a->id, policy_command_name(a->command));
        if (a->command == POLICY_COMMAND_UNINSTALL) {
            if (a->command_id != 0) {
                fprintf(f, " 0x%04X", a->command_id);
            } else if (env->default_uninstall_id != 0) {
                fprintf(f, " 0x%04X (--uninstall-command)", env->default_uninstall_id);
            } else {
                fputs(" (no command id)", f);
            }
        }
        fputc(' ', f);
        put_effect(f, a, env);
    }
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
