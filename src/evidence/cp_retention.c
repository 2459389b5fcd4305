/* cp_retention.c -- checkpoint retention: thins log/checkpoints/ out after a keep-all window to
 * the newest checkpoint of each UTC hour, the newest overall and every checkpoint handed to a
 * time-stamping authority or a witness, run by the tile writer after it publishes a checkpoint.
 * Why this loses no evidence: docs/evidence.md, "Checkpoint retention". */
#include "evidence/log_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

/* One checkpoint file seen by a run. */
struct cp_file {
    uint64_t size;
    int64_t hour; /* UTC hour of its mtime: floor(mtime / 3600) */
    int64_t mtime;
};

static int cmp_hour_size(const void *a, const void *b)
{
    const struct cp_file *x = a, *y = b;
    if (x->hour != y->hour) {
        return x->hour < y->hour ? -1 : 1;
    }
    return x->size < y->size ? -1 : x->size > y->size ? 1 : 0;
}

/* A checkpoint's name is its size in canonical decimal; anything else (a "<size>.tmp" being
 * renamed into place, a stray file) is not touched. */
static bool parse_size(const char *name, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; name[i] != '\0'; i++) {
        if (name[i] < '0' || name[i] > '9' || i >= 20) {
            return false;
        }
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (i == 0 || (name[0] == '0' && i > 1)) {
        return false;
    }
    *out = v;
    return true;
}

/* A checkpoint a TSA or a witness was given stays: its .tsq/.tsr or cosignature names it. */
static bool handed_out(int log_fd, uint64_t size)
{
    static const char *const fmt[] = {"timestamps/%llu.tsq", "timestamps/%llu.tsr",
                                      "cosignatures/%llu"};
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, fmt[i], (unsigned long long)size);
        /* Anything but "no such file" (EACCES, EIO) counts as present: keep when unsure. */
        if (faccessat(log_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0 || errno != ENOENT) {
            return true;
        }
    }
    return false;
}

static uint64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

/* Reads at most CP_PRUNE_SCAN_MAX checkpoint files' sizes and times. *more: the directory holds
 * more. Keeping decisions made on part of the directory are still safe: the newest checkpoint
 * of an hour is the newest of that hour in any part that holds it. */
static int scan(int dfd, struct cp_file **out, size_t *n, bool *more, char *err, size_t errlen)
{
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return err_set(err, errlen, "checkpoints/: %s", strerror(errno)), EVLOG_EIO;
    }
    size_t count = 0, cap = 0;
    struct cp_file *list = NULL;
    struct dirent *de;
    int rc = 0;
    *more = false;
    while ((de = readdir(d)) != NULL) {
        uint64_t size;
        struct stat st;
        if (!parse_size(de->d_name, &size) ||
            fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (count == CP_PRUNE_SCAN_MAX) {
            *more = true;
            break;
        }
        if (count == cap) {
            cap = cap ? cap * 2 : 1024;
            struct cp_file *l = realloc(list, cap * sizeof *l);
            if (l == NULL) {
                err_set(err, errlen, "checkpoint retention: out of memory");
                rc = EVLOG_ENOMEM;
                break;
            }
            list = l;
        }
        int64_t t = (int64_t)st.st_mtim.tv_sec;
        list[count].size = size;
        list[count].mtime = t;
        list[count].hour = t >= 0 ? t / 3600 : (t - 3599) / 3600;
        count++;
    }
    closedir(d);
    if (rc != 0) {
        free(list);
        return rc;
    }
    *out = list;
    *n = count;
    return 0;
}

void evlog_cp_retention_run(struct evlog *log, uint64_t newest_size)
{
    struct cp_retention *r = &log->retention;
    uint64_t now_mono = monotonic_s();
    if (r->keep_s == 0 || !log->tw.started || now_mono < r->next_run_s) {
        return;
    }
    int64_t cutoff = (int64_t)time(NULL) - (int64_t)r->keep_s;
    char msg[sizeof r->msg] = "";
    uint64_t removed = 0, failed = 0;
    bool more = false;
    int dfd = openat(log->log_fd, "checkpoints", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct cp_file *files = NULL;
    size_t n = 0;
    if (dfd < 0) {
        err_set(msg, sizeof msg, "checkpoint retention: %s/checkpoints: %s", log->logdir,
                strerror(errno));
        failed++;
    } else if (scan(dfd, &files, &n, &more, msg, sizeof msg) != 0) {
        failed++;
    }
    if (n > 0) {
        qsort(files, n, sizeof *files, cmp_hour_size);
    }
    for (size_t i = 0; i < n; i++) {
        const struct cp_file *f = &files[i];
        bool newest_of_hour = i + 1 == n || files[i + 1].hour != f->hour;
        if (f->mtime >= cutoff || newest_of_hour || f->size >= newest_size ||
            handed_out(log->log_fd, f->size)) {
            continue;
        }
        if (removed + failed >= CP_PRUNE_UNLINKS_MAX) {
            more = true; /* bounded work per run: the rest next run */
            break;
        }
        char name[24];
        snprintf(name, sizeof name, "%llu", (unsigned long long)f->size);
        if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT) {
            removed++;
        } else {
            if (failed++ == 0) {
                err_set(msg, sizeof msg,
                        "checkpoint retention: cannot remove %s/checkpoints/%s: %s", log->logdir,
                        name, strerror(errno));
            }
        }
    }
    free(files);
    if (dfd >= 0) {
        close(dfd);
    }
    /* A run that stopped at a bound (a directory that grew before retention was on) goes on
     * soon; otherwise the next one waits: new checkpoints age out only by the minute. */
    r->next_run_s = now_mono + (more && failed == 0 ? CP_PRUNE_AGAIN_S : CP_PRUNE_EVERY_S);
    pthread_mutex_lock(&log->tw.mu);
    r->removed += removed;
    if (failed > 0) {
        /* Reported once per streak of failing runs (evlog_cp_retention_error). */
        if (!r->failing) {
            r->err_seq++;
            if (failed > 1) {
                size_t len = strlen(msg);
                snprintf(msg + len, sizeof msg - len, " (and %llu more)",
                         (unsigned long long)(failed - 1));
            }
            memcpy(r->msg, msg, sizeof msg);
        }
        r->failing = true;
    } else {
        r->failing = false;
    }
    pthread_mutex_unlock(&log->tw.mu);
}

int evlog_cp_retention_error(struct evlog *log, char *err, size_t errlen)
{
    struct cp_retention *r = &log->retention;
    int rc = 0;
    pthread_mutex_lock(&log->tw.mu);
    if (r->err_seq != r->err_seen) {
        r->err_seen = r->err_seq;
        err_set(err, errlen, "%s (checkpoints are still published; reported once)", r->msg);
        rc = EVLOG_EIO;
    }
    pthread_mutex_unlock(&log->tw.mu);
    return rc;
}

uint64_t evlog_checkpoints_removed(struct evlog *log)
{
    pthread_mutex_lock(&log->tw.mu);
    uint64_t n = log->retention.removed;
    pthread_mutex_unlock(&log->tw.mu);
    return n;
}
