/* evlog_source.c -- the evidence log's reader (evidence/log.h) seen as registry_log_ops. */
#include "evidence/log.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/err.h"

static int evlog_src_open(void **reader, const char *state_dir, uint64_t start_index, char *err,
                          size_t errlen)
{
    struct evlog_reader *r = NULL;
    int rc = evlog_reader_open(&r, state_dir, start_index, err, errlen);
    /* The registry counts a heartbeats record for the bot its named leaf describes. */
    if (rc == 0 && (rc = evlog_reader_fill_described(r)) != 0) {
        evlog_reader_close(r);
        r = NULL;
        err_set(err, errlen, "out of memory");
    }
    *reader = r;
    return rc < 0 ? rc : 0;
}

static int evlog_src_next(void *reader, const uint8_t **entry, size_t *len, uint64_t *index,
                          char *err, size_t errlen)
{
    return evlog_reader_next(reader, entry, len, index, err, errlen);
}

static void evlog_src_close(void *reader)
{
    evlog_reader_close(reader);
}

/* The reader does not report the durable size, so lag is measured against the largest index it
 * has returned (size == NULL). */
static const struct registry_log_ops evlog_ops = {evlog_src_open, evlog_src_next, evlog_src_close,
                                                  NULL};

const struct registry_log_ops *registry_internal_evlog_ops(void)
{
    return &evlog_ops;
}
