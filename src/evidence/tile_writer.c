/* tile_writer.c -- the evidence log's tile writer: a thread that turns the in-memory hashes into
 * C2SP tile and entry-bundle files and publishes signed checkpoints once the tiles they name are
 * on disk, so creating files never sits on evlog_commit's path. Design in docs/evidence.md. */
/* _GNU_SOURCE: syncfs(2) and pthread_setname_np. */
#define _GNU_SOURCE
#include "evidence/log_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "evidence/files.h"
#include "util/err.h"

/* Writes path (relative to the log dir) via a temporary file and rename; durable if sync. */
static int write_file_atomic(struct evlog *log, const char *rel, const void *buf, size_t len,
                             bool sync, char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX + 160], tmp[EVLOG_PATH_MAX + 170];
    snprintf(path, sizeof path, "%s/%s", log->logdir, rel);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (evlog_mkdirs(path) != 0) {
        return evlog_sys_err(err, errlen, "mkdir", path);
    }
    *slash = '/';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return evlog_sys_err(err, errlen, "create", tmp);
    }
    if (evfile_write_all(fd, buf, len) != 0 || (sync && fsync(fd) != 0)) {
        int rc = evlog_sys_err(err, errlen, "write", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = evlog_sys_err(err, errlen, "rename", tmp);
        unlink(tmp);
        return rc;
    }
    if (sync) {
        *slash = '\0';
        int rc = evlog_fsync_dir(path);
        *slash = '/';
        if (rc != 0) {
            return evlog_sys_err(err, errlen, "fsync", path);
        }
    }
    return 0;
}

/* Removes tile/<L>/<N>.p/ once the full tile exists (C2SP tlog-tiles allows it). */
static void remove_partials(struct evlog *log, int level, uint64_t n)
{
    char rel[160], dir[EVLOG_PATH_MAX + 200];
    evlog_tile_path(level, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
    snprintf(dir, sizeof dir, "%s/%s.p", log->logdir, rel);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    int guard = 0;
    while ((de = readdir(d)) != NULL && guard++ < 1000) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char f[EVLOG_PATH_MAX + 480];
        snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
        unlink(f);
    }
    closedir(d);
    rmdir(dir);
}

int evlog_tile_slot(int level)
{
    return level < 0 ? TILE_LEVELS : level;
}

/* Writes one tile or bundle in place (no temporary file: no client asks for a tile before a
 * checkpoint names it, and the checkpoint is written only after a syncfs). Full tiles that an
 * existing checkpoint already covers are only repaired during replay, if missing or short. */
static int tile_store(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    int slot = evlog_tile_slot(j->level);
    char rel[160], path[EVLOG_PATH_MAX + 200];
    evlog_tile_path(j->level, j->n, j->width, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/%s", log->logdir, rel);
    if (log->recovering && j->width == EVLOG_TILE_WIDTH) {
        unsigned shift = EVLOG_TILE_HEIGHT * (unsigned)(j->level < 0 ? 0 : j->level) + 8;
        uint64_t end_leaf =
            shift >= 64 || (j->n + 1) > (UINT64_MAX >> shift) ? UINT64_MAX : (j->n + 1) << shift;
        struct stat st;
        if (end_leaf <= log->rewrite_from && stat(path, &st) == 0 && (size_t)st.st_size == j->len) {
            return 0; /* covered by a published checkpoint, so synced before it */
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        /* A new directory every 1000 tiles: make it only when the file cannot be created */
        char *slash = strrchr(path, '/');
        *slash = '\0';
        if (evlog_mkdirs(path) != 0) {
            return evlog_sys_err(err, errlen, "mkdir", path);
        }
        *slash = '/';
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        return evlog_sys_err(err, errlen, "create", path);
    }
    if (evfile_write_all(fd, j->data, j->len) != 0) {
        int rc = evlog_sys_err(err, errlen, "write", path);
        close(fd);
        return rc;
    }
    if (close(fd) != 0) {
        return evlog_sys_err(err, errlen, "close", path);
    }
    if (j->width == EVLOG_TILE_WIDTH) {
        if (tw->partials_of[slot] == j->n + 1 || tw->partials_of[slot] == PARTIALS_UNKNOWN) {
            remove_partials(log, j->level, j->n);
            tw->partials_of[slot] = 0;
        }
    } else {
        tw->partials_of[slot] = j->n + 1;
    }
    if (log->recovering) {
        log->tiles_written++;
    }
    return 0;
}

/* Publishes a checkpoint whose tiles were written by the jobs before it. */
static int checkpoint_store(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    /* Every tile written since the last checkpoint reaches the disk before the checkpoint that
     * commits to them is published. */
    if (syncfs(log->log_fd) != 0) {
        return evlog_sys_err(err, errlen, "syncfs", log->logdir);
    }
    char rel[64];
    snprintf(rel, sizeof rel, "checkpoints/%llu", (unsigned long long)j->size);
    int rc = write_file_atomic(log, rel, j->data, j->len, true, err, errlen);
    if (rc == 0) {
        rc = write_file_atomic(log, "checkpoint", j->data, j->len, true, err, errlen);
    }
    if (rc == 0) {
        /* Older checkpoints thinned out, if due; its failures never fail this job. */
        evlog_cp_retention_run(log, j->size);
    }
    return rc;
}

static int job_run(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    return j->kind == JOB_TILE ? tile_store(log, j, err, errlen)
                               : checkpoint_store(log, j, err, errlen);
}

static size_t job_bytes(const struct tile_job *j)
{
    return sizeof *j + j->cap;
}

void evlog_job_free(struct tile_job *j)
{
    if (j != NULL) {
        free(j->data);
        free(j);
    }
}

void evlog_jobs_push(struct job_list *l, struct tile_job *j)
{
    j->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = j;
    } else {
        l->head = j;
    }
    l->tail = j;
    l->bytes += job_bytes(j);
}

void evlog_jobs_free(struct job_list *l)
{
    while (l->head != NULL) {
        struct tile_job *j = l->head;
        l->head = j->next;
        evlog_job_free(j);
    }
    l->tail = NULL;
    l->bytes = 0;
}

void *evlog_tile_writer_main(void *arg)
{
    struct evlog *log = arg;
    struct tile_writer *tw = &log->tw;
    (void)pthread_setname_np(pthread_self(), "sinkd-tiles");
    /* Background work: when the CPUs are busy the thread that commits (and so answers bots)
     * goes first. Linux nice values are per thread; back-pressure bounds how far this one may
     * fall behind. Failure is harmless (the thread just keeps the default priority). */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), TILE_WRITER_NICE);
    pthread_mutex_lock(&tw->mu);
    for (;;) {
        while (tw->queue.head == NULL && !tw->stop) {
            pthread_cond_wait(&tw->work, &tw->mu);
        }
        if (tw->queue.head == NULL) {
            break;
        }
        /* The head stays queued while it is written: evlog_* only ever appends at the tail. */
        struct tile_job *j = tw->queue.head;
        pthread_mutex_unlock(&tw->mu);
        char msg[sizeof tw->msg];
        int rc = job_run(log, j, msg, sizeof msg);
        pthread_mutex_lock(&tw->mu);
        if (rc == 0) {
            tw->queue.head = j->next;
            if (tw->queue.head == NULL) {
                tw->queue.tail = NULL;
            }
            tw->queue.bytes -= job_bytes(j);
            if (j->kind == JOB_CHECKPOINT) {
                tw->published = j->size;
            } else {
                tw->files++;
            }
            tw->err = 0;
            evlog_job_free(j);
            pthread_cond_broadcast(&tw->idle);
            continue;
        }
        /* Disk full or an I/O error: keep the job and everything after it (a checkpoint must
         * never be published without its tiles), say so, and retry later. */
        tw->err = rc;
        tw->err_seq++;
        memcpy(tw->msg, msg, sizeof msg);
        pthread_cond_broadcast(&tw->idle);
        if (tw->stop) {
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += TILE_RETRY_MS / 1000;
        pthread_cond_timedwait(&tw->work, &tw->mu, &until);
        if (tw->stop) {
            break;
        }
    }
    pthread_mutex_unlock(&tw->mu);
    return NULL;
}

/* Hands a list of jobs to the tile writer (or, during replay, writes them now). */
int evlog_tw_submit(struct evlog *log, struct job_list *l, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    if (l->head == NULL) {
        return 0;
    }
    if (!tw->started) {
        int rc = 0;
        for (struct tile_job *j = l->head; j != NULL && rc == 0; j = j->next) {
            rc = job_run(log, j, err, errlen);
        }
        evlog_jobs_free(l);
        return rc;
    }
    pthread_mutex_lock(&tw->mu);
    if (tw->queue.tail != NULL) {
        tw->queue.tail->next = l->head;
    } else {
        tw->queue.head = l->head;
    }
    tw->queue.tail = l->tail;
    tw->queue.bytes += l->bytes;
    pthread_cond_signal(&tw->work);
    pthread_mutex_unlock(&tw->mu);
    memset(l, 0, sizeof *l);
    return 0;
}

/* Waits until the tile writer has written everything queued; a failure is returned (not
 * waited out: the writer keeps retrying on its own). */
int evlog_tw_wait_idle(struct evlog *log, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    if (!tw->started) {
        return 0;
    }
    pthread_mutex_lock(&tw->mu);
    while (tw->queue.head != NULL && tw->err == 0) {
        pthread_cond_wait(&tw->idle, &tw->mu);
    }
    int rc = tw->queue.head != NULL ? tw->err : 0;
    if (rc != 0) {
        err_set(err, errlen, "tile writer: %s", tw->msg);
    }
    pthread_mutex_unlock(&tw->mu);
    return rc;
}

void evlog_tw_stop(struct evlog *log)
{
    struct tile_writer *tw = &log->tw;
    if (tw->started) {
        pthread_mutex_lock(&tw->mu);
        tw->stop = true;
        pthread_cond_broadcast(&tw->work);
        pthread_mutex_unlock(&tw->mu);
        pthread_join(tw->thread, NULL);
        tw->started = false;
    }
    evlog_jobs_free(&tw->queue);
}

struct tile_job *evlog_job_new(enum job_kind kind, int level, uint64_t n, unsigned width)
{
    struct tile_job *j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->kind = kind;
        j->level = level;
        j->n = n;
        j->width = width;
    }
    return j;
}
