/* files.c -- file helpers of the evidence module's offline tools (see files.h). */
#include "evidence/files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/log.h"
#include "util/err.h"

int evfile_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

bool evfile_exists(const char *dir, const char *rel)
{
    char path[EVLOG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    struct stat st;
    return stat(path, &st) == 0;
}

int evfile_read(const char *dir, const char *rel, char **out, size_t *len, size_t max, char *err,
                size_t errlen)
{
    char path[EVLOG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno)), EVLOG_EIO;
    }
    char *buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        return EVLOG_ENOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return err_set(err, errlen, "%s: read error", path), EVLOG_EIO;
    }
    if (n > max) {
        free(buf);
        return err_set(err, errlen, "%s: larger than %zu bytes", path, max), EVLOG_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int evfile_write_new(const char *dir, const char *rel, const void *buf, size_t len, char *err,
                     size_t errlen)
{
    char path[EVLOG_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno)), EVLOG_EIO;
    }
    if (evfile_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "%s: %s", path, strerror(e)), EVLOG_EIO;
    }
    close(fd);
    return 0;
}

int evfile_write_durable(const char *dir, const char *rel, const void *buf, size_t len, int replace,
                         char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX + 64], tmp[EVLOG_PATH_MAX + 72];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return err_set(err, errlen, "%s: %s", tmp, strerror(errno)), EVLOG_EIO;
    }
    if (evfile_write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return err_set(err, errlen, "%s: %s", tmp, strerror(e)), EVLOG_EIO;
    }
    close(fd);
    /* link() fails if the name exists, so "never replace" holds even against a concurrent
     * writer of the same file. */
    int rc = replace ? rename(tmp, path) : link(tmp, path);
    int e = errno;
    if (!replace || rc != 0) {
        unlink(tmp);
    }
    if (rc != 0) {
        if (!replace && e == EEXIST) {
            return err_set(err, errlen, "%s: exists already (never replaced)", path), EVLOG_EINVAL;
        }
        return err_set(err, errlen, "%s: %s", path, strerror(e)), EVLOG_EIO;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        e = errno;
        if (dfd >= 0) {
            close(dfd);
        }
        return err_set(err, errlen, "%s: fsync: %s", dir, strerror(e)), EVLOG_EIO;
    }
    close(dfd);
    return 0;
}

int evfile_latest_size(const char *log_dir, uint64_t *size, char *err, size_t errlen)
{
    char *note;
    size_t len;
    int rc = evfile_read(log_dir, "checkpoint", &note, &len, EVLOG_NOTE_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    /* The checkpoint text is the note up to its blank line. */
    char *blank = strstr(note, "\n\n");
    struct evlog_checkpoint cp = {0};
    char e[256] = "not a signed note";
    rc = blank == NULL ? EVLOG_EINVAL
                       : evlog_checkpoint_parse(note, (size_t)(blank - note) + 1, &cp, e, sizeof e);
    free(note);
    if (rc != 0) {
        return err_set(err, errlen, "%s/checkpoint: %s", log_dir, e), EVLOG_EINVAL;
    }
    *size = cp.size;
    return 0;
}

bool evfile_parse_sized_name(const char *name, const char *suffix, uint64_t *size)
{
    size_t n = strlen(name), s = strlen(suffix);
    if (n <= s || n - s > 20 || strcmp(name + n - s, suffix) != 0 ||
        strspn(name, "0123456789") != n - s || (name[0] == '0' && n - s > 1)) {
        return false;
    }
    char digits[21];
    memcpy(digits, name, n - s);
    digits[n - s] = '\0';
    errno = 0;
    unsigned long long v = strtoull(digits, NULL, 10);
    if (errno != 0) {
        return false;
    }
    *size = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define LIST_SIZES_MAX (1u << 24) /* files listed at most (one per checkpoint) */

int evfile_list_sizes(const char *dir, const char *suffix, uint64_t **out, size_t *n, char *err,
                      size_t errlen)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0
                               : (err_set(err, errlen, "%s: %s", dir, strerror(errno)), EVLOG_EIO);
    }
    size_t cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t size;
        if (!evfile_parse_sized_name(de->d_name, suffix, &size)) {
            continue;
        }
        if (*n == cap) {
            size_t grown_cap = cap ? cap * 2 : 64;
            uint64_t *grown =
                grown_cap <= LIST_SIZES_MAX ? realloc(*out, grown_cap * sizeof **out) : NULL;
            if (grown == NULL) {
                err_set(err, errlen, "%s: too many files", dir);
                rc = EVLOG_EFULL;
                break;
            }
            *out = grown;
            cap = grown_cap;
        }
        (*out)[(*n)++] = size;
    }
    closedir(d);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) {
        qsort(*out, *n, sizeof **out, cmp_u64);
    }
    return 0;
}
