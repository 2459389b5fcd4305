/* conf.h -- a command's options from an INI file (sinkd.conf): each `key = value` of the
 * command's section becomes the argument "--key=value" (a flag's `key = true` becomes "--key"),
 * with the file and line it came from, for the command's own option parser. */
#ifndef SINKD_UTIL_CONF_H
#define SINKD_UTIL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define CONF_MAX_FILE_BYTES (256 * 1024)
#define CONF_MAX_ARGS 1024

/* One option the section may set: its long name, whether it takes a value (otherwise a flag
 * whose value is true/false, yes/no or on/off) and whether it may be given more than once. */
struct conf_option {
    const char *name;
    bool takes_value;
    bool repeatable;
};

struct conf_arg {
    char *arg;     /* "--name=value" or "--name" */
    char *name;    /* "name" */
    unsigned line; /* in the file, from 1 */
};

struct conf_args {
    struct conf_arg *v;
    size_t n;
};

/* Parses text (len bytes, named `file` in errors) and returns in *out the arguments of
 * [section], in file order; keys outside it, other sections, unknown keys, a key twice (unless
 * repeatable), an empty value, a flag value other than true/false/yes/no/on/off, an indented
 * continuation line, a NUL byte or a line inih cannot read are errors "FILE:LINE: what". Returns
 * 0, or -1 with err set and *out empty. */
int conf_parse(const char *text, size_t len, const char *file, const char *section,
               const struct conf_option *opts, size_t nopts, struct conf_args *out, char *err,
               size_t errlen);

/* conf_parse() of the file at path (at most CONF_MAX_FILE_BYTES). */
int conf_load_file(const char *path, const char *section, const struct conf_option *opts,
                   size_t nopts, struct conf_args *out, char *err, size_t errlen);

void conf_args_free(struct conf_args *a);

#endif
