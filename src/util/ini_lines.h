/* ini_lines.h -- what sinkd's own INI files (the policy, the portal's authorities) need beyond
 * inih: a line reader over a buffer that counts lines itself (every message names its line),
 * refuses a line inih would otherwise split silently, tells an indented continuation line from
 * a new key, and shows each section header to its owner (inih does not report headers to the
 * handler, so an empty or misspelt section would pass unnoticed); and the splitting of a comma
 * list value. The files' keys, sections and messages stay with their owners. */
#ifndef SINKD_UTIL_INI_LINES_H
#define SINKD_UTIL_INI_LINES_H

#include <stdbool.h>
#include <stddef.h>

#define INI_LINES_MSG_MAX 120

struct ini_lines {
    const char *pos, *end; /* what is left of the text */
    size_t line_max;       /* the longest line accepted, in characters */
    unsigned line;         /* physical line last handed to inih (1-based) */
    bool indented;         /* that line starts with a blank: inih takes it as a continuation */
    bool stop;             /* the reader ended the input early (a line too long) */
    /* A section header at the start of its line, trimmed ("[name] ; comment"); the owner may
     * cut it up in place. */
    void (*on_header)(void *ctx, char *header);
    /* A line the reader refuses: too long (reading stops) or an indented section header. */
    void (*on_error)(void *ctx, const char *msg);
    void *ctx;
};

/* Reads text[0..len) from its first line; line_max is at most INI_MAX_LINE's room. */
void ini_lines_init(struct ini_lines *r, const char *text, size_t len, size_t line_max,
                    void (*on_header)(void *ctx, char *header),
                    void (*on_error)(void *ctx, const char *msg), void *ctx);

/* inih's ini_reader (fgets-style) over a struct ini_lines passed as stream. */
char *ini_lines_read(char *str, int num, void *stream);

/* The 1-based line of the first NUL byte in text[0..len), or 0 if there is none (inih would
 * take it as the end of its line). */
unsigned ini_lines_nul_line(const char *text, size_t len);

/* s without leading blanks and trailing blanks or line ends, cut in place. */
char *ini_trim(char *s);
bool ini_blank(char c);

/* Splits "[ name ] ; comment" in place: 0 with *name the trimmed name; -1 if there is no ']';
 * -2 if text other than a comment follows it (*name then points at that text). */
int ini_header_name(char *header, char **name);

/* Calls each(ctx, item) for every trimmed comma-separated item of value, copied into buf (cap
 * bytes). A " ; comment" after the value is cut (inih strips it after a value but not after a
 * continuation line; list items never hold ';'), and a trailing comma is allowed (the list
 * goes on on an indented line). each returns false to refuse an item, having said why. Returns
 * NULL when every item was taken, "" when each refused one, or what is wrong with the list
 * ("value too long for", "empty entry in"), to be followed by the key's name. */
const char *ini_split_list(const char *value, char *buf, size_t cap,
                           bool (*each)(void *ctx, char *item), void *ctx);

#endif
