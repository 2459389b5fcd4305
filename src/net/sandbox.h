/* sandbox.h -- least privilege for `sinkd serve`: bind as root, then become an unprivileged user
 * with no capabilities, then confine every thread to a seccomp allow-list (docs/hardening.md). */
#ifndef SINKD_NET_SANDBOX_H
#define SINKD_NET_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* The order serve follows (each step's failure is fatal: the caller prints err and exits 1):
 *
 *   sandbox_check_user(user, allow_root)       before anything, when the options are parsed
 *   sandbox_prepare_state_dir(state, user)     after creating the state directory, still root
 *   ... bind every listening socket ...
 *   sandbox_drop_privileges(user, state)       while the process has one thread
 *   ... open the log, start the writer, registry and worker threads ...
 *   sandbox_install_seccomp()                  once start-up is over (covers all threads)
 */

/* The start-up rule. Refuses (returns -1 with a message saying what to do) when
 *  - the effective uid is 0, user is NULL and allow_root is false: a root sinkhole facing the
 *    internet is one parser bug away from owning the host;
 *  - user names root (uid 0): that would drop nothing;
 *  - user is given but does not exist;
 *  - the process is not root and user is someone else (only root can switch users).
 * Returns 0 when serve may go on. */
int sandbox_check_user(const char *user, bool allow_root, char *err, size_t errlen);

/* When running as root and user is not NULL: makes the state directory tree (directories and
 * regular files, never following symbolic links) owned by the user and its primary group, so the
 * server can still append to its own evidence log after dropping root. Refuses a regular file with
 * more than one hard link (chowning it would hand over whatever else it is linked to) and does not
 * cross into other file systems. A no-op returning 0 when not root or user is NULL. */
int sandbox_prepare_state_dir(const char *dir, const char *user, char *err, size_t errlen);

/* Gives up privilege for good. Must be called while the process has a single thread (no-new-privs
 * and the capability sets are per thread); returns -1 when it is not.
 *  - user != NULL and running as root: supplementary groups become the user's groups from the
 *    group database (initgroups semantics), then setgid, then setuid; the capability bounding set
 *    and the ambient set are emptied first.
 *  - user == NULL, or user is the current user: the uid stays as it is.
 * In every case all capabilities are then dropped (e.g. CAP_NET_BIND_SERVICE handed in by
 * systemd's AmbientCapabilities), PR_SET_NO_NEW_PRIVS is set and the process is made
 * non-dumpable: no core file and no same-uid ptrace can read the log's signing key out of memory.
 * Then it verifies: uid and gid are the user's (real, effective, saved), setuid(0) and setgid(0)
 * fail, the effective and permitted capability sets are empty; and, if state_dir is not NULL,
 * that the state directory is readable, writable and searchable now. Returns 0 or -1. */
int sandbox_drop_privileges(const char *user, const char *state_dir, char *err, size_t errlen);

/* true when this kernel and libseccomp can install a filter on all threads at once (TSYNC). */
bool sandbox_seccomp_supported(void);

/* true in an AddressSanitizer build. Its filter also allows what the sanitizer runtime needs for
 * its leak check at exit and for reports (clone, ptrace, wait4, execve of the symbolizer, ...);
 * the caller may want to say so in its log. Release builds never allow those. */
bool sandbox_sanitizer_build(void);

enum sandbox_seccomp_mode {
    SANDBOX_SECCOMP_KILL, /* a call off the list kills the whole process with SIGSYS */
    SANDBOX_SECCOMP_LOG,  /* ... is allowed but logged by the kernel (audit, `dmesg`): to find a
                             call missing from the list without taking the server down */
};

/* Installs the allow-list of the system calls serve makes after start-up (accept, read, write,
 * fsync, rename, epoll, futex, ...; the list and how it was found are in docs/hardening.md) on
 * every thread of the process (SECCOMP_FILTER_FLAG_TSYNC); threads created later inherit it.
 * No socket(), connect(), bind(), execve(), ptrace() or executable mappings are possible after
 * it. Sets no-new-privs if not yet set. Irreversible. Returns 0 or -1 (err says why). */
int sandbox_install_seccomp_mode(enum sandbox_seccomp_mode mode, char *err, size_t errlen);

/* sandbox_install_seccomp_mode(SANDBOX_SECCOMP_KILL, ...). */
int sandbox_install_seccomp(char *err, size_t errlen);

#endif
