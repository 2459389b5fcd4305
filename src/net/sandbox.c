/* sandbox.c -- drop root after binding, drop every capability, then a seccomp allow-list. */
#define _GNU_SOURCE /* setresuid(2) and getresuid(2): set and check all three ids at once */
#include "net/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <linux/bpf.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/sched.h> /* CLONE_THREAD without _GNU_SOURCE */
#include <seccomp.h>

#include "util/err.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif
#ifndef SANDBOX_ASAN
#define SANDBOX_ASAN 0
#endif

/* Deepest state directory tree we will walk (log/tile/<L>/<N>/x.../p is about 10). */
#define SANDBOX_MAX_DEPTH 32

/* A user as the password database describes it. */
struct sandbox_account {
    uid_t uid;
    gid_t gid;
    char name[64];
};

static int lookup_user(const char *user, struct sandbox_account *out, char *err, size_t errlen)
{
    long size = sysconf(_SC_GETPW_R_SIZE_MAX);
    if (size < 16384) {
        size = 16384;
    }
    char *buf = malloc((size_t)size);
    if (buf == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    struct passwd pw;
    struct passwd *found = NULL;
    int rc = getpwnam_r(user, &pw, buf, (size_t)size, &found);
    if (rc != 0 || found == NULL) {
        free(buf);
        if (rc != 0) {
            return err_set(err, errlen, "--user %s: user database lookup failed: %s", user,
                           strerror(rc));
        }
        return err_set(err, errlen, "--user %s: no such user", user);
    }
    out->uid = pw.pw_uid;
    out->gid = pw.pw_gid;
    snprintf(out->name, sizeof(out->name), "%s", pw.pw_name);
    free(buf);
    return 0;
}

int sandbox_check_user(const char *user, bool allow_root, char *err, size_t errlen)
{
    uid_t euid = geteuid();
    if (user == NULL) {
        if (euid == 0 && !allow_root) {
            return err_set(err, errlen,
                           "refusing to run as root: give --user USER (e.g. --user sinkd) to bind "
                           "as root and then run as USER, or --allow-root to keep uid 0 (not "
                           "recommended)");
        }
        return 0;
    }
    struct sandbox_account acct = {0}; /* zeroed: the analyzer cannot see lookup_user() fill it */
    if (lookup_user(user, &acct, err, errlen) != 0) {
        return -1;
    }
    if (acct.uid == 0) {
        return err_set(err, errlen, "--user %s: uid 0 is root; name an unprivileged user", user);
    }
    if (euid != 0 && acct.uid != euid) {
        return err_set(err, errlen,
                       "--user %s: running as uid %ld, not root, so cannot become uid %ld; start "
                       "as root or leave --user out",
                       user, (long)euid, (long)acct.uid);
    }
    return 0;
}

/* ---- state directory ownership ---- */

struct chown_walk {
    uid_t uid;
    gid_t gid;
    dev_t dev;
    char *err;
    size_t errlen;
};

static int chown_dir(struct chown_walk *w, int dirfd, const char *path, int depth);

static int chown_entry(struct chown_walk *w, int dirfd, const char *dirpath, const char *name,
                       int depth)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dirpath, name);
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            return 0; /* gone meanwhile */
        }
        return err_set(w->err, w->errlen, "%s: %s", path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != w->dev) {
            return 0; /* a mount point inside the state directory is the operator's business */
        }
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            return err_set(w->err, w->errlen, "%s: %s", path, strerror(errno));
        }
        int rc = chown_dir(w, fd, path, depth + 1);
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (st.st_uid == w->uid && st.st_gid == w->gid)) {
        return 0; /* symbolic links, sockets, fifos stay as they are; so does what is done */
    }
    /* Open without following and check again on the descriptor: what we chown is what we
     * checked, even if the name is swapped in between. */
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return err_set(w->err, w->errlen, "%s: %s", path, strerror(errno));
    }
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = err_set(w->err, w->errlen, "%s: %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = 0;
    } else if (st.st_nlink > 1) {
        /* A hard link planted in the state directory could point at /etc/shadow. */
        rc = err_set(w->err, w->errlen,
                     "%s: has %lu hard links; refusing to chown it (remove the extra links)", path,
                     (unsigned long)st.st_nlink);
    } else if (fchown(fd, w->uid, w->gid) != 0) {
        rc = err_set(w->err, w->errlen, "chown %s: %s", path, strerror(errno));
    }
    close(fd);
    return rc;
}

static int chown_dir(struct chown_walk *w, int dirfd, const char *path, int depth)
{
    if (depth > SANDBOX_MAX_DEPTH) {
        return err_set(w->err, w->errlen, "%s: more than %d directories deep", path,
                       SANDBOX_MAX_DEPTH);
    }
    if (fchown(dirfd, w->uid, w->gid) != 0) {
        return err_set(w->err, w->errlen, "chown %s: %s", path, strerror(errno));
    }
    int listfd = dup(dirfd); /* closedir closes it; dirfd stays the caller's */
    DIR *d = listfd < 0 ? NULL : fdopendir(listfd);
    if (d == NULL) {
        if (listfd >= 0) {
            close(listfd);
        }
        return err_set(w->err, w->errlen, "%s: %s", path, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        rc = chown_entry(w, dirfd, path, e->d_name, depth);
    }
    closedir(d);
    return rc;
}

int sandbox_prepare_state_dir(const char *dir, const char *user, char *err, size_t errlen)
{
    if (user == NULL || geteuid() != 0) {
        return 0;
    }
    struct sandbox_account acct = {0}; /* zeroed: the analyzer cannot see lookup_user() fill it */
    if (lookup_user(user, &acct, err, errlen) != 0) {
        return -1;
    }
    /* The top may be a symbolic link the operator made; below it nothing is followed. */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return err_set(err, errlen, "state directory %s: %s", dir, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return err_set(err, errlen, "state directory %s: %s", dir, strerror(errno));
    }
    struct chown_walk w = {acct.uid, acct.gid, st.st_dev, err, errlen};
    int rc = chown_dir(&w, fd, dir, 0);
    close(fd);
    return rc;
}

/* ---- privileges and capabilities ---- */

/* Threads in this process, from /proc/self/status; 0 when /proc cannot tell. */
static long thread_count(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL) {
        return 0;
    }
    char line[256];
    long n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "Threads:", 8) == 0) {
            n = strtol(line + 8, NULL, 10);
            break;
        }
    }
    fclose(f);
    return n;
}

/* glibc has no wrapper for capget/capset; libcap would be a dependency for two calls. */
static int caps_get(struct __user_cap_data_struct data[2])
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    memset(data, 0, 2 * sizeof(*data));
    return (int)syscall(SYS_capget, &hdr, data);
}

static int caps_clear(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    return (int)syscall(SYS_capset, &hdr, data);
}

/* Empties the bounding set (needs CAP_SETPCAP, i.e. root, so it is done before setuid). */
static int drop_bounding_set(char *err, size_t errlen)
{
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_READ, (unsigned long)cap, 0, 0, 0) < 0) {
            break; /* EINVAL: past the kernel's last capability */
        }
        if (prctl(PR_CAPBSET_DROP, (unsigned long)cap, 0, 0, 0) != 0) {
            return err_set(err, errlen, "dropping capability %d from the bounding set: %s", cap,
                           strerror(errno));
        }
    }
    return 0;
}

static int switch_user(const struct sandbox_account *acct, char *err, size_t errlen)
{
    /* The user's groups as the group database lists them, as login and systemd's User= do. */
    int ngroups = 64;
    gid_t *groups = NULL;
    for (int tries = 0; tries < 4; tries++) {
        gid_t *more = realloc(groups, (size_t)ngroups * sizeof(*groups));
        if (more == NULL) {
            free(groups);
            return err_set(err, errlen, "out of memory");
        }
        groups = more;
        int want = ngroups;
        if (getgrouplist(acct->name, acct->gid, groups, &want) >= 0) {
            ngroups = want;
            break;
        }
        ngroups = want > ngroups ? want : ngroups * 2;
        if (tries == 3) {
            free(groups);
            return err_set(err, errlen, "--user %s: too many groups", acct->name);
        }
    }
    int rc = setgroups((size_t)ngroups, groups);
    free(groups);
    if (rc != 0) {
        return err_set(err, errlen, "setgroups for %s: %s", acct->name, strerror(errno));
    }
    if (drop_bounding_set(err, errlen) != 0) {
        return -1;
    }
    /* Groups before uid: once the uid is not 0 we may no longer change them. */
    if (setresgid(acct->gid, acct->gid, acct->gid) != 0) {
        return err_set(err, errlen, "setgid %ld: %s", (long)acct->gid, strerror(errno));
    }
    if (setresuid(acct->uid, acct->uid, acct->uid) != 0) {
        return err_set(err, errlen, "setuid %ld: %s", (long)acct->uid, strerror(errno));
    }
    return 0;
}

static int verify_dropped(const struct sandbox_account *acct, bool switched, char *err,
                          size_t errlen)
{
    if (switched) {
        uid_t r, e, s;
        gid_t rg, eg, sg;
        if (getresuid(&r, &e, &s) != 0 || getresgid(&rg, &eg, &sg) != 0) {
            return err_set(err, errlen, "getresuid: %s", strerror(errno));
        }
        if (r != acct->uid || e != acct->uid || s != acct->uid || rg != acct->gid ||
            eg != acct->gid || sg != acct->gid) {
            return err_set(err, errlen,
                           "still uid %ld/%ld/%ld gid %ld/%ld/%ld after dropping to %s", (long)r,
                           (long)e, (long)s, (long)rg, (long)eg, (long)sg, acct->name);
        }
        /* The point of the exercise: there must be no way back. */
        if (setuid(0) == 0 || setgid(0) == 0) {
            return err_set(err, errlen, "could regain root after dropping to %s", acct->name);
        }
    }
    struct __user_cap_data_struct caps[2];
    if (caps_get(caps) != 0) {
        return err_set(err, errlen, "capget: %s", strerror(errno));
    }
    if ((caps[0].effective | caps[1].effective | caps[0].permitted | caps[1].permitted |
         caps[0].inheritable | caps[1].inheritable) != 0) {
        return err_set(err, errlen, "capabilities left after dropping: effective %08x%08x",
                       caps[1].effective, caps[0].effective);
    }
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
        return err_set(err, errlen, "no-new-privs is not set");
    }
    return 0;
}

int sandbox_drop_privileges(const char *user, const char *state_dir, char *err, size_t errlen)
{
    long threads = thread_count();
    if (threads > 1) {
        /* no-new-privs and capabilities are per thread: the others would keep theirs. */
        return err_set(err, errlen,
                       "dropping privileges with %ld threads running; it must happen before any "
                       "thread starts",
                       threads);
    }
    struct sandbox_account acct = {0}; /* zeroed: the analyzer cannot see lookup_user() fill it */
    memset(&acct, 0, sizeof(acct));
    acct.uid = getuid();
    acct.gid = getgid();
    bool switched = false;
    if (user != NULL) {
        if (lookup_user(user, &acct, err, errlen) != 0) {
            return -1;
        }
        if (acct.uid == 0) {
            return err_set(err, errlen, "--user %s: uid 0 is root; name an unprivileged user",
                           user);
        }
        if (geteuid() == 0) {
            if (switch_user(&acct, err, errlen) != 0) {
                return -1;
            }
            switched = true;
        } else if (acct.uid != geteuid()) {
            return err_set(err, errlen, "--user %s: not root, cannot become uid %ld", user,
                           (long)acct.uid);
        }
    }
    /* Ambient capabilities (systemd AmbientCapabilities=CAP_NET_BIND_SERVICE) were only needed
     * for bind(); EINVAL means a kernel without ambient capabilities, so nothing to clear. */
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return err_set(err, errlen, "clearing ambient capabilities: %s", strerror(errno));
    }
    if (caps_clear() != 0) {
        return err_set(err, errlen, "capset: %s", strerror(errno));
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        return err_set(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
    }
    /* Not dumpable: the process holds the log's signing key; a core file (or a core_pattern
     * pipe) would write it out, and any other process of the same uid could ptrace it. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        return err_set(err, errlen, "PR_SET_DUMPABLE: %s", strerror(errno));
    }
    if (verify_dropped(&acct, switched, err, errlen) != 0) {
        return -1;
    }
    if (state_dir != NULL && faccessat(AT_FDCWD, state_dir, R_OK | W_OK | X_OK, AT_EACCESS) != 0) {
        return err_set(err, errlen,
                       "state directory %s is not usable by uid %ld (%s); start as root so serve "
                       "can chown it, or chown -R it to that user (and make its parents "
                       "searchable)",
                       state_dir, (long)geteuid(), strerror(errno));
    }
    return 0;
}

/* ---- seccomp ---- */

/* What `sinkd serve` calls after start-up, found by running it under `strace -f` through a swarm
 * of TCP and HTTP bots with a policy in enforce mode, a SIGHUP reload and a SIGTERM drain
 * (docs/hardening.md), plus the calls of paths that workload does not reach: abort(), libuv's
 * EMFILE reserve descriptor, glibc without a vDSO clock, new threads. Names this architecture
 * does not have are skipped. Conditional ones (mmap, mprotect, clone, ioctl, ...) come after. */
/* clang-format off */
static const char *const allowed_syscalls[] = {
    /* descriptors: sockets accepted from the listeners, log and registry files */
    "read", "readv", "pread64", "preadv", "write", "writev", "pwrite64", "pwritev", "lseek",
    "close", "dup", "dup3", "fcntl", "fcntl64", "fsync", "fdatasync", "syncfs", "sync_file_range", "ftruncate",
    "fallocate", "fstat", "fstat64", "newfstatat", "fstatat64", "statx", "stat", "lstat", "fstatfs",
    /* the evidence log and the registry (tiles, checkpoints, SQLite journal and WAL) */
    "openat", "open", "mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat",
    "rmdir", "getdents64", "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getcwd",
    "fchmod", "fchown", "umask",
    /* journal compaction waits while a backup copy holds journal/compact.lock */
    "flock",
    /* network, on descriptors that exist already: no socket, connect, bind or listen */
    "accept", "accept4", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown", "getsockname",
    "getpeername", "getsockopt", "setsockopt",
    /* libuv event loops, async wake-ups and signal pipes */
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "epoll_create1", "eventfd2", "pipe2",
    "poll", "ppoll",
    /* memory (malloc, thread stacks, the MMDB mapping) */
    "brk", "munmap", "mremap", "madvise",
    /* threads and time */
    "futex", "set_robust_list", "rseq", "sched_yield", "setpriority", "sched_getaffinity", "nanosleep",
    "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "getrandom",
    /* signals (uv_signal, SIGHUP reload, SIGTERM drain) and exit */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall", "exit",
    "exit_group",
    /* identity, read only */
    "getpid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getppid", "uname",
    /* glibc's qsort asks for the memory size (sysconf _SC_PHYS_PAGES) the first time it sorts
     * more than 1 KiB: checkpoint retention's list after the filter is on (serve died 10 minutes
     * after a start, at the second retention run, before this was allowed) */
    "sysinfo",
};
/* clang-format on */

/* What the AddressSanitizer runtime adds: the leak check at exit stops the world from a cloned
 * tracer with ptrace, reports symbolize through a forked llvm-symbolizer. Test builds only. */
/* clang-format off */
static const char *const asan_syscalls[] = {
    "clone", "clone3", "vfork", "fork", "execve", "wait4", "waitid", "ptrace", "process_vm_readv",
    "prctl", "kill", "tgkill", "tkill", "getdents", "getdents64", "sched_getparam",
    "sched_setaffinity", "pipe", "dup2", "setrlimit", "getrlimit", "prlimit64", "mmap", "mprotect",
    "ioctl", /* isatty() on stderr before a report */
};
/* clang-format on */

bool sandbox_sanitizer_build(void)
{
    return SANDBOX_ASAN != 0;
}

bool sandbox_seccomp_supported(void)
{
    if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
        return false; /* kernel without CONFIG_SECCOMP */
    }
    return seccomp_api_get() >= 2; /* 2: the seccomp() call with TSYNC */
}

static int allow_list(scmp_filter_ctx ctx, const char *const *names, size_t n, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR || nr < 0) {
            continue; /* not a call of this architecture (e.g. open on aarch64) */
        }
        int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
        if (rc < 0 && rc != -EEXIST) {
            return err_set(err, errlen, "seccomp rule for %s: %s", names[i], strerror(-rc));
        }
    }
    return 0;
}

/* Not used in an ASan build: asan_syscalls allows all of these outright. */
static int allow_conditional(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    int rc = 0;
    /* libuv sets O_NONBLOCK / FD_CLOEXEC with ioctl; nothing else. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)FIONBIO));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)FIOCLEX));
    /* Memory, but never new executable memory (what MemoryDenyWriteExecute does for the unit). */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                           SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* New threads (glibc's pthread_create) but never a new process. clone3 hides its flags in
     * memory a filter cannot read, so it answers ENOSYS and glibc falls back to clone. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                           SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* abort() and pthread_kill signal this process only. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                           SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
    /* Thread names; no other prctl (no-new-privs, dumpable and the rest stay as set). */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                           SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                           SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
    /* Reading (not raising) this process's own limits. */
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2, SCMP_A0(SCMP_CMP_EQ, 0),
                           SCMP_A2(SCMP_CMP_EQ, 0));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getrlimit), 0);
    if (rc != 0) {
        return err_set(err, errlen, "seccomp: cannot add the conditional rules");
    }
    return 0;
}

/* The listeners' drop filter (synfilter.h) changes only its map's contents at run time: bpf()
 * for map updates and deletions, never to load a program or create a map. */
static int allow_map_updates(scmp_filter_ctx ctx, char *err, size_t errlen)
{
    int rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(bpf), 1,
                              SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)BPF_MAP_UPDATE_ELEM));
    rc |= seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(bpf), 1,
                           SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)BPF_MAP_DELETE_ELEM));
    if (rc != 0) {
        return err_set(err, errlen, "seccomp: cannot add the rules for bpf map updates");
    }
    return 0;
}

int sandbox_install_seccomp_mode(enum sandbox_seccomp_mode mode, char *err, size_t errlen)
{
    if (!sandbox_seccomp_supported()) {
        return err_set(err, errlen, "seccomp filters with thread sync are not supported here");
    }
    unsigned api = seccomp_api_get();
    uint32_t deny;
    if (mode == SANDBOX_SECCOMP_LOG) {
        if (api < 3) {
            return err_set(err, errlen, "seccomp log mode needs a newer kernel or libseccomp");
        }
        deny = SCMP_ACT_LOG;
    } else {
        /* KILL_PROCESS: killing only the offending thread would leave a half-working server. */
        deny = api >= 3 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_KILL;
    }
    scmp_filter_ctx ctx = seccomp_init(deny);
    if (ctx == NULL) {
        return err_set(err, errlen, "seccomp_init failed");
    }
    int rc = -1;
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0 ||
        seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1) != 0) {
        err_set(err, errlen, "seccomp: cannot request thread sync");
        goto out;
    }
    if (SANDBOX_ASAN &&
        allow_list(ctx, asan_syscalls, sizeof(asan_syscalls) / sizeof(asan_syscalls[0]), err,
                   errlen) != 0) {
        goto out;
    }
    if (allow_list(ctx, allowed_syscalls, sizeof(allowed_syscalls) / sizeof(allowed_syscalls[0]),
                   err, errlen) != 0 ||
        (!SANDBOX_ASAN && allow_conditional(ctx, err, errlen) != 0) ||
        allow_map_updates(ctx, err, errlen) != 0) {
        goto out;
    }
    int lrc = seccomp_load(ctx);
    if (lrc != 0) {
        /* With TSYNC a positive value is the id of a thread that could not be synchronised. */
        err_set(err, errlen, "seccomp_load: %s",
                lrc < 0 ? strerror(-lrc) : "a thread could not take the filter");
        goto out;
    }
    rc = 0;
out:
    seccomp_release(ctx);
    return rc;
}

int sandbox_install_seccomp(char *err, size_t errlen)
{
    return sandbox_install_seccomp_mode(SANDBOX_SECCOMP_KILL, err, errlen);
}
