/* cosign.c -- witness cosignatures of checkpoints (C2SP tlog-witness, tlog-cosignature): the
 * add-checkpoint request a witness needs (old size, consistency proof, checkpoint), the checks
 * its reply must pass, and log/cosignatures/<size>, the checkpoint with every witness's line.
 * A witness that cosigned size N promises it never cosigns a tree inconsistent with it, so a log
 * that showed one history to a court and another to a foreign CERT would be caught. */
#include "evidence/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "evidence/files.h"
#include "util/err.h"

#define COSIG_DIR "cosignatures"
static const char em_dash[] = "\xe2\x80\x94 ";

/* Reads the note at rel ("checkpoints/<size>" or "cosignatures/<size>"). */
static int read_note(const char *log_dir, const char *kind, uint64_t size, char **note, size_t *len,
                     char *err, size_t errlen)
{
    char rel[64];
    snprintf(rel, sizeof rel, "%s/%llu", kind, (unsigned long long)size);
    return evfile_read(log_dir, rel, note, len, EVLOG_NOTE_MAX, err, errlen);
}

/* True if the file is the checkpoint followed only by signature lines (the same signed text and
 * the log's own signature, byte for byte, so it cannot vouch for another checkpoint). */
static bool extends_checkpoint(const char *cosigned, size_t clen, const char *cp, size_t cplen)
{
    return clen >= cplen && memcmp(cosigned, cp, cplen) == 0;
}

/* True if one of buf's lines (after the first) is exactly line[0:ll]. */
static bool has_line(const char *buf, size_t len, const char *line, size_t ll)
{
    for (size_t i = 0; i + 1 + ll < len; i++) {
        if (buf[i] == '\n' && buf[i + 1 + ll] == '\n' && memcmp(buf + i + 1, line, ll) == 0) {
            return true;
        }
    }
    return false;
}

/* True if line[0:ll] is a signature line of the key named `name`. */
static bool line_by(const char *line, size_t ll, const char *name)
{
    size_t pl = sizeof em_dash - 1, nlen = strlen(name);
    return ll > pl + nlen && memcmp(line, em_dash, pl) == 0 && memcmp(line + pl, name, nlen) == 0 &&
           line[pl + nlen] == ' ';
}

/* True if the note has a signature line of the key named `name`. */
static bool note_has_line_by(const char *note, size_t len, const char *name)
{
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(note + pos, '\n', len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - note - pos) : len - pos;
        if (line_by(note + pos, ll, name)) {
            return true;
        }
        pos += ll + 1;
    }
    return false;
}

/* The largest size in log/cosignatures/ whose file carries a valid cosignature by w; 0 if none. */
static int last_cosigned(const char *log_dir, const struct evlog_verifier *w, uint64_t *out,
                         char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" COSIG_DIR, log_dir);
    uint64_t *sizes;
    size_t n;
    int rc = evfile_list_sizes(dir, "", &sizes, &n, err, errlen);
    *out = 0;
    for (size_t i = n; rc == 0 && i-- > 0 && *out == 0;) {
        char *note, e[256];
        size_t len, tl;
        if (read_note(log_dir, COSIG_DIR, sizes[i], &note, &len, e, sizeof e) == 0) {
            if (evlog_note_open(note, len, w, &tl, e, sizeof e) == 0) {
                *out = sizes[i];
            }
            free(note);
        }
    }
    free(sizes);
    return rc;
}

int evlog_witness_request(const char *log_dir, const struct evlog_verifier *w, uint64_t size,
                          uint64_t old, uint64_t *size_out, uint64_t *old_out, char **body,
                          size_t *len, char *err, size_t errlen)
{
    *body = NULL;
    if (!w->witness) {
        return err_set(err, errlen, "%s is not a witness key (type 0x04)", w->name), EVLOG_EINVAL;
    }
    char *note;
    size_t nlen;
    int rc;
    if (size == 0) {
        rc = evfile_latest_size(log_dir, &size, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    if (old == UINT64_MAX) {
        rc = last_cosigned(log_dir, w, &old, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    *size_out = size;
    *old_out = old;
    if (old == size && old != 0) {
        return 1; /* this witness cosigned this very checkpoint already */
    }
    if (old > size) {
        return err_set(err, errlen, "the witness has cosigned size %llu, beyond checkpoint %llu",
                       (unsigned long long)old, (unsigned long long)size),
               EVLOG_EINVAL;
    }
    rc = read_note(log_dir, "checkpoints", size, &note, &nlen, err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE];
    size_t n = 0;
    if (old > 0) {
        struct evlog_tile_reader *tr;
        rc = evlog_tile_reader_open(&tr, log_dir, size, err, errlen);
        if (rc == 0) {
            rc = evlog_prove_consistency(evlog_tile_reader_hash, tr, old, size, proof, &n, err,
                                         errlen);
            evlog_tile_reader_close(tr);
        }
        if (rc != 0) {
            free(note);
            return rc;
        }
    }
    /* "old N\n", one base64 hash per line, an empty line, the checkpoint (C2SP tlog-witness). */
    size_t cap = 32 + n * 46 + 1 + nlen + 1;
    char *b = malloc(cap);
    if (b == NULL) {
        free(note);
        return EVLOG_ENOMEM;
    }
    size_t off = (size_t)snprintf(b, cap, "old %llu\n", (unsigned long long)old);
    for (size_t i = 0; i < n; i++) {
        off += (size_t)EVP_EncodeBlock((unsigned char *)b + off, proof[i], EVLOG_HASH_SIZE);
        b[off++] = '\n';
    }
    b[off++] = '\n';
    memcpy(b + off, note, nlen);
    off += nlen;
    free(note);
    *body = b;
    *len = off;
    return 0;
}

int evlog_witness_store(const char *log_dir, uint64_t size, const struct evlog_verifier *w,
                        const char *reply, size_t reply_len, uint64_t *time_out, char *err,
                        size_t errlen)
{
    char *cp, *current;
    size_t cplen, curlen;
    int rc = read_note(log_dir, "checkpoints", size, &cp, &cplen, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char e[256];
    if (read_note(log_dir, COSIG_DIR, size, &current, &curlen, e, sizeof e) != 0) {
        current = cp;
        curlen = cplen;
        cp = NULL;
    } else if (!extends_checkpoint(current, curlen, cp, cplen)) {
        free(cp);
        free(current);
        return err_set(err, errlen, COSIG_DIR "/%llu: does not start with checkpoints/%llu",
                       (unsigned long long)size, (unsigned long long)size),
               EVLOG_ECORRUPT;
    }
    free(cp);
    /* Keep only the reply's lines that name this witness; a reply is bounded by the note. */
    size_t cap = curlen + reply_len + 2;
    char *merged = cap <= 2 * EVLOG_NOTE_MAX ? malloc(cap) : NULL;
    if (merged == NULL) {
        free(current);
        return err_set(err, errlen, "witness reply: %zu bytes (at most %d)", reply_len,
                       EVLOG_NOTE_MAX),
               EVLOG_EINVAL;
    }
    memcpy(merged, current, curlen);
    size_t mlen = curlen, added = 0;
    free(current);
    for (size_t pos = 0; pos < reply_len;) {
        const char *line = reply + pos;
        const char *nl = memchr(line, '\n', reply_len - pos);
        size_t ll = nl != NULL ? (size_t)(nl - line) : reply_len - pos;
        pos += ll + 1;
        if (line_by(line, ll, w->name) && !has_line(merged, mlen, line, ll)) {
            memcpy(merged + mlen, line, ll);
            mlen += ll;
            merged[mlen++] = '\n';
            added++;
        }
    }
    size_t tl;
    uint64_t when = 0;
    rc = added == 0
             ? (err_set(e, sizeof e, "no new cosignature line by %s", w->name), EVLOG_EVERIFY)
             : evlog_note_open_at(merged, mlen, w, &tl, &when, e, sizeof e);
    if (rc == 0) {
        char dir[EVLOG_PATH_MAX + 16], rel[32];
        snprintf(dir, sizeof dir, "%s/" COSIG_DIR, log_dir);
        snprintf(rel, sizeof rel, "%llu", (unsigned long long)size);
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            err_set(err, errlen, "%s: %s", dir, strerror(errno));
            rc = EVLOG_EIO;
        } else {
            rc = evfile_write_durable(dir, rel, merged, mlen, 1, err, errlen);
        }
    } else {
        err_set(err, errlen, "witness reply: %s", e);
    }
    free(merged);
    if (rc == 0 && time_out != NULL) {
        *time_out = when;
    }
    return rc;
}

/* One cosignatures/<size> file against checkpoints/<size> and the witness keys. */
static int check_cosigned(const char *log_dir, uint64_t size, const struct evlog_verifier *ws,
                          size_t nw, bool *seen, int *count,
                          void (*each)(void *ctx, uint64_t size, const struct evlog_verifier *w,
                                       uint64_t time),
                          void *ctx, char *err, size_t errlen)
{
    char *note, *cp, e[256];
    size_t len, cplen;
    int rc = read_note(log_dir, COSIG_DIR, size, &note, &len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (read_note(log_dir, "checkpoints", size, &cp, &cplen, e, sizeof e) != 0) {
        free(note);
        return err_set(err, errlen, COSIG_DIR "/%llu: %s", (unsigned long long)size, e),
               EVLOG_EVERIFY;
    }
    if (!extends_checkpoint(note, len, cp, cplen)) {
        err_set(err, errlen, COSIG_DIR "/%llu: is not checkpoints/%llu plus cosignatures",
                (unsigned long long)size, (unsigned long long)size);
        rc = EVLOG_EVERIFY;
    }
    free(cp);
    for (size_t i = 0; rc == 0 && i < nw; i++) {
        size_t tl;
        uint64_t when;
        if (evlog_note_open_at(note, len, &ws[i], &tl, &when, e, sizeof e) == 0) {
            seen[i] = true;
            (*count)++;
            if (each != NULL) {
                each(ctx, size, &ws[i], when);
            }
        } else if (note_has_line_by(note, len, ws[i].name)) {
            /* The witness's line is there and does not verify: tampering. */
            err_set(err, errlen, COSIG_DIR "/%llu: the line of witness %s does not verify (%s)",
                    (unsigned long long)size, ws[i].name, e);
            rc = EVLOG_EVERIFY;
        }
    }
    free(note);
    return rc;
}

int evlog_cosignatures_verify_dir(const char *log_dir, const struct evlog_verifier *ws, size_t nw,
                                  void (*each)(void *ctx, uint64_t size,
                                               const struct evlog_verifier *w, uint64_t time),
                                  void *ctx, char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" COSIG_DIR, log_dir);
    uint64_t *sizes;
    size_t n;
    int rc = evfile_list_sizes(dir, "", &sizes, &n, err, errlen);
    if (rc != 0) {
        return rc;
    }
    bool *seen = calloc(nw + 1, sizeof *seen);
    int count = 0;
    rc = seen == NULL ? EVLOG_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = check_cosigned(log_dir, sizes[i], ws, nw, seen, &count, each, ctx, err, errlen);
    }
    for (size_t i = 0; rc == 0 && i < nw; i++) {
        if (!seen[i]) {
            err_set(err, errlen, "witness %s cosigned no checkpoint in %s", ws[i].name, dir);
            rc = EVLOG_EVERIFY;
        }
    }
    free(seen);
    free(sizes);
    return rc != 0 ? rc : count;
}
