/* conf.c -- an INI section of command-line options to argument strings with file:line (conf.h).
 * inih splits lines into sections and pairs; this file's line reader counts lines and refuses
 * what inih would quietly accept (continuation lines, other sections). */
#include "util/conf.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/err.h"

struct conf_state {
    const char *pos, *end;
    const char *file, *section;
    const struct conf_option *opts;
    size_t nopts;
    unsigned *first_line; /* per option: the line that set it, 0 if none yet */
    struct conf_args *out;
    unsigned line;
    bool in_section;
    bool stop;
    bool failed;
    unsigned err_line;
    char msg[320];
};

__attribute__((format(printf, 2, 3))) static int fail(struct conf_state *st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!st->failed) {
        st->failed = true;
        st->err_line = st->line;
        /* The analyzer's known false positive on a va_list started above. */
        // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
        vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
    }
    va_end(ap);
    return 1; /* inih goes on; only the first error is reported */
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char *read_line(char *str, int num, void *stream)
{
    struct conf_state *st = stream;
    if (st->stop || st->pos >= st->end) {
        return NULL;
    }
    const char *nl = memchr(st->pos, '\n', (size_t)(st->end - st->pos));
    size_t len = nl != NULL ? (size_t)(nl - st->pos) + 1 : (size_t)(st->end - st->pos);
    st->line++;
    /* inih needs room for "\r\n\0" beyond the longest line's text. */
    size_t room = num > 3 ? (size_t)num - 3 : 0;
    if (len > room + 1) {
        fail(st, "line longer than %zu characters", room);
        st->stop = true;
        return NULL;
    }
    memcpy(str, st->pos, len);
    str[len] = '\0';
    st->pos += len;
    const char *s = str;
    if (st->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF) {
        s += 3; /* inih skips a UTF-8 byte order mark */
    }
    bool indented = is_blank(s[0]) && s[0] != '\n' && s[0] != '\r';
    while (is_blank(*s)) {
        s++;
    }
    if (*s == '\0' || *s == '#' || *s == ';') {
        return str;
    }
    if (indented) {
        /* inih would take it as more of the previous value: one option, one line here. */
        fail(st, "indented line (each key = value starts at the beginning of its line)");
        return str;
    }
    if (*s == '[') {
        const char *close = strchr(s, ']');
        size_t n = close != NULL ? (size_t)(close - s - 1) : 0;
        if (close == NULL || n != strlen(st->section) || memcmp(s + 1, st->section, n) != 0) {
            fail(st, "unknown section %.*s (this file has [%s] only)",
                 close != NULL ? (int)(close - s + 1) : 40, s, st->section);
        } else {
            st->in_section = true;
        }
    }
    return str;
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct conf_state *st = user;
    (void)section; /* the reader tracks sections itself */
    if (st->failed) {
        return 1;
    }
    if (!st->in_section) {
        return fail(st, "key '%s' outside [%s]", name, st->section);
    }
    size_t k = 0;
    while (k < st->nopts && strcmp(st->opts[k].name, name) != 0) {
        k++;
    }
    if (k == st->nopts) {
        return fail(st, "unknown key '%s'", name);
    }
    const struct conf_option *o = &st->opts[k];
    if (st->first_line[k] != 0 && !o->repeatable) {
        return fail(st, "duplicate key '%s' (first on line %u)", name, st->first_line[k]);
    }
    st->first_line[k] = st->line;
    if (value[0] == '\0') {
        return fail(st, "empty value for '%s'", name);
    }
    /* inih ends a value at " ;" (an inline comment) but not at " #": "node = paris # main"
     * would name the node "paris # main". Refused rather than guessed. */
    const char *hash = strchr(value, '#');
    if (hash != NULL && hash > value && is_blank(hash[-1])) {
        return fail(st,
                    "'#' inside the value of '%s' (a comment after a value starts with ' ;'; "
                    "'#' comments take a line of their own)",
                    name);
    }
    if (!o->takes_value) {
        static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no",
                                                                               "off"};
        bool on = false, known = false;
        for (size_t i = 0; i < 3; i++) {
            on = on || strcmp(value, yes[i]) == 0;
            known = known || strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0;
        }
        if (!known) {
            return fail(st, "'%s' is a switch: true or false, not '%s'", name, value);
        }
        if (!on) {
            return 1;
        }
    }
    if (st->out->n == CONF_MAX_ARGS) {
        return fail(st, "more than %d settings", CONF_MAX_ARGS);
    }
    size_t n = strlen(name) + strlen(value) + 4;
    struct conf_arg *a = &st->out->v[st->out->n];
    a->arg = malloc(n);
    a->name = strdup(name);
    if (a->arg == NULL || a->name == NULL) {
        free(a->arg);
        free(a->name);
        return fail(st, "out of memory");
    }
    if (o->takes_value) {
        snprintf(a->arg, n, "--%s=%s", name, value);
    } else {
        snprintf(a->arg, n, "--%s", name);
    }
    a->line = st->line;
    st->out->n++;
    return 1;
}

void conf_args_free(struct conf_args *a)
{
    for (size_t i = 0; a->v != NULL && i < a->n; i++) {
        free(a->v[i].arg);
        free(a->v[i].name);
    }
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

int conf_parse(const char *text, size_t len, const char *file, const char *section,
               const struct conf_option *opts, size_t nopts, struct conf_args *out, char *err,
               size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    if (len > CONF_MAX_FILE_BYTES) {
        return err_set(err, errlen, "%s: larger than %d bytes", file, CONF_MAX_FILE_BYTES);
    }
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    if (nul != NULL) {
        unsigned line = 1;
        for (const char *c = text; c < nul; c++) {
            line += *c == '\n';
        }
        return err_set(err, errlen, "%s:%u: NUL byte", file, line);
    }
    struct conf_state st = {.pos = text,
                            .end = text + len,
                            .file = file,
                            .section = section,
                            .opts = opts,
                            .nopts = nopts,
                            .out = out};
    st.first_line = calloc(nopts + 1, sizeof(*st.first_line));
    out->v = calloc(CONF_MAX_ARGS, sizeof(*out->v));
    if (st.first_line == NULL || out->v == NULL) {
        free(st.first_line);
        conf_args_free(out);
        return err_set(err, errlen, "%s: out of memory", file);
    }
    int r = len > 0 ? ini_parse_stream(read_line, &st, on_pair, &st) : 0;
    free(st.first_line);
    if (r == -2 && !st.failed) {
        st.failed = true;
        st.err_line = 0;
        snprintf(st.msg, sizeof(st.msg), "out of memory");
    } else if (r > 0 && (!st.failed || (unsigned)r < st.err_line)) {
        /* a line inih could not read, before any error of ours */
        st.failed = true;
        st.err_line = (unsigned)r;
        snprintf(st.msg, sizeof(st.msg),
                 "syntax error (expected 'key = value', '[%s]' or a comment)", section);
    }
    if (st.failed) {
        conf_args_free(out);
        if (st.err_line > 0) {
            return err_set(err, errlen, "%s:%u: %s", file, st.err_line, st.msg);
        }
        return err_set(err, errlen, "%s: %s", file, st.msg);
    }
    return 0;
}

int conf_load_file(const char *path, const char *section, const struct conf_option *opts,
                   size_t nopts, struct conf_args *out, char *err, size_t errlen)
{
    out->v = NULL;
    out->n = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(CONF_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return err_set(err, errlen, "%s: out of memory", path);
    }
    size_t len = fread(buf, 1, CONF_MAX_FILE_BYTES + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        free(buf);
        return err_set(err, errlen, "%s: read error", path);
    }
    int rc = conf_parse(buf, len, path, section, opts, nopts, out, err, errlen);
    free(buf);
    return rc;
}
