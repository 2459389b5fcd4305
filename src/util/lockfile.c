/* lockfile.c -- exclusive flock on a file in a state directory, naming its holder. */
#include "util/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "util/err.h"

/* What the file says about its holder; false when it names none (being written, or empty). */
static bool read_holder(int fd, long *pid, char *holder, size_t holderlen, bool *brief)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0) {
        return false;
    }
    buf[n] = '\0';
    char *save = NULL;
    char *line = strtok_r(buf, "\n", &save);
    if (line == NULL || sscanf(line, "pid %ld", pid) != 1 || *pid <= 0) {
        return false;
    }
    line = strtok_r(NULL, "\n", &save);
    snprintf(holder, holderlen, "%s", line != NULL ? line : "unnamed");
    line = strtok_r(NULL, "\n", &save);
    *brief = line != NULL && strcmp(line, "brief") == 0;
    return true;
}

/* "sinkd registry rebuild": the process's command (program base name and up to two words that
 * do not start with '-'), from /proc/self/cmdline. */
static void own_command(char *out, size_t outlen)
{
    snprintf(out, outlen, "sinkd");
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    char buf[512];
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    buf[n] = '\0';
    size_t len = 0;
    int words = 0;
    for (ssize_t i = 0; i < n && words < 3; words++) {
        const char *arg = buf + i;
        i += (ssize_t)strlen(arg) + 1;
        if (words == 0) {
            const char *slash = strrchr(arg, '/');
            arg = slash != NULL ? slash + 1 : arg;
        } else if (arg[0] == '-' || arg[0] == '\0') {
            break;
        }
        int w = snprintf(out + len, outlen - len, "%s%s", words ? " " : "", arg);
        if (w < 0 || (size_t)w >= outlen - len) {
            break;
        }
        len += (size_t)w;
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int lockfile_take(const char *dir, const char *name, const char *holder, bool brief, char *err,
                  size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
        return err_set(err, errlen, "%s/%s: path too long", dir, name);
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    unsigned waited_ms = 0;
    unsigned unnamed_ms = 0;
    bool confirmed = false;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            break;
        }
        int e = errno;
        if (e == EINTR) {
            continue;
        }
        if (e != EWOULDBLOCK) {
            close(fd);
            errno = e;
            return err_set(err, errlen, "%s: flock: %s", path, strerror(e));
        }
        long pid = 0;
        char who[LOCKFILE_HOLDER_MAX];
        bool holder_brief = false;
        if (!read_holder(fd, &pid, who, sizeof(who), &holder_brief)) {
            /* The holder took the lock an instant ago and is writing its name. */
            if (unnamed_ms < 500) {
                sleep_ms(10);
                unnamed_ms += 10;
                continue;
            }
            close(fd);
            errno = EWOULDBLOCK;
            return err_set(err, errlen, "%s is held by another process (it names no holder)", path);
        }
        if (holder_brief && waited_ms < LOCKFILE_BRIEF_WAIT_MS) {
            sleep_ms(20);
            waited_ms += 20;
            continue;
        }
        if (!confirmed) {
            /* The name read may be the previous holder's, if a new one took the lock an instant
             * ago: look once more before naming it. */
            confirmed = true;
            sleep_ms(20);
            continue;
        }
        close(fd);
        errno = EWOULDBLOCK;
        return err_set(err, errlen, "%s is held by pid %ld (%s)", path, pid, who);
    }
    char command[LOCKFILE_HOLDER_MAX];
    if (holder == NULL) {
        own_command(command, sizeof(command));
        holder = command;
    }
    char text[32 + LOCKFILE_HOLDER_MAX];
    int n = snprintf(text, sizeof(text), "pid %ld\n%.*s\n%s", (long)getpid(),
                     LOCKFILE_HOLDER_MAX - 1, holder, brief ? "brief\n" : "");
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "%s: writing the holder: %s", path, strerror(e));
    }
    return fd;
}

void lockfile_release(int fd)
{
    if (fd >= 0) {
        close(fd);
    }
}
