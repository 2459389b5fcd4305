/* evlog_fixture.h -- what the evidence log's unit tests share: a state directory holding the
 * TLOG.md test key, its removal, and flipping one byte of a file in it. Include after cmocka.h. */
#ifndef SINKD_TESTS_EVLOG_FIXTURE_H
#define SINKD_TESTS_EVLOG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define PN_SKEY                                                                                    \
    "PRIVATE+KEY+example.com/testlog+3814a360+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n"

/* A fresh /tmp/<name>.XXXXXX with keys/log.key = PN_SKEY (a static buffer: one at a time). */
static inline char *evlog_fixture_state(const char *name)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/%s.XXXXXX", name);
    assert_non_null(mkdtemp(dir));
    char keys[128], path[160];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    mkdir(keys, 0700);
    snprintf(path, sizeof path, "%s/log.key", keys);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(PN_SKEY, f);
    fclose(f);
    return dir;
}

static inline void evlog_fixture_rm(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Flips the low bit of byte `at` of dir/rel. */
static inline void evlog_fixture_flip(const char *dir, const char *rel, long at)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x01, f);
    fclose(f);
}

#endif
