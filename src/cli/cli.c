/* cli.c -- strict option-value parsing, one-line usage errors, the data directory lookup and the
 * time-stamped stderr shared by the subcommands. */
#define _GNU_SOURCE /* fopencookie */
#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "evidence/access.h"
#include "util/err.h"

#ifndef SINKD_INSTALL_DATA_DIR
#define SINKD_INSTALL_DATA_DIR "/usr/local/share/sinkd"
#endif

static char where_now[512];

bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (text == NULL || text[0] == '\0' || text[0] == '-' || text[0] == '+') {
        cli_usage_error(cmd, "--%s: '%s' is not a number", opt, text ? text : "");
        return false;
    }
    /* Decimal, or hexadecimal after 0x (command ids); never octal: a leading zero, as in
     * "010", is ten, not eight. */
    bool hex = text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
    const char *digits = hex ? text + 2 : text;
    unsigned long long v = 0;
    if (isxdigit((unsigned char)digits[0])) {
        v = strtoull(digits, &end, hex ? 16 : 10);
    }
    if (end == NULL || errno != 0 || *end != '\0') {
        cli_usage_error(cmd, "--%s: '%s' is not a number", opt, text);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "--%s: %llu is out of range (%llu-%llu)", opt, v,
                        (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

int cli_make_dirs(const char *dir, unsigned mode, char *err, size_t errlen)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        return err_set(err, errlen, "%s: path too long", dir);
    }
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char c = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(path, (mode_t)mode) != 0 &&
            (errno != EEXIST || stat(path, &st) != 0 || !S_ISDIR(st.st_mode))) {
            return err_set(err, errlen, "%s: %s", path,
                           errno == EEXIST ? "exists and is not a directory" : strerror(errno));
        }
        *p = c;
        if (c == '\0') {
            return 0;
        }
    }
}

bool cli_state_has_log(const char *dir)
{
    char path[4096];
    struct stat st;
    int n = snprintf(path, sizeof(path), "%s/journal/wal", dir);
    if (n <= 0 || (size_t)n >= sizeof(path)) {
        return false;
    }
    if (stat(path, &st) == 0) {
        return S_ISREG(st.st_mode);
    }
    /* A directory this user may not look into is not a mistyped path: the state owner check
     * that follows names its owner, which "no evidence log" would hide. */
    return errno == EACCES;
}

/* Who the command became in cli_act_as_state_owner ("" while it is still who ran it). */
static char acting_as[160];

const char *cli_acting_as(void)
{
    return acting_as;
}

/* The owner's ids while root is kept in the saved uid (cli_act_as_state_owner_keeping_root). */
static bool keeping_root;
static uid_t kept_owner_uid;
static gid_t kept_owner_gid;

static int act_as_owner(const char *cmd, const char *dir, bool keep_root)
{
    /* Before any drop: access and erasure records name the user who ran the command. */
    access_note_invoking_user();
    struct stat st;
    if (stat(dir, &st) != 0) {
        return 0;
    }
    uid_t me = geteuid();
    if (st.st_uid == me) {
        return 0;
    }
    char owner[64];
    struct passwd *pw = getpwuid(st.st_uid);
    if (pw != NULL) {
        snprintf(owner, sizeof(owner), "%s (uid %u)", pw->pw_name, (unsigned)st.st_uid);
    } else {
        snprintf(owner, sizeof(owner), "uid %u", (unsigned)st.st_uid);
    }
    if (me != 0) {
        fprintf(stderr,
                "sinkd %s: %s belongs to %s, not to you (uid %u): files made here would not be "
                "its owner's; run the command as %s\n",
                cmd, dir, owner, (unsigned)me, pw != NULL ? pw->pw_name : "that user");
        return 1;
    }
    /* Group first, while still root; no supplementary groups of root's survive. Keeping root
     * changes only the effective ids, so that cli_as_invoker can take them back. */
    if (setgroups(0, NULL) != 0 ||
        (keep_root ? setegid(st.st_gid) != 0 || seteuid(st.st_uid) != 0
                   : setgid(st.st_gid) != 0 || setuid(st.st_uid) != 0) ||
        geteuid() != st.st_uid) {
        fprintf(stderr, "sinkd %s: cannot become %s, the owner of %s: %s\n", cmd, owner, dir,
                strerror(errno));
        return 1;
    }
    keeping_root = keep_root;
    kept_owner_uid = st.st_uid;
    kept_owner_gid = st.st_gid;
    fprintf(stderr,
            "sinkd %s: running as %s, the owner of %s, so that what it writes stays "
            "the service's%s\n",
            cmd, owner, dir, keep_root ? " (files outside it as root)" : "");
    snprintf(acting_as, sizeof(acting_as), " (writing as %s, the owner of the state directory)",
             owner);
    return 0;
}

int cli_act_as_state_owner(const char *cmd, const char *dir)
{
    return act_as_owner(cmd, dir, false);
}

int cli_act_as_state_owner_keeping_root(const char *cmd, const char *dir)
{
    return act_as_owner(cmd, dir, true);
}

int cli_as_invoker(bool invoker)
{
    if (!keeping_root) {
        return 0;
    }
    if (invoker) {
        return seteuid(0) == 0 && setegid(0) == 0 ? 0 : -1;
    }
    if (setegid(kept_owner_gid) != 0 || seteuid(kept_owner_uid) != 0) {
        /* Going on as root would leave root's files in the state directory. */
        fprintf(stderr, "sinkd: cannot become uid %u again: %s\n", (unsigned)kept_owner_uid,
                strerror(errno));
        exit(1);
    }
    return 0;
}

void cli_drop_kept_root(void)
{
    if (!keeping_root) {
        return;
    }
    /* From euid 0 (the saved uid lets it back), setgid and setuid set all three ids. */
    if (seteuid(0) != 0 || setgid(kept_owner_gid) != 0 || setuid(kept_owner_uid) != 0 ||
        getuid() != kept_owner_uid || geteuid() != kept_owner_uid) {
        fprintf(stderr, "sinkd: cannot drop to uid %u for good: %s\n", (unsigned)kept_owner_uid,
                strerror(errno));
        exit(1);
    }
    keeping_root = false;
}

void cli_set_where(const char *where)
{
    snprintf(where_now, sizeof(where_now), "%s", where != NULL ? where : "");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    /* Built whole first so that it reaches stderr as one line, one write. */
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    for (char *c = msg; *c != '\0'; c++) {
        if (*c == '\n') {
            *c = ' ';
        }
    }
    fprintf(stderr, "sinkd %s: %s%s%s (see 'sinkd %s --help')\n", cmd, where_now,
            where_now[0] != '\0' ? ": " : "", msg, cmd);
    return 2;
}

#ifdef SINKD_BUILD_DIR
/* True when this process runs the binary that lies in the build tree it was compiled in, so
 * that an installed copy (which holds the same compiled-in path) never reads the source tree. */
static bool running_from_build_tree(void)
{
    char exe[PATH_MAX], build[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0 || realpath(SINKD_BUILD_DIR, build) == NULL) {
        return false;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash == NULL) {
        return false;
    }
    *slash = '\0';
    return strcmp(exe, build) == 0;
}
#endif

const char *cli_data_dir(void)
{
    const char *env = getenv("SINKD_DATA_DIR");
    if (env != NULL && env[0] != '\0') {
        return env;
    }
#if defined(SINKD_SOURCE_DATA_DIR) && defined(SINKD_BUILD_DIR)
    if (running_from_build_tree()) {
        return SINKD_SOURCE_DATA_DIR;
    }
#endif
    return SINKD_INSTALL_DATA_DIR;
}

/* ---- time-stamped stderr -------------------------------------------------------------------- */

struct stamp_state {
    bool at_line_start;
};

static ssize_t write_all_iov(struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        total += iov[i].iov_len;
    }
    size_t left = total;
    while (left > 0) {
        ssize_t w = writev(STDERR_FILENO, iov, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -1;
        }
        left -= (size_t)w;
        while (n > 0 && (size_t)w >= iov[0].iov_len) {
            w -= (ssize_t)iov[0].iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov[0].iov_base = (char *)iov[0].iov_base + w;
            iov[0].iov_len -= (size_t)w;
        }
    }
    return (ssize_t)total;
}

/* stdio calls this with whole lines (the stream is line-buffered) or, for a line longer than
 * its buffer, with pieces of one; the stamp goes before the first piece only. */
static ssize_t stamp_write(void *cookie, const char *buf, size_t size)
{
    struct stamp_state *st = cookie;
    size_t done = 0;
    while (done < size) {
        const char *nl = memchr(buf + done, '\n', size - done);
        size_t len = nl != NULL ? (size_t)(nl - (buf + done)) + 1 : size - done;
        char stamp[40];
        size_t slen = 0;
        if (st->at_line_start) {
            struct timespec now;
            struct tm tm;
            clock_gettime(CLOCK_REALTIME, &now);
            gmtime_r(&now.tv_sec, &tm);
            slen = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
            slen += (size_t)snprintf(stamp + slen, sizeof(stamp) - slen, ".%03ldZ ",
                                     now.tv_nsec / 1000000);
        }
        struct iovec iov[2] = {{stamp, slen}, {(char *)buf + done, len}};
        if (write_all_iov(slen > 0 ? iov : iov + 1, slen > 0 ? 2 : 1) < 0) {
            return done > 0 ? (ssize_t)done : -1;
        }
        st->at_line_start = nl != NULL;
        done += len;
    }
    return (ssize_t)size;
}

void cli_stderr_timestamps(void)
{
    static struct stamp_state state = {true};
    cookie_io_functions_t io = {.write = stamp_write};
    FILE *f = fopencookie(&state, "w", io);
    if (f == NULL) {
        return; /* plain stderr then: lines lose their stamp, not their text */
    }
    setvbuf(f, NULL, _IOLBF, 4096);
    /* glibc lets stderr be assigned; every fprintf(stderr, ...) and the server's log (which is
     * stderr) then goes through the stamp. */
    stderr = f;
}

int cli_getopt_long(int argc, char *const argv[], const char *optstring,
                    const struct option *longopts, int *longindex)
{
    int idx = -1;
    optarg = NULL;
    int c = getopt_long(argc, argv, optstring, longopts, &idx);
    if (longindex != NULL) {
        *longindex = idx;
    }
    if (c == -1 || c == '?' || c == ':' || idx < 0 || optind < 1 || optind > argc) {
        return c; /* a short option, the end, or an error getopt_long already reported */
    }
    /* A long option matched. GNU getopt has just consumed it: it is argv[optind - 1], or
     * argv[optind - 2] when its value was the separate argument after it. */
    int at = optind - 1;
    if (optarg != NULL && optarg == argv[at] && at > 0) {
        at--;
    }
    const char *text = argv[at];
    const char *name = strncmp(text, "--", 2) == 0 ? text + 2 : NULL;
    size_t len = name != NULL ? strcspn(name, "=") : 0;
    if (name != NULL && strlen(longopts[idx].name) == len &&
        strncmp(name, longopts[idx].name, len) == 0) {
        return c;
    }
    optind = at + 1; /* so argv[optind - 1] is the refused argument, whatever followed it */
    optopt = 0;
    if (opterr) {
        fprintf(stderr, "%s: option '%s' is not written in full (options are never abbreviated)\n",
                argv[0], text);
    }
    return '?';
}
