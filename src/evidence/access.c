/* access.c -- access records, output held back until they are durable, and the spool through
 * which processes that do not own the log hand records to its writer. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "evidence/access.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/err.h"
#include "util/hex.h"
#include "util/lockfile.h"

/* ---- the record --------------------------------------------------------------------------- */

/* The real uid as it was before any drop to the state directory's owner: a command root runs
 * becomes that owner, yet its records must still name who ran it. */
static bool invoking_uid_known;
static uid_t invoking_uid;

void access_note_invoking_user(void)
{
    if (!invoking_uid_known) {
        invoking_uid = getuid();
        invoking_uid_known = true;
    }
}

void access_invoking_user(char *out, size_t len)
{
    uid_t uid = invoking_uid_known ? invoking_uid : getuid();
    const char *sudo = getenv("SUDO_USER");
    if (uid == 0 && sudo != NULL && sudo[0] != '\0') {
        snprintf(out, len, "%.40s (sudo)", sudo);
        return;
    }
    struct passwd pw, *found = NULL;
    char buf[1024];
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL) {
        snprintf(out, len, "%s", found->pw_name);
    } else {
        snprintf(out, len, "uid %ld", (long)uid);
    }
}

/* Copies text into a field of `size` bytes, cutting it with "..." when it does not fit. */
static void copy_cut(char *field, size_t size, const char *text)
{
    size_t n = strlen(text);
    if (n < size) {
        memcpy(field, text, n + 1);
        return;
    }
    memcpy(field, text, size - 4);
    memcpy(field + size - 4, "...", 4);
}

int access_check_args(const char *operator_name, const char *justification, char *err,
                      size_t errlen)
{
    struct access_record *a = NULL;
    if (justification == NULL || strlen(justification) < ACCESS_JUSTIFICATION_MIN) {
        return err_set(err, errlen,
                       "--justification: say why (the case, the order, the request) in at least "
                       "%d characters",
                       ACCESS_JUSTIFICATION_MIN),
               EVLOG_EINVAL;
    }
    if (strlen(justification) >= sizeof(a->justification)) {
        return err_set(err, errlen, "--justification: longer than %zu characters",
                       sizeof(a->justification) - 1),
               EVLOG_EINVAL;
    }
    if (operator_name != NULL && strlen(operator_name) >= sizeof(a->operator_name)) {
        return err_set(err, errlen, "--operator: longer than %zu characters",
                       sizeof(a->operator_name) - 1),
               EVLOG_EINVAL;
    }
    for (const char *p = justification; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            return err_set(err, errlen, "--justification: holds a control character"), EVLOG_EINVAL;
        }
    }
    return 0;
}

int access_record_build(struct record *rec, const char *operator_name, const char *what,
                        const char *scope, uint64_t rows, const uint8_t output_sha256[32],
                        const char *justification, char *err, size_t errlen)
{
    int rc = access_check_args(operator_name, justification, err, errlen);
    if (rc != 0) {
        return rc;
    }
    memset(rec, 0, sizeof(*rec));
    rec->kind = RECORD_ACCESS;
    struct access_record *a = &rec->u.access;
    a->time_us = event_now_us();
    char host[256];
    if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
        snprintf(host, sizeof(host), "sinkd");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(a->node, sizeof(a->node), "%.31s", host);
    if (operator_name != NULL && operator_name[0] != '\0') {
        snprintf(a->operator_name, sizeof(a->operator_name), "%s", operator_name);
    } else {
        access_invoking_user(a->operator_name, sizeof(a->operator_name));
    }
    copy_cut(a->what, sizeof(a->what), what != NULL ? what : "");
    copy_cut(a->scope, sizeof(a->scope), scope != NULL ? scope : "");
    a->rows = rows;
    memcpy(a->output_sha256, output_sha256, 32);
    snprintf(a->justification, sizeof(a->justification), "%s", justification);
    return 0;
}

/* ---- held-back output --------------------------------------------------------------------- */

struct access_output {
    FILE *f;
};

static int spool_dir_path(const char *state_dir, char *out, size_t len, char *err, size_t errlen)
{
    if ((size_t)snprintf(out, len, "%s/%s", state_dir, ACCESS_SPOOL_DIR) >= len) {
        return err_set(err, errlen, "%s: path too long", state_dir), EVLOG_EINVAL;
    }
    return 0;
}

/* The state directory's owner, so that files made by root stay usable by the service user. */
static void give_to_owner(const char *state_dir, int fd)
{
    struct stat st;
    if (geteuid() == 0 && stat(state_dir, &st) == 0 && st.st_uid != 0) {
        /* best effort; kept in a variable because _FORTIFY_SOURCE (the Debian package's
         * flags) makes an ignored fchown() result an error under -Werror, (void) or not */
        int rc = fchown(fd, st.st_uid, st.st_gid);
        (void)rc;
    }
}

/* Creates DIR/spool (0700) if missing. */
static int spool_dir_make(const char *state_dir, char *path, size_t len, char *err, size_t errlen)
{
    int rc = spool_dir_path(state_dir, path, len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (mkdir(path, 0700) == 0) {
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            give_to_owner(state_dir, fd);
            close(fd);
        }
    } else if (errno != EEXIST) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno)), EVLOG_EIO;
    }
    return 0;
}

int access_output_open(struct access_output **out, const char *state_dir, char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX];
    int rc = spool_dir_make(state_dir, dir, sizeof(dir), err, errlen);
    if (rc != 0) {
        return rc;
    }
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* A file system without O_TMPFILE: a named file, removed at once. */
        char tmpl[EVLOG_PATH_MAX + 32];
        snprintf(tmpl, sizeof(tmpl), "%s/.output-XXXXXX", dir);
        fd = mkostemp(tmpl, O_CLOEXEC);
        if (fd >= 0) {
            unlink(tmpl);
        }
    }
    if (fd < 0) {
        return err_set(err, errlen, "%s: cannot make a temporary file for the output: %s", dir,
                       strerror(errno)),
               EVLOG_EIO;
    }
    struct access_output *o = calloc(1, sizeof(*o));
    FILE *f = o != NULL ? fdopen(fd, "w+") : NULL;
    if (f == NULL) {
        free(o);
        close(fd);
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    o->f = f;
    *out = o;
    return 0;
}

FILE *access_output_stream(struct access_output *o)
{
    return o->f;
}

int access_output_digest(struct access_output *o, uint8_t sha256[32], uint64_t *bytes, char *err,
                         size_t errlen)
{
    if (fflush(o->f) != 0 || ferror(o->f) || fseeko(o->f, 0, SEEK_SET) != 0) {
        return err_set(err, errlen, "writing the output: %s", strerror(errno)), EVLOG_EIO;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return err_set(err, errlen, "libcrypto: SHA-256"), EVLOG_ECRYPTO;
    }
    uint8_t buf[65536];
    uint64_t total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), o->f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
        total += n;
    }
    int failed = ferror(o->f);
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, sha256, &len);
    EVP_MD_CTX_free(ctx);
    if (failed) {
        return err_set(err, errlen, "reading the output back: %s", strerror(errno)), EVLOG_EIO;
    }
    if (bytes != NULL) {
        *bytes = total;
    }
    return 0;
}

int access_output_copy(struct access_output *o, FILE *to, char *err, size_t errlen)
{
    if (fflush(o->f) != 0 || fseeko(o->f, 0, SEEK_SET) != 0) {
        return err_set(err, errlen, "output: %s", strerror(errno)), EVLOG_EIO;
    }
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), o->f)) > 0) {
        if (fwrite(buf, 1, n, to) != n) {
            return err_set(err, errlen, "writing the output: %s", strerror(errno)), EVLOG_EIO;
        }
    }
    if (ferror(o->f) || fflush(to) != 0) {
        return err_set(err, errlen, "copying the output: %s", strerror(errno)), EVLOG_EIO;
    }
    return 0;
}

void access_output_close(struct access_output *o)
{
    if (o != NULL) {
        fclose(o->f);
        free(o);
    }
}

/* ---- directory digest --------------------------------------------------------------------- */

struct path_list {
    char **v;
    size_t n, cap;
};

static int path_list_add(struct path_list *l, const char *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(p);
    return l->v[l->n++] != NULL ? 0 : -1;
}

static void path_list_free(struct path_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Regular files under root/rel, as paths relative to root. Bounded depth; links not followed. */
static int list_files(const char *root, const char *rel, int depth, struct path_list *out,
                      char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX * 2 + 2];
    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel) >=
        sizeof(path)) {
        return err_set(err, errlen, "%s: path too long", root), EVLOG_EINVAL;
    }
    DIR *d = opendir(path);
    if (d == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno)), EVLOG_EIO;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char sub[EVLOG_PATH_MAX];
        if ((size_t)snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
            sizeof(sub)) {
            rc = (err_set(err, errlen, "%s: path too long", path), EVLOG_EINVAL);
            break;
        }
        char full[EVLOG_PATH_MAX + 8];
        snprintf(full, sizeof(full), "%s/%s", root, sub);
        struct stat st;
        if (lstat(full, &st) != 0) {
            rc = (err_set(err, errlen, "%s: %s", full, strerror(errno)), EVLOG_EIO);
        } else if (S_ISDIR(st.st_mode)) {
            rc = depth < 8 ? list_files(root, sub, depth + 1, out, err, errlen)
                           : (err_set(err, errlen, "%s: too deep", full), EVLOG_EINVAL);
        } else if (S_ISREG(st.st_mode) && path_list_add(out, sub) != 0) {
            rc = (err_set(err, errlen, "out of memory"), EVLOG_ENOMEM);
        }
    }
    closedir(d);
    return rc;
}

static int file_sha256(const char *path, uint8_t out[32], char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno)), EVLOG_EIO;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        EVP_DigestUpdate(ctx, buf, n);
    }
    int failed = ferror(f);
    fclose(f);
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    return failed ? (err_set(err, errlen, "%s: read error", path), EVLOG_EIO) : 0;
}

int access_dir_digest(const char *dir, uint8_t sha256[32], uint64_t *files, char *err,
                      size_t errlen)
{
    struct path_list l = {0};
    int rc = list_files(dir, "", 0, &l, err, errlen);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (rc == 0 && (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)) {
        rc = (err_set(err, errlen, "libcrypto: SHA-256"), EVLOG_ECRYPTO);
    }
    if (rc == 0 && l.n > 0) {
        qsort(l.v, l.n, sizeof(*l.v), cmp_str);
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char path[EVLOG_PATH_MAX * 2];
        snprintf(path, sizeof(path), "%s/%s", dir, l.v[i]);
        uint8_t h[32];
        char hex[65];
        rc = file_sha256(path, h, err, errlen);
        if (rc == 0) {
            hex_encode(h, 32, hex);
            EVP_DigestUpdate(ctx, hex, 64);
            EVP_DigestUpdate(ctx, "  ", 2);
            EVP_DigestUpdate(ctx, l.v[i], strlen(l.v[i]));
            EVP_DigestUpdate(ctx, "\n", 1);
        }
    }
    if (rc == 0) {
        unsigned int len = 0;
        EVP_DigestFinal_ex(ctx, sha256, &len);
        if (files != NULL) {
            *files = l.n;
        }
    }
    EVP_MD_CTX_free(ctx);
    path_list_free(&l);
    return rc;
}

/* ---- the spool ---------------------------------------------------------------------------- */

/* Kinds other processes may hand the writer: what they do is theirs to record, but a contact,
 * decision or command can only come from the server that saw it. */
static bool spool_kind_allowed(uint8_t kind)
{
    return kind == RECORD_ACCESS || kind == RECORD_ERASURE || (kind >= 12 && kind <= 15);
}

bool access_spool_accepts(const uint8_t *buf, size_t len, struct record *rec)
{
    return event_decode(buf, len, rec, NULL, 0) == 0 && spool_kind_allowed(rec->kind);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int access_spool(const char *state_dir, const struct record *rec, char *err, size_t errlen)
{
    if (!spool_kind_allowed(rec->kind)) {
        return err_set(err, errlen, "the spool takes access, erasure and portal records, not %s",
                       event_kind_name(rec->kind)),
               EVLOG_EINVAL;
    }
    uint8_t buf[EVENT_RECORD_MAX];
    int len = event_encode(rec, buf, sizeof(buf));
    if (len < 0) {
        return err_set(err, errlen, "cannot encode the %s record", event_kind_name(rec->kind)),
               EVLOG_EINVAL;
    }
    char dir[EVLOG_PATH_MAX];
    int rc = spool_dir_make(state_dir, dir, sizeof(dir), err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint8_t rnd[4];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        return err_set(err, errlen, "libcrypto: no random bytes"), EVLOG_ECRYPTO;
    }
    char name[96], tmp[EVLOG_PATH_MAX + 128], final[EVLOG_PATH_MAX + 128];
    snprintf(name, sizeof(name), "%016" PRIu64 "-%ld-%02x%02x%02x%02x.rec", event_now_us(),
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3]);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", dir, name);
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return err_set(err, errlen, "%s: %s", tmp, strerror(errno)), EVLOG_EIO;
    }
    give_to_owner(state_dir, fd);
    bool ok = write(fd, buf, (size_t)len) == len && fsync(fd) == 0;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, final) != 0 || fsync_path(dir) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return err_set(err, errlen, "%s: cannot spool the record durably: %s", dir, strerror(e)),
               EVLOG_EIO;
    }
    return 0;
}

int access_flush(const char *state_dir, struct access_receipt *receipt, char *err, size_t errlen)
{
    memset(receipt, 0, sizeof(*receipt));
    char why[512];
    int lock_fd = lockfile_take(state_dir, LOCKFILE_LOG, "sinkd: appending spooled records", true,
                                why, sizeof(why));
    if (lock_fd < 0) {
        if (errno != EWOULDBLOCK) {
            return err_set(err, errlen, "%s", why), EVLOG_EIO;
        }
        /* "DIR/log.lock is held by pid N (cmd)": that writer drains the spool. */
        const char *p = strstr(why, "held by pid ");
        if (p != NULL) {
            receipt->writer_pid = strtol(p + 12, NULL, 10);
            const char *open_paren = strchr(p, '(');
            const char *close_paren = open_paren != NULL ? strrchr(open_paren, ')') : NULL;
            if (close_paren != NULL) {
                snprintf(receipt->writer, sizeof(receipt->writer), "%.*s",
                         (int)(close_paren - open_paren - 1), open_paren + 1);
            }
        } else {
            receipt->writer_pid = -1;
        }
        return 0;
    }
    struct evlog *log = NULL;
    struct evlog_options opt = {0};
    int rc = evlog_open(&log, state_dir, &opt, NULL, err, errlen);
    if (rc == 0) {
        struct access_drain_state st = {0};
        int n = access_spool_drain(log, state_dir, &st, 0, err, errlen);
        char cerr[256];
        int crc = evlog_close(log, cerr, sizeof(cerr));
        if (n < 0) {
            rc = n;
        } else if (crc != 0) {
            rc = (err_set(err, errlen, "%s", cerr), crc);
        } else {
            receipt->appended = true;
            receipt->appended_n = (uint64_t)n;
        }
    }
    lockfile_release(lock_fd);
    return rc;
}

int access_submit(const char *state_dir, const struct record *rec, struct access_receipt *receipt,
                  char *err, size_t errlen)
{
    int rc = access_spool(state_dir, rec, err, errlen);
    if (rc != 0) {
        return rc;
    }
    return access_flush(state_dir, receipt, err, errlen);
}

/* ---- the writer's side -------------------------------------------------------------------- */

/* n decimal digits at p (n > 0), or up to max when n == 0, without a leading zero unless the
 * number is 0; returns the characters used or 0. */
static size_t digits_at(const char *p, size_t exact, size_t max)
{
    size_t n = strspn(p, "0123456789");
    if (n == 0 || (exact != 0 && n != exact) ||
        (exact == 0 && (n > max || (p[0] == '0' && n > 1)))) {
        return 0;
    }
    return n;
}

bool access_spool_name_parse(const char *name, bool *claimed, uint64_t *at)
{
    /* What access_spool writes ("%016llu-%ld-%08x.rec") and the drain renames to (".at-%llu"),
     * in that one spelling. */
    if (strlen(name) > 100) {
        return false;
    }
    const char *p = name;
    size_t n = digits_at(p, 16, 0);
    if (n == 0 || p[n] != '-') {
        return false;
    }
    p += n + 1;
    n = digits_at(p, 0, 10);
    if (n == 0 || p[n] != '-') {
        return false;
    }
    p += n + 1;
    if (strspn(p, "0123456789abcdef") != 8 || strncmp(p + 8, ".rec", 4) != 0) {
        return false;
    }
    p += 12;
    if (*p == '\0') {
        *claimed = false;
        return true;
    }
    if (strncmp(p, ".at-", 4) != 0) {
        return false;
    }
    p += 4;
    n = digits_at(p, 0, 19);
    if (n == 0 || p[n] != '\0') {
        return false;
    }
    *claimed = true;
    *at = strtoull(p, NULL, 10);
    return true;
}

static int read_small(int dirfd, const char *name, uint8_t *buf, size_t cap, size_t *len)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, cap);
    close(fd);
    if (n < 0 || (size_t)n == cap) {
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

/* Whether durable entry `index` of the log under state_dir holds exactly these bytes. */
static bool log_entry_equals(const char *state_dir, uint64_t index, const uint8_t *buf, size_t len)
{
    struct evlog_reader *r = NULL;
    if (evlog_reader_open(&r, state_dir, index, NULL, 0) != 0) {
        return false;
    }
    const uint8_t *entry;
    size_t elen;
    uint64_t got;
    bool same = evlog_reader_next(r, &entry, &elen, &got, NULL, 0) == 1 && got == index &&
                elen == len && memcmp(entry, buf, len) == 0;
    evlog_reader_close(r);
    return same;
}

/* Names one pass lists at most (~8 MB); more wait for the next passes. */
#define ACCESS_SPOOL_LIST_MAX 65536

struct spool_file {
    char name[128];
    bool claimed;
    uint64_t at;
};

static int cmp_spool(const void *a, const void *b)
{
    return strcmp(((const struct spool_file *)a)->name, ((const struct spool_file *)b)->name);
}

int access_spool_drain(struct evlog *log, const char *state_dir, struct access_drain_state *st,
                       uint64_t now_ms, char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX];
    if (spool_dir_path(state_dir, dir, sizeof(dir), err, errlen) != 0) {
        return EVLOG_EINVAL;
    }
    if (now_ms != 0) {
        if (now_ms - st->checked_ms < ACCESS_DRAIN_EVERY_MS && now_ms >= st->checked_ms) {
            return 0;
        }
        st->checked_ms = now_ms;
        struct stat sb;
        if (stat(dir, &sb) != 0) {
            return 0; /* no spool: nothing was ever submitted */
        }
        if (!st->leftovers && sb.st_mtim.tv_sec == st->mtime.tv_sec &&
            sb.st_mtim.tv_nsec == st->mtime.tv_nsec) {
            return 0;
        }
    }
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return errno == ENOENT ? 0
                               : (err_set(err, errlen, "%s: %s", dir, strerror(errno)), EVLOG_EIO);
    }
    DIR *d = fdopendir(dup(dirfd));
    if (d == NULL) {
        close(dirfd);
        return err_set(err, errlen, "%s: %s", dir, strerror(errno)), EVLOG_EIO;
    }
    /* Every name (bounded), oldest first; this pass takes the first ACCESS_DRAIN_MAX. */
    size_t cap = 64, n = 0;
    struct spool_file *files = malloc(cap * sizeof(*files));
    if (files == NULL) {
        closedir(d);
        close(dirfd);
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    bool more = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        bool claimed = false;
        uint64_t at = 0;
        if (!access_spool_name_parse(e->d_name, &claimed, &at) ||
            strlen(e->d_name) >= sizeof(files->name)) {
            continue;
        }
        if (n == cap) {
            if (cap >= ACCESS_SPOOL_LIST_MAX) {
                more = true;
                break;
            }
            struct spool_file *bigger = realloc(files, 2 * cap * sizeof(*files));
            if (bigger == NULL) {
                more = true;
                break;
            }
            files = bigger;
            cap *= 2;
        }
        snprintf(files[n].name, sizeof(files[n].name), "%.120s", e->d_name);
        files[n].claimed = claimed;
        files[n].at = at;
        n++;
    }
    closedir(d);
    qsort(files, n, sizeof(*files), cmp_spool);
    if (n > ACCESS_DRAIN_MAX) {
        n = ACCESS_DRAIN_MAX;
        more = true;
    }
    int rc = 0;
    int appended = 0;
    char bad[320] = "";
    bool renamed = false;
    size_t claimed_now = 0;
    for (size_t i = 0; i < n; i++) {
        struct spool_file *f = &files[i];
        uint8_t buf[ACCESS_SPOOL_FILE_MAX];
        size_t len = 0;
        struct record rec;
        if (read_small(dirfd, f->name, buf, sizeof(buf), &len) != 0 ||
            !access_spool_accepts(buf, len, &rec)) {
            char to[128];
            snprintf(to, sizeof(to), "%.100s.bad", f->name);
            (void)renameat(dirfd, f->name, dirfd, to);
            renamed = true;
            if (bad[0] == '\0') {
                snprintf(bad, sizeof(bad),
                         "spool/%.100s is not a record the spool accepts; kept "
                         "as %.110s",
                         f->name, to);
            }
            f->name[0] = '\0';
            continue;
        }
        uint64_t size = evlog_size(log), staged = evlog_staged(log);
        if (f->claimed && f->at < size) {
            if (log_entry_equals(state_dir, f->at, buf, len)) {
                (void)unlinkat(dirfd, f->name, 0); /* in the log before a crash: done */
                renamed = true;
                f->name[0] = '\0';
                continue;
            }
        } else if (f->claimed && f->at < size + staged) {
            f->name[0] = '\0'; /* staged by this writer, durable with its next commit */
            more = true;
            continue;
        }
        uint64_t index = size + staged;
        char to[128];
        char base[104];
        snprintf(base, sizeof(base), "%.100s", f->name);
        char *at = strstr(base, ".rec");
        at[4] = '\0';
        snprintf(to, sizeof(to), "%.100s.at-%" PRIu64, base, index);
        if (renameat(dirfd, f->name, dirfd, to) != 0) {
            rc = (err_set(err, errlen, "%s/%s: %s", dir, f->name, strerror(errno)), EVLOG_EIO);
            break;
        }
        renamed = true;
        snprintf(f->name, sizeof(f->name), "%s", to);
        uint64_t got = 0;
        rc = evlog_append(log, buf, len, &got);
        if (rc != 0) {
            err_set(err, errlen, "%s/%s: cannot append it (%d)", dir, f->name, rc);
            break;
        }
        claimed_now++;
        appended++;
    }
    /* The claims are durable before the commit, so a crash after it is recognised. */
    if (rc == 0 && claimed_now > 0 && fsync(dirfd) != 0) {
        rc = (err_set(err, errlen, "%s: fsync: %s", dir, strerror(errno)), EVLOG_EIO);
    }
    if (rc == 0 && claimed_now > 0) {
        rc = evlog_commit(log, err, errlen);
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            if (files[i].name[0] != '\0' && strstr(files[i].name, ".at-") != NULL) {
                (void)unlinkat(dirfd, files[i].name, 0);
            }
        }
        if (renamed) {
            (void)fsync(dirfd);
        }
    }
    free(files);
    struct stat sb;
    if (fstat(dirfd, &sb) == 0) {
        st->mtime = sb.st_mtim;
    }
    close(dirfd);
    st->leftovers = more || rc != 0 || bad[0] != '\0';
    if (rc != 0) {
        return rc;
    }
    if (bad[0] != '\0') {
        st->leftovers = false; /* set aside: not worth another look until something changes */
        return err_set(err, errlen, "%s", bad), EVLOG_EINVAL;
    }
    return appended;
}
