/* ini_lines.c -- a counting, refusing line reader for inih and comma lists (ini_lines.h). */
#include "util/ini_lines.h"

#include <stdio.h>
#include <string.h>

/* The copy a header is cut up in; line_max is clamped to it. */
#define LINE_COPY_MAX 1024

void ini_lines_init(struct ini_lines *r, const char *text, size_t len, size_t line_max,
                    void (*on_header)(void *ctx, char *header),
                    void (*on_error)(void *ctx, const char *msg), void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->pos = text;
    r->end = text + len;
    r->line_max = line_max < LINE_COPY_MAX ? line_max : LINE_COPY_MAX;
    r->on_header = on_header;
    r->on_error = on_error;
    r->ctx = ctx;
}

bool ini_blank(char c)
{
    return c == ' ' || c == '\t';
}

char *ini_trim(char *s)
{
    while (ini_blank(*s)) {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (ini_blank(s[n - 1]) || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        s[--n] = '\0';
    }
    return s;
}

unsigned ini_lines_nul_line(const char *text, size_t len)
{
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    if (nul == NULL) {
        return 0;
    }
    unsigned line = 1;
    for (const char *c = text; c < nul; c++) {
        line += *c == '\n';
    }
    return line;
}

char *ini_lines_read(char *str, int num, void *stream)
{
    struct ini_lines *r = stream;
    if (r->stop || r->pos >= r->end) {
        return NULL;
    }
    const char *nl = memchr(r->pos, '\n', (size_t)(r->end - r->pos));
    size_t len = nl != NULL ? (size_t)(nl - r->pos) + 1 : (size_t)(r->end - r->pos);
    r->line++;
    /* inih needs room for "\r\n\0" beyond the text of the longest line. */
    size_t room = num > 3 ? (size_t)num - 3 : 0;
    if (room > r->line_max) {
        room = r->line_max;
    }
    if (len > room + 1 || len + 1 > (size_t)num) {
        char msg[INI_LINES_MSG_MAX];
        snprintf(msg, sizeof(msg),
                 "line longer than %zu characters (continue a list on an indented line)", room);
        r->on_error(r->ctx, msg);
        r->stop = true;
        return NULL;
    }
    memcpy(str, r->pos, len);
    str[len] = '\0';
    r->pos += len;

    char copy[LINE_COPY_MAX + 4];
    memcpy(copy, str, len + 1);
    char *s = copy;
    if (r->line == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF) {
        s += 3; /* inih skips a UTF-8 byte order mark on the first line */
    }
    bool starts_blank = ini_blank(s[0]);
    s = ini_trim(s);
    r->indented = starts_blank && *s != '\0' && *s != ';' && *s != '#';
    if (*s == '[') {
        if (starts_blank) {
            r->on_error(r->ctx, "section header must start at the beginning of the line");
        } else {
            r->on_header(r->ctx, s);
        }
    }
    return str;
}

int ini_header_name(char *header, char **name)
{
    char *close = strchr(header, ']');
    if (close == NULL) {
        return -1;
    }
    char *after = ini_trim(close + 1);
    if (*after != '\0' && *after != ';' && *after != '#') {
        *name = after;
        return -2;
    }
    *close = '\0';
    *name = ini_trim(header + 1);
    return 0;
}

const char *ini_split_list(const char *value, char *buf, size_t cap,
                           bool (*each)(void *ctx, char *item), void *ctx)
{
    size_t n = strlen(value);
    if (n >= cap) {
        return "value too long for";
    }
    memcpy(buf, value, n + 1);
    for (char *c = buf; *c != '\0'; c++) {
        if (*c == ';' && c > buf && ini_blank(c[-1])) {
            *c = '\0';
            break;
        }
    }
    char *rest = buf;
    for (;;) {
        char *comma = strchr(rest, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char *item = ini_trim(rest);
        if (*item == '\0' && comma == NULL && rest != buf) {
            return NULL; /* a trailing comma before an indented continuation line */
        }
        if (*item == '\0') {
            return "empty entry in";
        }
        if (!each(ctx, item)) {
            return "";
        }
        if (comma == NULL) {
            return NULL;
        }
        rest = comma + 1;
    }
}
