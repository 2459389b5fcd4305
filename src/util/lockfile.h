/* lockfile.h -- one writer per thing a state directory holds: an exclusive flock on DIR/<name>
 * that names its holder (pid and command), so a second writer is refused with one line saying
 * who holds it. The kernel drops the lock when the holder exits, however it exits. */
#ifndef SINKD_UTIL_LOCKFILE_H
#define SINKD_UTIL_LOCKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The locks of a state directory (docs/operations.md, "One writer"). */
#define LOCKFILE_LOG "log.lock"             /* journal, log/, keys/: serve, erase, access flush */
#define LOCKFILE_REGISTRY "registry.lock"   /* the registry: its follower, rebuild, catch-up */
#define LOCKFILE_TIMESTAMP "timestamp.lock" /* log/timestamps/: sinkd timestamp */
#define LOCKFILE_COSIGN "cosign.lock"       /* log/cosignatures/: sinkd cosign */
#define LOCKFILE_ERASE "erase.lock"         /* keys/epochs/ tombstones: sinkd erase */

#define LOCKFILE_HOLDER_MAX 96

/* How long a taker waits for a holder that declared itself brief (an access record being
 * appended, an erasure) before it gives up. Holders that are not brief are refused at once. */
#define LOCKFILE_BRIEF_WAIT_MS 60000u

/* Takes DIR/<name> (created 0600 if missing) without waiting, unless its holder is brief (then
 * waits up to LOCKFILE_BRIEF_WAIT_MS), and writes "pid <pid>\n<holder>\n[brief\n]" into it;
 * holder NULL: this process's command ("sinkd serve"), from /proc/self/cmdline.
 * Returns the descriptor (keep it open for as long as the lock must hold; close it or exit to
 * let go), or -1 with err naming the file and the holder: "DIR/log.lock is held by pid 1234
 * (sinkd serve)". EWOULDBLOCK is left in errno when another process holds it. */
int lockfile_take(const char *dir, const char *name, const char *holder, bool brief, char *err,
                  size_t errlen);

void lockfile_release(int fd);

#endif
