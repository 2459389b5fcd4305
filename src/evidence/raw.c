/* raw.c -- the content-addressed store of message bodies behind `serve --keep-raw` (raw.h),
 * and its offline check against the log. */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */
#include "evidence/raw.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "event/event.h"
#include "evidence/files.h"
#include "evidence/log.h"
#include "util/err.h"
#include "util/hex.h"
#include "util/keyset.h"

#define RAW_STATFS_EVERY 256 /* stores between two free-space readings */
/* Hashes known to be kept, by the first 16 bytes, so the bodies every session repeats (the
 * empty poll, a bot's own machine-info) cost no path lookup: bench/throughput.sh spent ~5 % of
 * the server's CPU in faccessat without it. Direct-mapped; a slot read while another thread
 * writes it can only fail to match. */
#define RAW_RECENT 4096

struct raw_store {
    int dirfd; /* state/raw */
    struct raw_store_config cfg;
    atomic_uint_fast64_t tmp_seq;
    atomic_uint_fast64_t stored, stored_bytes, duplicates, skipped, since_statfs;
    atomic_bool full; /* the run's budget is spent: for good */
    atomic_bool low;  /* the disk was short of its reserve at the last reading: until it is not */
    atomic_int last_errno;
    _Atomic uint64_t recent[RAW_RECENT][2];
};

static uint64_t half(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static _Atomic uint64_t *recent_slot(struct raw_store *s, const uint8_t sha256[32])
{
    return s->recent[(sha256[30] | (unsigned)sha256[31] << 8) % RAW_RECENT];
}

static bool recently_kept(struct raw_store *s, const uint8_t sha256[32])
{
    _Atomic uint64_t *slot = recent_slot(s, sha256);
    return atomic_load_explicit(&slot[0], memory_order_relaxed) == half(sha256) &&
           atomic_load_explicit(&slot[1], memory_order_relaxed) == half(sha256 + 8);
}

static void remember_kept(struct raw_store *s, const uint8_t sha256[32])
{
    _Atomic uint64_t *slot = recent_slot(s, sha256);
    /* Half a key at a time: a reader between the two stores sees a key that matches nothing. */
    atomic_store_explicit(&slot[0], 0, memory_order_relaxed);
    atomic_store_explicit(&slot[1], half(sha256 + 8), memory_order_relaxed);
    atomic_store_explicit(&slot[0], half(sha256), memory_order_relaxed);
}

void raw_name(const uint8_t sha256[32], char out[RAW_NAME_LEN])
{
    hex_encode(sha256, 1, out);
    out[2] = '/';
    hex_encode(sha256, 32, out + 3);
}

bool raw_parse_name(const char *name, uint8_t sha256[32])
{
    if (strlen(name) != RAW_NAME_LEN - 1 || name[2] != '/' ||
        hex_decode(name + 3, sha256, 32) != 0) {
        return false;
    }
    char first[3];
    hex_encode(sha256, 1, first);
    return memcmp(first, name, 2) == 0;
}

int raw_store_open(struct raw_store **out, const char *state_dir,
                   const struct raw_store_config *cfg, char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/" RAW_DIR, state_dir) >= sizeof(path)) {
        return err_set(err, errlen, "keep-raw: state directory path too long");
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return err_set(err, errlen, "keep-raw: %s: %s", path, strerror(errno));
    }
    int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        return err_set(err, errlen, "keep-raw: %s: %s", path, strerror(errno));
    }
    for (unsigned i = 0; i < 256; i++) {
        char sub[3];
        uint8_t b = (uint8_t)i;
        hex_encode(&b, 1, sub);
        if (mkdirat(dirfd, sub, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            close(dirfd);
            return err_set(err, errlen, "keep-raw: %s/%s: %s", path, sub, strerror(e));
        }
    }
    struct raw_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        close(dirfd);
        return err_set(err, errlen, "keep-raw: out of memory");
    }
    s->dirfd = dirfd;
    s->cfg = *cfg;
    *out = s;
    return 0;
}

static int skip(struct raw_store *s, int e)
{
    atomic_fetch_add(&s->skipped, 1);
    if (e != 0) {
        atomic_store(&s->last_errno, e);
    }
    return -1;
}

/* Whether the budget and the filesystem's reserve still allow len more bytes. The budget, once
 * spent, stays spent; the reserve is read again every RAW_STATFS_EVERY attempts, so capture
 * resumes when space returns. */
static bool room_for(struct raw_store *s, size_t len)
{
    if (atomic_load(&s->full)) {
        return false;
    }
    uint64_t used = atomic_load(&s->stored_bytes);
    if (s->cfg.max_bytes > 0 && used + len > s->cfg.max_bytes) {
        atomic_store(&s->full, true);
        return false;
    }
    if (s->cfg.reserve_bytes > 0 && atomic_fetch_add(&s->since_statfs, 1) % RAW_STATFS_EVERY == 0) {
        struct statfs fs;
        if (fstatfs(s->dirfd, &fs) == 0) {
            atomic_store(&s->low,
                         (uint64_t)fs.f_bavail * (uint64_t)fs.f_bsize < s->cfg.reserve_bytes + len);
        }
    }
    return !atomic_load(&s->low);
}

int raw_store_put(struct raw_store *s, const uint8_t sha256[32], const uint8_t *body, size_t len)
{
    if (recently_kept(s, sha256)) {
        atomic_fetch_add(&s->duplicates, 1);
        return 0;
    }
    char name[RAW_NAME_LEN];
    raw_name(sha256, name);
    /* Kept by an earlier run, or pushed out of the recent table: one lookup. */
    if (faccessat(s->dirfd, name, F_OK, 0) == 0) {
        remember_kept(s, sha256);
        atomic_fetch_add(&s->duplicates, 1);
        return 0;
    }
    if (!room_for(s, len)) {
        return skip(s, 0);
    }
    /* Written under a temporary name in the same subdirectory and renamed without replacing:
     * a body is either absent or whole under its hash, and two workers storing the same body
     * at once leave one file. */
    char tmp[RAW_NAME_LEN + 32];
    snprintf(tmp, sizeof(tmp), "%.2s/.tmp-%d-%llu", name, (int)getpid(),
             (unsigned long long)atomic_fetch_add(&s->tmp_seq, 1));
    int fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return skip(s, errno);
    }
    int rc = evfile_write_all(fd, body, len);
    int e = rc != 0 ? errno : 0;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && renameat2(s->dirfd, tmp, s->dirfd, name, RENAME_NOREPLACE) != 0) {
        e = errno;
        rc = -1;
    }
    if (rc != 0) {
        unlinkat(s->dirfd, tmp, 0);
        if (e == EEXIST) { /* another worker kept it first */
            remember_kept(s, sha256);
            atomic_fetch_add(&s->duplicates, 1);
            return 0;
        }
        return skip(s, e);
    }
    remember_kept(s, sha256);
    atomic_fetch_add(&s->stored, 1);
    atomic_fetch_add(&s->stored_bytes, len);
    return 1;
}

void raw_store_stats(struct raw_store *s, struct raw_store_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL) {
        return;
    }
    out->stored = atomic_load(&s->stored);
    out->stored_bytes = atomic_load(&s->stored_bytes);
    out->duplicates = atomic_load(&s->duplicates);
    out->skipped = atomic_load(&s->skipped);
    out->full = atomic_load(&s->full) || atomic_load(&s->low);
    out->last_errno = atomic_load(&s->last_errno);
}

void raw_store_close(struct raw_store *s)
{
    if (s != NULL) {
        close(s->dirfd);
        free(s);
    }
}

/* ---- offline check ------------------------------------------------------------------------ */

struct check_ctx {
    struct raw_check_result *res;
    raw_check_report_fn report;
    void *ctx;
    const struct keyset *referenced; /* first 16 bytes of every contact's body hash */
    struct keyset *kept;             /* ... of every intact file */
};

/* SHA-256 of a file of at most RAW_BODY_MAX bytes. 0, or -1 with why set. */
static int hash_file(int dirfd, const char *name, uint8_t out[32], uint64_t *size, const char **why)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        *why = "not a regular file";
        return -1;
    }
    if (st.st_size > RAW_BODY_MAX) {
        close(fd);
        *why = "larger than any body";
        return -1;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? 0 : -1;
    uint8_t buf[65536];
    uint64_t total = 0;
    while (rc == 0) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            *why = strerror(errno);
            rc = -1;
            break;
        }
        if (n == 0) {
            break;
        }
        total += (uint64_t)n;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
            rc = -1;
        }
    }
    if (rc == 0 && EVP_DigestFinal_ex(md, out, NULL) != 1) {
        rc = -1;
    }
    if (rc != 0 && *why == NULL) {
        *why = "cannot hash";
    }
    EVP_MD_CTX_free(md);
    close(fd);
    *size = total;
    return rc;
}

static void found_bad(struct check_ctx *c, const char *path, const char *why, bool damaged)
{
    if (damaged) {
        c->res->damaged++;
    } else {
        c->res->stray++;
    }
    if (c->report != NULL) {
        c->report(c->ctx, path, why);
    }
}

static int check_subdir(struct check_ctx *c, int rawfd, const char *sub, char *err, size_t errlen)
{
    int fd = openat(rawfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return err_set(err, errlen, RAW_DIR "/%s: %s", sub, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        char rel[RAW_NAME_LEN + 256];
        snprintf(rel, sizeof(rel), "%s/%s", sub, de->d_name);
        char path[sizeof(rel) + 8];
        snprintf(path, sizeof(path), RAW_DIR "/%s", rel);
        uint8_t want[32], got[32];
        if (!raw_parse_name(rel, want)) {
            found_bad(c, path, "not a body's name (a temporary file left by a crash?)", false);
            continue;
        }
        uint64_t size = 0;
        const char *why = NULL;
        if (hash_file(fd, de->d_name, got, &size, &why) != 0) {
            found_bad(c, path, why, true);
            continue;
        }
        if (memcmp(want, got, 32) != 0) {
            found_bad(c, path, "content does not hash to its name", true);
            continue;
        }
        c->res->files++;
        c->res->bytes += size;
        if (c->kept != NULL && keyset_add(c->kept, want) < 0) {
            closedir(d);
            return err_set(err, errlen, "raw check: out of memory");
        }
        if (c->referenced != NULL && !keyset_contains(c->referenced, want)) {
            c->res->unreferenced++;
        }
    }
    closedir(d);
    return 0;
}

/* Every contact's body hash, from the durable log. */
static int read_contacts(const char *state_dir, struct keyset *referenced, uint64_t *contacts,
                         char *err, size_t errlen)
{
    struct evlog_reader *r;
    if (evlog_reader_open(&r, state_dir, 0, err, errlen) < 0) {
        return -1;
    }
    int rc;
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    while ((rc = evlog_reader_next(r, &entry, &len, &index, err, errlen)) > 0) {
        struct record rec;
        char why[128];
        if (event_decode(entry, len, &rec, why, sizeof(why)) != 0 || rec.kind != RECORD_CONTACT) {
            continue; /* `sinkd verify` judges the log itself */
        }
        (*contacts)++;
        if (keyset_add(referenced, rec.u.contact.body_sha256) < 0) {
            rc = err_set(err, errlen, "raw check: out of memory");
            break;
        }
    }
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}

/* Second pass over the log: how many contacts (and distinct bodies) have their body kept. */
static int count_kept(const char *state_dir, const struct keyset *kept,
                      struct raw_check_result *res, char *err, size_t errlen)
{
    struct evlog_reader *r;
    if (evlog_reader_open(&r, state_dir, 0, err, errlen) < 0) {
        return -1;
    }
    struct keyset seen = {0};
    int rc = 0;
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    uint64_t n = 0;
    /* Only as far as the first pass read: the server may have appended since. */
    while (n < res->contacts &&
           (rc = evlog_reader_next(r, &entry, &len, &index, err, errlen)) > 0) {
        struct record rec;
        char why[128];
        if (event_decode(entry, len, &rec, why, sizeof(why)) != 0 || rec.kind != RECORD_CONTACT) {
            continue;
        }
        n++;
        const uint8_t *h = rec.u.contact.body_sha256;
        bool is_kept = keyset_contains(kept, h);
        res->with_body += is_kept;
        int added = keyset_add(&seen, h);
        if (added < 0) {
            rc = err_set(err, errlen, "raw check: out of memory");
            break;
        }
        if (added == 1) {
            res->distinct_bodies++;
            res->distinct_missing += !is_kept;
        }
        rc = 0;
    }
    keyset_free(&seen);
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}

int raw_check_dir(const char *dir, const struct keyset *referenced, struct keyset *kept,
                  struct raw_check_result *out, raw_check_report_fn report, void *ctx, char *err,
                  size_t errlen)
{
    struct check_ctx c = {
        .res = out, .report = report, .ctx = ctx, .referenced = referenced, .kept = kept};
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/" RAW_DIR, dir) >= sizeof(path)) {
        return err_set(err, errlen, "raw check: directory path too long");
    }
    int rawfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rawfd < 0) {
        return err_set(err, errlen, "%s: %s (was serve run with --keep-raw?)", path,
                       strerror(errno));
    }
    int dfd = dup(rawfd);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (d == NULL) {
        int e = errno;
        if (dfd >= 0) {
            close(dfd);
        }
        close(rawfd);
        return err_set(err, errlen, "%s: %s", path, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
            continue;
        }
        uint8_t b;
        if (strlen(de->d_name) != 2 || hex_decode(de->d_name, &b, 1) != 0) {
            char bad[sizeof(de->d_name) + 8];
            snprintf(bad, sizeof(bad), RAW_DIR "/%s", de->d_name);
            found_bad(&c, bad, "not a body subdirectory", false);
            continue;
        }
        rc = check_subdir(&c, rawfd, de->d_name, err, errlen);
    }
    closedir(d);
    close(rawfd);
    return rc;
}

int raw_check(const char *state_dir, struct raw_check_result *out, raw_check_report_fn report,
              void *ctx, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct keyset referenced = {0}, kept = {0};
    int rc = read_contacts(state_dir, &referenced, &out->contacts, err, errlen);
    if (rc == 0) {
        rc = raw_check_dir(state_dir, &referenced, &kept, out, report, ctx, err, errlen);
    }
    if (rc == 0) {
        rc = count_kept(state_dir, &kept, out, err, errlen);
    }
    keyset_free(&referenced);
    keyset_free(&kept);
    return rc;
}

/* The kept body named sha256 under dir/raw, read whole and hashed to its name: 1 (*body is
 * malloc'd), 0 not kept, -1 unreadable or damaged (err says which). rel gets its path. */
static int read_kept_body(const char *dir, const uint8_t sha256[32], char rel[RAW_NAME_LEN + 8],
                          char **body, size_t *len, char *err, size_t errlen)
{
    char name[RAW_NAME_LEN];
    raw_name(sha256, name);
    snprintf(rel, RAW_NAME_LEN + 8, RAW_DIR "/%s", name);
    *body = NULL;
    if (!evfile_exists(dir, rel)) {
        return 0;
    }
    if (evfile_read(dir, rel, body, len, RAW_BODY_MAX, err, errlen) != 0) {
        return -1;
    }
    uint8_t got[32];
    unsigned int dlen = 0;
    if (EVP_Digest(*body, *len, got, &dlen, EVP_sha256(), NULL) != 1 ||
        memcmp(got, sha256, 32) != 0) {
        free(*body);
        *body = NULL;
        return err_set(err, errlen, "%s/%s: content does not hash to its name", dir, rel);
    }
    return 1;
}

int raw_copy(const char *from_dir, const char *to_dir, const uint8_t sha256[32], char *err,
             size_t errlen)
{
    char rel[RAW_NAME_LEN + 8], *body;
    size_t len = 0;
    int rc = read_kept_body(from_dir, sha256, rel, &body, &len, err, errlen);
    if (rc <= 0) {
        return rc;
    }
    rc = 0;
    char sub[4096];
    snprintf(sub, sizeof(sub), "%s/" RAW_DIR, to_dir);
    if (rc == 0 && mkdir(sub, 0755) != 0 && errno != EEXIST) {
        rc = err_set(err, errlen, "%s: %s", sub, strerror(errno));
    }
    snprintf(sub, sizeof(sub), "%s/%.6s", to_dir, rel); /* raw/ab */
    if (rc == 0 && mkdir(sub, 0755) != 0 && errno != EEXIST) {
        rc = err_set(err, errlen, "%s: %s", sub, strerror(errno));
    }
    if (rc == 0 && !evfile_exists(to_dir, rel) &&
        evfile_write_new(to_dir, rel, body, len, err, errlen) != 0) {
        rc = -1;
    }
    free(body);
    return rc == 0 ? 1 : -1;
}

/* ---- re-reading kept bodies ---------------------------------------------------------------- */

/* The first identity field that differs, or NULL. */
static const char *identity_diff(const struct bot_identity *a, const struct bot_identity *b,
                                 const char **va, const char **vb)
{
    const struct {
        const char *name;
        const char *x, *y;
    } fields[] = {
        {"host", a->host, b->host},
        {"user", a->user, b->user},
        {"os", a->os, b->os},
        {"local_ip", a->local_ip, b->local_ip},
        {"campaign", a->campaign, b->campaign},
        {"version", a->version, b->version},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        if (strcmp(fields[i].x, fields[i].y) != 0) {
            *va = fields[i].x;
            *vb = fields[i].y;
            return fields[i].name;
        }
    }
    return NULL;
}

/* One machine-info contact against its kept body. */
static void reparse_one(const char *state_dir, uint64_t index, const struct contact *c,
                        raw_identity_fn parse, void *parse_ctx, raw_mismatch_fn report,
                        void *report_ctx, struct raw_reparse_result *out)
{
    char rel[RAW_NAME_LEN + 8], *body, e[256];
    size_t len = 0;
    int kept = read_kept_body(state_dir, c->body_sha256, rel, &body, &len, e, sizeof(e));
    if (kept == 0) {
        out->missing_body++;
        return;
    }
    if (kept < 0) {
        out->damaged++;
        if (report != NULL) {
            report(report_ctx, index, "body", rel + 7, "(damaged: does not hash to its name)");
        }
        return;
    }
    struct bot_identity again;
    memset(&again, 0, sizeof(again));
    int rc = parse(parse_ctx, c->family, (const uint8_t *)body, len, &again);
    free(body);
    if (rc > 0) {
        out->unknown_family++;
        return;
    }
    out->reparsed++;
    const char *va = "", *vb = "(no identity)";
    const char *field = rc < 0 ? "identity" : identity_diff(&c->bot, &again, &va, &vb);
    if (field == NULL) {
        out->matched++;
        return;
    }
    out->mismatched++;
    if (report != NULL) {
        report(report_ctx, index, field, rc < 0 ? c->bot.host : va, vb);
    }
}

int raw_reparse(const char *state_dir, raw_identity_fn parse, void *parse_ctx,
                raw_mismatch_fn report, void *report_ctx, struct raw_reparse_result *out, char *err,
                size_t errlen)
{
    memset(out, 0, sizeof(*out));
    struct evlog_reader *r;
    if (evlog_reader_open(&r, state_dir, 0, err, errlen) < 0) {
        return -1;
    }
    struct record *rec = malloc(sizeof(*rec));
    if (rec == NULL) {
        evlog_reader_close(r);
        return err_set(err, errlen, "raw reparse: out of memory");
    }
    int rc;
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    while ((rc = evlog_reader_next(r, &entry, &len, &index, err, errlen)) > 0) {
        char why[128];
        if (event_decode(entry, len, rec, why, sizeof(why)) != 0 || rec->kind != RECORD_CONTACT ||
            rec->u.contact.msg_type != CONTACT_MSG_MACHINE_INFO) {
            continue;
        }
        out->identified++;
        reparse_one(state_dir, index, &rec->u.contact, parse, parse_ctx, report, report_ctx, out);
    }
    free(rec);
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}
