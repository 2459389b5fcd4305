/* write.c -- writes an authorisation section in the policy file format (the format parse.c
 * reads), for tools that add one, such as the portal's approval; the result is parsed back
 * before it is handed out. */
#include "policy/policy.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct out_text {
    char *buf;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct out_text *t, const char *fmt, ...)
{
    if (t->failed) {
        return;
    }
    char line[POLICY_MAX_LINE * 2];
    va_list ap;
    va_start(ap, fmt);
    int n =
        vsnprintf(line, sizeof(line), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        t->failed = true;
        return;
    }
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *g = realloc(t->buf, cap);
        if (g == NULL) {
            t->failed = true;
            return;
        }
        t->buf = g;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

static bool plain(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; s != NULL && *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == ';' || *p == '#') {
            return false;
        }
    }
    return s != NULL;
}

static void utc(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int policy_append_authorisation(const char *old, size_t old_len, const char *name,
                                const struct policy_authorisation_text *a, char **out,
                                size_t *out_len, char *err, size_t errlen)
{
    if (!plain(a->id) || !plain(a->authority) || !plain(a->legal_reference) ||
        (a->comment != NULL && !plain(a->comment))) {
        return err_set(err, errlen, "%s: authorisation text with a control character, ';' or '#'",
                       name);
    }
    struct out_text t = {0};
    if (old_len > 0) {
        put(&t, "%.*s", (int)old_len, old);
        if (old[old_len - 1] != '\n') {
            put(&t, "\n");
        }
    } else {
        put(&t, "[policy]\nname = portal approvals\n");
    }
    put(&t, "\n");
    if (a->comment != NULL) {
        put(&t, "; %s\n", a->comment);
    }
    put(&t, "[authorisation %s]\nauthority = %s\nlegal_reference = %s\n", a->id, a->authority,
        a->legal_reference);
    /* Lists continue on indented lines, so no line outgrows POLICY_MAX_LINE. */
    if (a->n_countries > 0) {
        put(&t, "countries = ");
        for (size_t i = 0; i < a->n_countries; i++) {
            put(&t, "%s%s", i == 0 ? "" : (i % 20 == 0 ? ",\n    " : ", "), a->countries[i]);
        }
        put(&t, "\n");
    }
    if (a->n_prefixes > 0) {
        put(&t, "prefixes = ");
        for (size_t i = 0; i < a->n_prefixes; i++) {
            struct net_addr m = {.family = a->prefixes[i].family};
            memcpy(m.ip, a->prefixes[i].ip, 16);
            char ip[NET_ADDR_STRLEN];
            net_addr_format_ip(&m, ip);
            put(&t, "%s%s/%u", i == 0 ? "" : ",\n    ", ip, a->prefixes[i].prefix);
        }
        put(&t, "\n");
    }
    if (a->n_exclude_tags > 0) {
        put(&t, "exclude_tags = ");
        for (size_t i = 0; i < a->n_exclude_tags; i++) {
            put(&t, "%s%s", i == 0 ? "" : ",\n    ", a->exclude_tags[i]);
        }
        put(&t, "\n");
    }
    char nb[32], na[32];
    utc(a->not_before_us, nb);
    utc(a->not_after_us, na);
    put(&t, "not_before = %s\nnot_after = %s\nrate = %.6g\ncommand = %s\n", nb, na, a->rate,
        policy_command_name(a->command));
    if (a->command_id != 0) {
        put(&t, "command_id = 0x%04X\n", a->command_id);
    }
    put(&t, "mode = %s\n", policy_mode_name(a->mode));
    if (t.failed) {
        free(t.buf);
        return err_set(err, errlen, "%s: out of memory writing the policy", name);
    }
    /* What goes out must be a policy this module accepts, whole. */
    struct policy *p = NULL;
    if (policy_parse(t.buf, t.len, name, &p, err, errlen) != 0) {
        free(t.buf);
        return -1;
    }
    policy_free(p);
    *out = t.buf;
    *out_len = t.len;
    return 0;
}
