/* note.c -- C2SP signed notes with Ed25519, x/mod sumdb/note key text formats, checkpoints. */
#include "evidence/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "util/err.h"

/* C2SP signed-note: signature lines start with U+2014 EM DASH and a space. */
static const char sig_prefix[] = "\xe2\x80\x94 ";
#define SIG_PREFIX_LEN 4
#define ED25519_TYPE 0x01
#define COSIGNATURE_TYPE 0x04 /* C2SP tlog-cosignature: Ed25519 cosignature/v1 */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Standard base64 with '=' padding. Returns the encoded length or -1 if cap is too small. */
static int b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t need = 4 * ((len + 2) / 3);
    if (need + 1 > cap) {
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= in[i + 2];
        }
        out[o++] = b64chars[(v >> 18) & 63];
        out[o++] = b64chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64chars[v & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_value(char c)
{
    const char *p = c != '\0' ? strchr(b64chars, c) : NULL;
    return p != NULL ? (int)(p - b64chars) : -1;
}

/* Strict decoder: length a multiple of 4, padding only at the end, unused bits zero (so every
 * byte string has exactly one accepted encoding). Returns decoded length or -1. */
static int b64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 != 0) {
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (in[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0) {
                return -1;
            }
            v[j] = b64_value(in[i + j]);
            if (v[j] < 0) {
                return -1;
            }
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | v[3];
        size_t nb = 3 - (size_t)pad;
        if (pad == 2 && (x & 0xffff) != 0) {
            return -1;
        }
        if (pad == 1 && (x & 0xff) != 0) {
            return -1;
        }
        if (o + nb > cap) {
            return -1;
        }
        out[o++] = (uint8_t)(x >> 16);
        if (nb > 1) {
            out[o++] = (uint8_t)(x >> 8);
        }
        if (nb > 2) {
            out[o++] = (uint8_t)x;
        }
    }
    return (int)o;
}

bool evlog_key_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > EVLOG_NAME_MAX) {
        return false;
    }
    /* C2SP signed-note: no Unicode spaces and no '+'; we accept printable ASCII only. */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c >= 0x7f || c == '+') {
            return false;
        }
    }
    return true;
}

static uint32_t key_id(const char *name, uint8_t type, const uint8_t pub[32])
{
    /* C2SP signed-note: key ID = SHA-256(name || 0x0A || type || pubkey)[:4], big-endian. */
    uint8_t buf[EVLOG_NAME_MAX + 2 + 32], h[32];
    size_t n = strlen(name);
    /* buf is hash input, not a C string: the name's bytes are followed by 0x0A, not NUL. */
    memcpy(buf, name, n); /* NOLINT(bugprone-not-null-terminated-result) */
    buf[n] = '\n';
    buf[n + 1] = type;
    memcpy(buf + n + 2, pub, 32);
    unsigned int hl = 0;
    EVP_Digest(buf, n + 34, h, &hl, EVP_sha256(), NULL);
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int evlog_signer_from_seed(const char *name, const uint8_t seed[32], struct evlog_signer *out,
                           char *err, size_t errlen)
{
    if (!evlog_key_name_valid(name)) {
        err_set(err, errlen, "invalid key name '%.64s' (printable, no spaces, no '+')", name);
        return EVLOG_EINVAL;
    }
    memset(out, 0, sizeof *out);
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    size_t publen = 32;
    if (pk == NULL || EVP_PKEY_get_raw_public_key(pk, out->pub, &publen) != 1 || publen != 32) {
        EVP_PKEY_free(pk);
        err_set(err, errlen, "libcrypto: cannot derive the Ed25519 public key");
        return EVLOG_ECRYPTO;
    }
    EVP_PKEY_free(pk);
    snprintf(out->name, sizeof out->name, "%s", name);
    memcpy(out->seed, seed, 32);
    out->keyid = key_id(name, ED25519_TYPE, out->pub);
    return 0;
}

void evlog_signer_verifier(const struct evlog_signer *s, struct evlog_verifier *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", s->name);
    out->keyid = s->keyid;
    out->witness = false;
    memcpy(out->pub, s->pub, 32);
}

/* Splits "<name>+<hex8>+<base64>" (the common tail of both key formats). */
static int parse_key_tail(const char *text, size_t len, char name[EVLOG_NAME_MAX + 1],
                          uint32_t *keyid, uint8_t *type, uint8_t key[32], char *err, size_t errlen)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
        len--;
    }
    const char *p1 = memchr(text, '+', len);
    if (p1 == NULL) {
        err_set(err, errlen, "key: missing '+' after the name");
        return EVLOG_EINVAL;
    }
    size_t nlen = (size_t)(p1 - text);
    if (nlen == 0 || nlen > EVLOG_NAME_MAX) {
        err_set(err, errlen, "key: name empty or longer than %d bytes", EVLOG_NAME_MAX);
        return EVLOG_EINVAL;
    }
    memcpy(name, text, nlen);
    name[nlen] = '\0';
    if (strlen(name) != nlen || !evlog_key_name_valid(name)) {
        err_set(err, errlen, "key: invalid name");
        return EVLOG_EINVAL;
    }
    const char *hex = p1 + 1;
    size_t rest = len - nlen - 1;
    if (rest < 10 || hex[8] != '+') {
        err_set(err, errlen, "key: expected 8 hex digits of key ID after the name");
        return EVLOG_EINVAL;
    }
    uint32_t id = 0;
    for (int i = 0; i < 8; i++) {
        char c = hex[i];
        int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
        if (v < 0) {
            err_set(err, errlen, "key: key ID must be 8 lowercase hex digits");
            return EVLOG_EINVAL;
        }
        id = id << 4 | (uint32_t)v;
    }
    uint8_t raw[40];
    int n = b64_decode(hex + 9, rest - 9, raw, sizeof raw);
    if (n != 33 || (raw[0] != ED25519_TYPE && raw[0] != COSIGNATURE_TYPE)) {
        err_set(err, errlen,
                "key: expected base64 of 0x01 (log) or 0x04 (witness) followed by a 32-byte "
                "Ed25519 key");
        return EVLOG_EINVAL;
    }
    *type = raw[0];
    *keyid = id;
    memcpy(key, raw + 1, 32);
    return 0;
}

int evlog_signer_parse(const char *text, size_t len, struct evlog_signer *out, char *err,
                       size_t errlen)
{
    static const char pfx[] = "PRIVATE+KEY+";
    if (len < sizeof pfx - 1 || memcmp(text, pfx, sizeof pfx - 1) != 0) {
        err_set(err, errlen, "signer key: must start with PRIVATE+KEY+");
        return EVLOG_EINVAL;
    }
    char name[EVLOG_NAME_MAX + 1];
    uint32_t id;
    uint8_t seed[32], type = 0;
    int rc = parse_key_tail(text + sizeof pfx - 1, len - (sizeof pfx - 1), name, &id, &type, seed,
                            err, errlen);
    if (rc == 0 && type != ED25519_TYPE) {
        err_set(err, errlen, "signer key: not an Ed25519 log key (type %u)", type);
        rc = EVLOG_EINVAL;
    }
    if (rc != 0) {
        memset(seed, 0, sizeof seed);
        return rc;
    }
    rc = evlog_signer_from_seed(name, seed, out, err, errlen);
    if (rc == 0 && out->keyid != id) {
        err_set(err, errlen, "signer key: key ID %08x does not match the key (%08x)", id,
                out->keyid);
        rc = EVLOG_EINVAL;
    }
    if (rc != 0) {
        memset(out, 0, sizeof *out);
    }
    memset(seed, 0, sizeof seed);
    return rc;
}

int evlog_verifier_parse(const char *text, size_t len, struct evlog_verifier *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    uint8_t type = 0;
    int rc = parse_key_tail(text, len, out->name, &out->keyid, &type, out->pub, err, errlen);
    if (rc != 0) {
        return rc;
    }
    out->witness = type == COSIGNATURE_TYPE;
    if (key_id(out->name, type, out->pub) != out->keyid) {
        err_set(err, errlen, "verifier key: key ID %08x does not match the key", out->keyid);
        return EVLOG_EINVAL;
    }
    return 0;
}

static int format_key(const char *pfx, const char *name, uint32_t keyid, uint8_t type,
                      const uint8_t key[32], char *out, size_t cap)
{
    uint8_t raw[33];
    raw[0] = type;
    memcpy(raw + 1, key, 32);
    char b64[64];
    b64_encode(raw, sizeof raw, b64, sizeof b64);
    int n = snprintf(out, cap, "%s%s+%08x+%s", pfx, name, keyid, b64);
    return (n < 0 || (size_t)n >= cap) ? EVLOG_EINVAL : n;
}

int evlog_signer_format(const struct evlog_signer *s, char *out, size_t cap)
{
    return format_key("PRIVATE+KEY+", s->name, s->keyid, ED25519_TYPE, s->seed, out, cap);
}

int evlog_verifier_format(const struct evlog_verifier *v, char *out, size_t cap)
{
    return format_key("", v->name, v->keyid, v->witness ? COSIGNATURE_TYPE : ED25519_TYPE, v->pub,
                      out, cap);
}

static int read_small_file(const char *path, char *buf, size_t cap, size_t *len, char *err,
                           size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return EVLOG_EIO;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - 1 - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            err_set(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return EVLOG_EIO;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
        if (got == cap - 1) {
            err_set(err, errlen, "%s: longer than %zu bytes", path, cap - 1);
            close(fd);
            return EVLOG_EINVAL;
        }
    }
    close(fd);
    buf[got] = '\0';
    *len = got;
    return 0;
}

int evlog_signer_load(const char *path, struct evlog_signer *out, char *err, size_t errlen)
{
    char buf[512], e[256];
    size_t len;
    int rc = read_small_file(path, buf, sizeof buf, &len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char *nl = memchr(buf, '\n', len);
    rc = evlog_signer_parse(buf, nl != NULL ? (size_t)(nl - buf) : len, out, e, sizeof e);
    memset(buf, 0, sizeof buf);
    if (rc != 0) {
        err_set(err, errlen, "%s: %s", path, e);
    }
    return rc;
}

int evlog_verifier_load(const char *path, struct evlog_verifier *out, char *err, size_t errlen)
{
    char buf[512], e[256];
    size_t len;
    int rc = read_small_file(path, buf, sizeof buf, &len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char *nl = memchr(buf, '\n', len);
    rc = evlog_verifier_parse(buf, nl != NULL ? (size_t)(nl - buf) : len, out, e, sizeof e);
    if (rc != 0) {
        err_set(err, errlen, "%s: %s", path, e);
    }
    return rc;
}

/* C2SP signed-note: text is UTF-8 ending in '\n' with no control characters but '\n'. */
static bool note_text_valid(const char *text, size_t len)
{
    if (len == 0 || text[len - 1] != '\n') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

int evlog_note_sign(const struct evlog_signer *s, const char *text, size_t len, char *out,
                    size_t cap, char *err, size_t errlen)
{
    if (!note_text_valid(text, len)) {
        err_set(err, errlen, "note text must be non-empty, end in a newline, no control bytes");
        return EVLOG_EINVAL;
    }
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->seed, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t sig[4 + 64];
    size_t siglen = 64;
    /* RFC 8032 Ed25519 (pure, no pre-hash): the digest argument must be NULL. */
    int ok = pk != NULL && ctx != NULL && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
             EVP_DigestSign(ctx, sig + 4, &siglen, (const uint8_t *)text, len) == 1 && siglen == 64;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    if (!ok) {
        err_set(err, errlen, "libcrypto: Ed25519 signing failed");
        return EVLOG_ECRYPTO;
    }
    sig[0] = (uint8_t)(s->keyid >> 24);
    sig[1] = (uint8_t)(s->keyid >> 16);
    sig[2] = (uint8_t)(s->keyid >> 8);
    sig[3] = (uint8_t)s->keyid;
    char b64[128];
    b64_encode(sig, sizeof sig, b64, sizeof b64);
    int n = snprintf(out, cap, "%.*s\n%s%s %s\n", (int)len, text, sig_prefix, s->name, b64);
    if (n < 0 || (size_t)n >= cap) {
        err_set(err, errlen, "signed note longer than %zu bytes", cap);
        return EVLOG_EINVAL;
    }
    return n;
}

static bool ed25519_verify(const uint8_t pub[32], const char *msg, size_t len,
                           const uint8_t sig[64])
{
    EVP_PKEY *pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = pk != NULL && ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1 &&
              EVP_DigestVerify(ctx, sig, 64, (const uint8_t *)msg, len) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return ok;
}

/* C2SP tlog-cosignature: the witness signs "cosignature/v1\ntime <T>\n" followed by the note
 * text; its signature bytes are keyid || T (u64, big-endian) || Ed25519 signature. */
static bool cosignature_verify(const uint8_t pub[32], const char *text, size_t len,
                               const uint8_t raw[76], uint64_t *time_out)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++) {
        t = t << 8 | raw[4 + i];
    }
    char head[64];
    int hl = snprintf(head, sizeof head, "cosignature/v1\ntime %llu\n", (unsigned long long)t);
    char *msg = malloc((size_t)hl + len);
    if (msg == NULL) {
        return false;
    }
    memcpy(msg, head, (size_t)hl);
    memcpy(msg + hl, text, len);
    bool ok = ed25519_verify(pub, msg, (size_t)hl + len, raw + 12);
    free(msg);
    *time_out = t;
    return ok;
}

int evlog_note_open(const char *note, size_t len, const struct evlog_verifier *v, size_t *text_len,
                    char *err, size_t errlen)
{
    uint64_t unused;
    return evlog_note_open_at(note, len, v, text_len, &unused, err, errlen);
}

int evlog_note_open_at(const char *note, size_t len, const struct evlog_verifier *v,
                       size_t *text_len, uint64_t *cosigned_at, char *err, size_t errlen)
{
    if (len > EVLOG_NOTE_MAX) {
        err_set(err, errlen, "note longer than %d bytes", EVLOG_NOTE_MAX);
        return EVLOG_EINVAL;
    }
    if (memchr(note, '\0', len) != NULL) {
        err_set(err, errlen, "note contains a NUL byte");
        return EVLOG_EINVAL;
    }
    /* The text/signature split is the LAST "\n\n" (C2SP signed-note). */
    size_t split = 0;
    bool found = false;
    for (size_t i = len; i >= 2; i--) {
        if (note[i - 2] == '\n' && note[i - 1] == '\n') {
            split = i - 1; /* text = note[0:split], includes its final '\n' */
            found = true;
            break;
        }
    }
    if (!found || !note_text_valid(note, split)) {
        err_set(err, errlen, "note: no valid text followed by a blank line");
        return EVLOG_EINVAL;
    }
    if (note[len - 1] != '\n') {
        err_set(err, errlen, "note: signature block does not end in a newline");
        return EVLOG_EINVAL;
    }
    size_t pos = split + 1, nsigs = 0;
    bool verified = false;
    while (pos < len) {
        const char *line = note + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = (size_t)(nl - line);
        if (++nsigs > EVLOG_SIGS_MAX) {
            err_set(err, errlen, "note: more than %d signatures", EVLOG_SIGS_MAX);
            return EVLOG_EINVAL;
        }
        if (ll < SIG_PREFIX_LEN || memcmp(line, sig_prefix, SIG_PREFIX_LEN) != 0) {
            err_set(err, errlen, "note: signature line %zu does not start with an em dash", nsigs);
            return EVLOG_EINVAL;
        }
        const char *name = line + SIG_PREFIX_LEN;
        const char *sp = memchr(name, ' ', ll - SIG_PREFIX_LEN);
        if (sp == NULL || sp == name) {
            err_set(err, errlen, "note: signature line %zu has no key name", nsigs);
            return EVLOG_EINVAL;
        }
        size_t nlen = (size_t)(sp - name);
        uint8_t raw[128];
        int n = b64_decode(sp + 1, (size_t)(line + ll - sp - 1), raw, sizeof raw);
        if (n < 5) {
            err_set(err, errlen, "note: signature line %zu is not valid base64", nsigs);
            return EVLOG_EINVAL;
        }
        uint32_t id =
            (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
        if (v != NULL && id == v->keyid && nlen == strlen(v->name) &&
            memcmp(name, v->name, nlen) == 0) {
            /* A known key: its signature MUST verify or the whole note is rejected. */
            bool ok = v->witness
                          ? n == 76 && cosignature_verify(v->pub, note, split, raw, cosigned_at)
                          : n == 68 && ed25519_verify(v->pub, note, split, raw + 4);
            if (!ok) {
                err_set(err, errlen, "note: %s by %s does not verify",
                        v->witness ? "cosignature" : "signature", v->name);
                return EVLOG_EVERIFY;
            }
            verified = true;
        }
        pos += ll + 1;
    }
    if (!verified) {
        err_set(err, errlen, "note: no signature by the known key %s+%08x",
                v != NULL ? v->name : "(none)", v != NULL ? v->keyid : 0);
        return EVLOG_EVERIFY;
    }
    *text_len = split;
    return 0;
}

int evlog_checkpoint_format(const struct evlog_checkpoint *c, char *out, size_t cap)
{
    char b64[48];
    b64_encode(c->root, EVLOG_HASH_SIZE, b64, sizeof b64);
    int n = snprintf(out, cap, "%s\n%llu\n%s\n", c->origin, (unsigned long long)c->size, b64);
    return (n < 0 || (size_t)n >= cap) ? EVLOG_EINVAL : n;
}

int evlog_checkpoint_parse(const char *text, size_t len, struct evlog_checkpoint *out, char *err,
                           size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *lines[3];
    size_t lens[3];
    size_t pos = 0;
    for (int i = 0; i < 3; i++) {
        const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
        if (nl == NULL) {
            err_set(err, errlen, "checkpoint: missing line %d", i + 1);
            return EVLOG_EINVAL;
        }
        lines[i] = text + pos;
        lens[i] = (size_t)(nl - (text + pos));
        pos += lens[i] + 1;
    }
    if (lens[0] == 0 || lens[0] > EVLOG_NAME_MAX) {
        err_set(err, errlen, "checkpoint: origin line empty or too long");
        return EVLOG_EINVAL;
    }
    memcpy(out->origin, lines[0], lens[0]);
    out->origin[lens[0]] = '\0';
    if (strlen(out->origin) != lens[0]) {
        err_set(err, errlen, "checkpoint: NUL in origin");
        return EVLOG_EINVAL;
    }
    /* C2SP tlog-checkpoint: ASCII decimal, no leading zeros. */
    if (lens[1] == 0 || lens[1] > 20 || (lens[1] > 1 && lines[1][0] == '0')) {
        err_set(err, errlen, "checkpoint: tree size must be decimal without leading zeros");
        return EVLOG_EINVAL;
    }
    uint64_t size = 0;
    for (size_t i = 0; i < lens[1]; i++) {
        char c = lines[1][i];
        if (c < '0' || c > '9' || size > (UINT64_MAX - (uint64_t)(c - '0')) / 10) {
            err_set(err, errlen, "checkpoint: bad tree size");
            return EVLOG_EINVAL;
        }
        size = size * 10 + (uint64_t)(c - '0');
    }
    out->size = size;
    if (b64_decode(lines[2], lens[2], out->root, EVLOG_HASH_SIZE) != EVLOG_HASH_SIZE) {
        err_set(err, errlen, "checkpoint: root hash is not base64 of 32 bytes");
        return EVLOG_EINVAL;
    }
    /* Extension lines (if any) must be non-empty. */
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        if (nl == NULL || nl == text + pos) {
            err_set(err, errlen, "checkpoint: empty or unterminated extension line");
            return EVLOG_EINVAL;
        }
        pos = (size_t)(nl - text) + 1;
    }
    return 0;
}

int evlog_checkpoint_open(const char *note, size_t len, const struct evlog_verifier *v,
                          struct evlog_checkpoint *out, char *err, size_t errlen)
{
    if (v->witness) {
        err_set(err, errlen, "%s is a witness key, not the log's key", v->name);
        return EVLOG_EINVAL;
    }
    size_t tl;
    int rc = evlog_note_open(note, len, v, &tl, err, errlen);
    if (rc != 0) {
        return rc;
    }
    rc = evlog_checkpoint_parse(note, tl, out, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (strcmp(out->origin, v->name) != 0) {
        err_set(err, errlen, "checkpoint: origin '%s' differs from the key name '%s'", out->origin,
                v->name);
        return EVLOG_EVERIFY;
    }
    return 0;
}

static int write_key_file(const char *path, const char *text, mode_t mode, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return EVLOG_EIO;
    }
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    if (n != (ssize_t)len || fsync(fd) != 0) {
        err_set(err, errlen, "%s: write failed: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return EVLOG_EIO;
    }
    close(fd);
    return 0;
}

int evlog_keygen(const char *keys_dir, const char *origin, char *err, size_t errlen)
{
    if (!evlog_key_name_valid(origin)) {
        err_set(err, errlen, "invalid log name '%.64s' (printable, no spaces, no '+')", origin);
        return EVLOG_EINVAL;
    }
    if (mkdir(keys_dir, 0700) != 0 && errno != EEXIST) {
        err_set(err, errlen, "%s: %s", keys_dir, strerror(errno));
        return EVLOG_EIO;
    }
    char kpath[EVLOG_PATH_MAX], vpath[EVLOG_PATH_MAX];
    snprintf(kpath, sizeof kpath, "%s/log.key", keys_dir);
    snprintf(vpath, sizeof vpath, "%s/log.vkey", keys_dir);
    /* Checked before a key is made: either file there means a key pair exists (or half of
     * one), and a new pair beside it would split the log's identity. */
    if (access(kpath, F_OK) == 0 || access(vpath, F_OK) == 0) {
        err_set(err, errlen, "%s already holds %s: refusing to make a new key pair beside it",
                keys_dir,
                access(kpath, F_OK) == 0 ? "a signing key (log.key)"
                                         : "a public key (log.vkey) without its private key");
        return EVLOG_EINVAL;
    }
    uint8_t seed[32];
    if (RAND_priv_bytes(seed, sizeof seed) != 1) {
        err_set(err, errlen, "libcrypto: no randomness for the key");
        return EVLOG_ECRYPTO;
    }
    struct evlog_signer s;
    struct evlog_verifier v;
    char ktext[512], vtext[512];
    int rc = evlog_signer_from_seed(origin, seed, &s, err, errlen);
    memset(seed, 0, sizeof seed);
    if (rc != 0) {
        return rc;
    }
    evlog_signer_verifier(&s, &v);
    int kn = evlog_signer_format(&s, ktext, sizeof ktext - 1);
    int vn = evlog_verifier_format(&v, vtext, sizeof vtext - 1);
    memset(&s, 0, sizeof s);
    if (kn < 0 || vn < 0) {
        memset(ktext, 0, sizeof ktext);
        return err_set(err, errlen, "key name too long"), EVLOG_EINVAL;
    }
    memcpy(ktext + kn, "\n", 2);
    memcpy(vtext + vn, "\n", 2);
    rc = write_key_file(kpath, ktext, 0600, err, errlen);
    memset(ktext, 0, sizeof ktext);
    if (rc != 0) {
        return rc;
    }
    rc = write_key_file(vpath, vtext, 0644, err, errlen);
    if (rc != 0) {
        unlink(kpath);
        return rc;
    }
    int dfd = open(keys_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
