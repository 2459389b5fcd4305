/* err.h -- sinkd's one error convention: a negative return plus an optional caller buffer. */
#ifndef SINKD_UTIL_ERR_H
#define SINKD_UTIL_ERR_H

#include <stddef.h>

/* Writes a formatted message into err (if err != NULL and errlen > 0) and returns -1, so a
 * failing function can `return err_set(err, errlen, "file %s: ...", path);`. */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
