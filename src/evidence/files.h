/* files.h -- small file helpers shared by the evidence module's offline tools (bundles,
 * timestamps). Internal to src/evidence; not part of the module contract. Errors follow
 * util/err.h and return the EVLOG_* codes of evidence/log.h. */
#ifndef SINKD_EVIDENCE_FILES_H
#define SINKD_EVIDENCE_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads dir/rel whole into a malloc'd, NUL-terminated buffer; EVLOG_EINVAL if it is larger than
 * max bytes (a hostile or damaged file cannot make the reader allocate without bound). */
int evfile_read(const char *dir, const char *rel, char **out, size_t *len, size_t max, char *err,
                size_t errlen);
/* Creates dir/rel (which must not exist), writes buf and fsyncs it. */
int evfile_write_new(const char *dir, const char *rel, const void *buf, size_t len, char *err,
                     size_t errlen);
/* Writes dir/rel through "<rel>.tmp", fsync, then either rename (replace) or link (never
 * replace: EVLOG_EINVAL naming the file if it exists), and fsyncs the directory. */
int evfile_write_durable(const char *dir, const char *rel, const void *buf, size_t len, int replace,
                         char *err, size_t errlen);

/* True if dir/rel exists. */
bool evfile_exists(const char *dir, const char *rel);
/* write(2) until all of buf is written (EINTR retried); -1 with errno on failure. */
int evfile_write_all(int fd, const void *buf, size_t len);
/* The tree size of log_dir/checkpoint (the latest signed checkpoint; its signature is
 * evlog_verify_dir's business, not this reader's). */
int evfile_latest_size(const char *log_dir, uint64_t *size, char *err, size_t errlen);
/* True if name is "<size><suffix>" with size in canonical decimal (as checkpoints/ names it). */
bool evfile_parse_sized_name(const char *name, const char *suffix, uint64_t *size);
/* The sizes of the files "<size><suffix>" in dir, sorted ascending, in a malloc'd array; *n = 0
 * (and 0 returned) if dir does not exist. Other names (".tmp" files, ".") are skipped. */
int evfile_list_sizes(const char *dir, const char *suffix, uint64_t **out, size_t *n, char *err,
                      size_t errlen);

#endif
