/* evlog_source.c -- the evidence log's reader (evidence/log.h) seen as registry_log_ops. */
#include "registry/internal.h"
#include "registry/registry.h"

/* The evidence log's reader API has not landed in evidence/log.h yet; until it does the follower
 * and rebuild need explicit ops. */
const struct registry_log_ops *registry_internal_evlog_ops(void)
{
    return NULL;
}
