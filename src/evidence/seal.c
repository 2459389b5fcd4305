/* seal.c -- personal fields sealed per record under epoch keys (AES-256-GCM, HKDF-SHA256 from
 * OpenSSL), the epoch key files, and their erasure. Format and key schedule in seal.h. */
#include "evidence/seal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "event/event.h"
#include "evidence/log.h"
#include "util/err.h"

#define SEAL_INFO_RECORD "sinkd seal v1"
#define SEAL_INFO_BOT_REF "sinkd bot-ref v1"
#define SEAL_PLAIN_MAX 1152 /* personal TLVs of one record (an access scope is the largest) */

/* ---- which fields are personal ------------------------------------------------------------ */

bool seal_tag_personal(uint8_t kind, uint8_t tag)
{
    switch (kind) {
    case RECORD_CONTACT: /* src, host, user, local_ip, bot_key */
        return tag == 3 || tag == 10 || tag == 11 || tag == 13 || tag == 16;
    case RECORD_HEARTBEATS: /* src, bot_key */
        return tag == 3 || tag == 16;
    case RECORD_DECISION: /* src, bot_key */
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return tag == 3 || tag == 32;
    case RECORD_ACCESS: /* scope: may name a bot key or an address */
        return tag == 47;
    default:
        return false;
    }
}

static bool bot_key_tag(uint8_t kind, uint8_t tag)
{
    return ((kind == RECORD_CONTACT || kind == RECORD_HEARTBEATS) && tag == 16) ||
           ((kind == RECORD_DECISION || kind == RECORD_COMMAND_SENT ||
             kind == RECORD_COMMAND_FAILED) &&
            tag == 32);
}

/* The key a bot known only by its address is counted by (event_bot_key over its address and
 * family, as the registry counts it), so that its sealed records carry a per-epoch pseudonym too
 * and stay countable once the epoch is erased. Callers no family decoded are no bots: none. */
static bool anonymous_bot_key(const uint8_t *in, size_t len, char out[33])
{
    struct record rec;
    if (event_decode(in, len, &rec, NULL, 0) != 0) {
        return false;
    }
    struct contact anon;
    memset(&anon, 0, sizeof(anon));
    if (rec.kind == RECORD_CONTACT) {
        if (rec.u.contact.msg_type == CONTACT_MSG_UNDECODED || rec.u.contact.bot_key[0] != '\0') {
            return false;
        }
        anon.src = rec.u.contact.src;
        memcpy(anon.family, rec.u.contact.family, sizeof(anon.family));
    } else if (rec.kind == RECORD_HEARTBEATS) {
        if (rec.u.heartbeats.bot_key[0] != '\0') {
            return false;
        }
        anon.src = rec.u.heartbeats.src;
        memcpy(anon.family, rec.u.heartbeats.family, sizeof(anon.family));
    } else {
        return false;
    }
    if (anon.src.family != AF_INET && anon.src.family != AF_INET6) {
        return false;
    }
    event_bot_key(&anon, out);
    return out[0] != '\0';
}

/* ---- TLV walking -------------------------------------------------------------------------- */

struct tlv {
    uint8_t tag;
    size_t off; /* of the tag byte */
    size_t len; /* of the value */
};

#define SEAL_TLVS_MAX 64

/* Splits a record (after its 2-byte header) into TLVs; -1 if malformed or too many. */
static int tlv_split(const uint8_t *in, size_t len, size_t from, struct tlv *t, size_t *n)
{
    size_t pos = from, k = 0;
    while (pos < len) {
        if (len - pos < 3 || k == SEAL_TLVS_MAX) {
            return -1;
        }
        size_t flen = ((size_t)in[pos + 1] << 8) | in[pos + 2];
        if (flen == 0 || flen > len - pos - 3) {
            return -1;
        }
        t[k++] = (struct tlv){in[pos], pos, flen};
        pos += 3 + flen;
    }
    *n = k;
    return 0;
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* The record's time (tag 1, 8 bytes), 0 if absent. */
static uint64_t tlv_time(const uint8_t *in, const struct tlv *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].tag == 1 && t[i].len == 8) {
            return be64(in + t[i].off + 3);
        }
    }
    return 0;
}

int seal_inspect(const uint8_t *in, size_t len, uint32_t *epoch, uint64_t *time_us)
{
    struct tlv t[SEAL_TLVS_MAX];
    size_t n = 0;
    if (len < 2 || in[0] != EVENT_RECORD_VERSION || tlv_split(in, len, 2, t, &n) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (t[i].tag == EVENT_TAG_SEAL_EPOCH) {
            if (t[i].len != 8) {
                return -1;
            }
            const uint8_t *v = in + t[i].off + 3;
            *epoch = ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) | ((uint32_t)v[2] << 8) | v[3];
            *time_us = tlv_time(in, t, n);
            return 1;
        }
    }
    return 0;
}

/* ---- crypto ------------------------------------------------------------------------------- */

struct seal_crypto {
    EVP_KDF_CTX *kdf;
    EVP_CIPHER *gcm;
    EVP_CIPHER_CTX *cipher;
};

static int crypto_init(struct seal_crypto *c)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    c->kdf = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    /* The digest and mode once: set per call, the digest is fetched again for every record
     * (~2 us of the ~5 us sealing cost, measured with bench/evidence.sh). */
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_end(),
    };
    if (c->kdf != NULL && EVP_KDF_CTX_set_params(c->kdf, params) != 1) {
        EVP_KDF_CTX_free(c->kdf);
        c->kdf = NULL;
    }
    c->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    c->cipher = EVP_CIPHER_CTX_new();
    return c->kdf != NULL && c->gcm != NULL && c->cipher != NULL ? 0 : -1;
}

static void crypto_free(struct seal_crypto *c)
{
    EVP_KDF_CTX_free(c->kdf);
    EVP_CIPHER_free(c->gcm);
    EVP_CIPHER_CTX_free(c->cipher);
}

/* HKDF-Expand-SHA256(key, info, outlen) (RFC 5869 §2.3: the epoch key is already uniformly
 * random, so no extract step). */
static int hkdf_expand(struct seal_crypto *c, const uint8_t key[SEAL_KEY_SIZE], const uint8_t *info,
                       size_t infolen, uint8_t *out, size_t outlen)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, SEAL_KEY_SIZE),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
        OSSL_PARAM_construct_end(),
    };
    return EVP_KDF_derive(c->kdf, out, outlen, params) == 1 ? 0 : -1;
}

static int record_key(struct seal_crypto *c, const uint8_t epoch_key[SEAL_KEY_SIZE], uint64_t index,
                      uint64_t time_us, uint8_t key[SEAL_KEY_SIZE], uint8_t nonce[SEAL_NONCE_SIZE])
{
    uint8_t info[sizeof(SEAL_INFO_RECORD) - 1 + 16];
    memcpy(info, SEAL_INFO_RECORD, sizeof(SEAL_INFO_RECORD) - 1);
    put_be64(info + sizeof(SEAL_INFO_RECORD) - 1, index);
    put_be64(info + sizeof(SEAL_INFO_RECORD) - 1 + 8, time_us);
    uint8_t out[SEAL_KEY_SIZE + SEAL_NONCE_SIZE];
    if (hkdf_expand(c, epoch_key, info, sizeof(info), out, sizeof(out)) != 0) {
        return -1;
    }
    memcpy(key, out, SEAL_KEY_SIZE);
    memcpy(nonce, out + SEAL_KEY_SIZE, SEAL_NONCE_SIZE);
    OPENSSL_cleanse(out, sizeof(out));
    return 0;
}

static int bot_ref(struct seal_crypto *c, const uint8_t epoch_key[SEAL_KEY_SIZE],
                   const uint8_t *bot_key, size_t len, uint8_t out[EVENT_SEAL_BOT_REF_SIZE])
{
    uint8_t info[sizeof(SEAL_INFO_BOT_REF) - 1 + 64];
    if (len > 64) {
        return -1;
    }
    memcpy(info, SEAL_INFO_BOT_REF, sizeof(SEAL_INFO_BOT_REF) - 1);
    memcpy(info + sizeof(SEAL_INFO_BOT_REF) - 1, bot_key, len);
    return hkdf_expand(c, epoch_key, info, sizeof(SEAL_INFO_BOT_REF) - 1 + len, out,
                       EVENT_SEAL_BOT_REF_SIZE);
}

static int gcm_seal(struct seal_crypto *c, const uint8_t key[SEAL_KEY_SIZE],
                    const uint8_t nonce[SEAL_NONCE_SIZE], const uint8_t *aad, size_t aadlen,
                    const uint8_t *pt, size_t ptlen, uint8_t *out)
{
    int n = 0, m = 0;
    if (EVP_EncryptInit_ex2(c->cipher, c->gcm, key, nonce, NULL) != 1 ||
        EVP_EncryptUpdate(c->cipher, NULL, &n, aad, (int)aadlen) != 1 ||
        EVP_EncryptUpdate(c->cipher, out, &n, pt, (int)ptlen) != 1 ||
        EVP_EncryptFinal_ex(c->cipher, out + n, &m) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->cipher, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_SIZE, out + ptlen) != 1) {
        return -1;
    }
    return 0;
}

static int gcm_open(struct seal_crypto *c, const uint8_t key[SEAL_KEY_SIZE],
                    const uint8_t nonce[SEAL_NONCE_SIZE], const uint8_t *aad, size_t aadlen,
                    const uint8_t *ct, size_t ctlen, uint8_t *out)
{
    if (ctlen < SEAL_TAG_SIZE) {
        return -1;
    }
    size_t ptlen = ctlen - SEAL_TAG_SIZE;
    int n = 0, m = 0;
    if (EVP_DecryptInit_ex2(c->cipher, c->gcm, key, nonce, NULL) != 1 ||
        EVP_DecryptUpdate(c->cipher, NULL, &n, aad, (int)aadlen) != 1 ||
        EVP_DecryptUpdate(c->cipher, out, &n, ct, (int)ptlen) != 1 ||
        EVP_CIPHER_CTX_ctrl(c->cipher, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_SIZE, (void *)(ct + ptlen)) !=
            1 ||
        EVP_DecryptFinal_ex(c->cipher, out + n, &m) != 1) {
        return -1;
    }
    return 0;
}

/* ---- epoch key files ---------------------------------------------------------------------- */

uint32_t seal_key_id(const uint8_t key[SEAL_KEY_SIZE])
{
    static const char label[] = "sinkd epoch key id v1";
    uint8_t buf[sizeof(label) - 1 + SEAL_KEY_SIZE], h[32];
    memcpy(buf, label, sizeof(label) - 1);
    memcpy(buf + sizeof(label) - 1, key, SEAL_KEY_SIZE);
    unsigned int hl = 0;
    EVP_Digest(buf, sizeof(buf), h, &hl, EVP_sha256(), NULL);
    OPENSSL_cleanse(buf, sizeof(buf));
    return ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
}

static bool parse_u32_line(const char **p, const char *end, const char *word, uint32_t *out)
{
    size_t wl = strlen(word);
    if ((size_t)(end - *p) <= wl || memcmp(*p, word, wl) != 0 || (*p)[wl] != ' ') {
        return false;
    }
    const char *q = *p + wl + 1;
    uint64_t v = 0;
    size_t digits = 0;
    while (q < end && *q >= '0' && *q <= '9' && digits < 11) {
        v = v * 10 + (uint64_t)(*q - '0');
        q++;
        digits++;
    }
    if (digits == 0 || q == end || *q != '\n' || v == 0 || v > UINT32_MAX ||
        ((*p)[wl + 1] == '0')) {
        return false;
    }
    *out = (uint32_t)v;
    *p = q + 1;
    return true;
}

int seal_epoch_parse(const char *text, size_t len, struct seal_epoch_file *out, char *err,
                     size_t errlen)
{
    static const char key_magic[] = "sinkd epoch key v1\n";
    static const char erased_magic[] = "sinkd epoch erased v1\n";
    memset(out, 0, sizeof(*out));
    const char *p = text, *end = text + len;
    if (len > SEAL_FILE_MAX) {
        return err_set(err, errlen, "longer than %d bytes", SEAL_FILE_MAX);
    }
    if (len >= sizeof(key_magic) - 1 && memcmp(p, key_magic, sizeof(key_magic) - 1) == 0) {
        p += sizeof(key_magic) - 1;
    } else if (len >= sizeof(erased_magic) - 1 &&
               memcmp(p, erased_magic, sizeof(erased_magic) - 1) == 0) {
        p += sizeof(erased_magic) - 1;
        out->erased = true;
    } else {
        return err_set(err, errlen, "not an epoch key file (first line)");
    }
    if (!parse_u32_line(&p, end, "start", &out->start) ||
        !parse_u32_line(&p, end, "end", &out->end) || out->end <= out->start) {
        return err_set(err, errlen, "bad start or end line");
    }
    if (out->erased) {
        uint32_t at = 0;
        if (!parse_u32_line(&p, end, "erased", &at) || p != end) {
            return err_set(err, errlen, "bad erased line");
        }
        out->erased_at = at;
        return 0;
    }
    /* "key " + 44 base64 characters + "\n" */
    if (end - p != 4 + 44 + 1 || memcmp(p, "key ", 4) != 0 || p[48] != '\n') {
        return err_set(err, errlen, "bad key line");
    }
    /* EVP_DecodeBlock counts the padding: 44 characters ending in one '=' decode to 33. */
    uint8_t raw[36];
    int n = EVP_DecodeBlock(raw, (const unsigned char *)p + 4, 44);
    if (n != 33 || p[4 + 43] != '=' || p[4 + 42] == '=') {
        return err_set(err, errlen, "bad key (want 32 bytes in base64)");
    }
    memcpy(out->key, raw, SEAL_KEY_SIZE);
    out->key_id = seal_key_id(out->key);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

static void epoch_file_text(const struct seal_epoch_file *f, char *out, size_t cap)
{
    if (f->erased) {
        snprintf(out, cap,
                 "sinkd epoch erased v1\nstart %" PRIu32 "\nend %" PRIu32 "\nerased %" PRIu64 "\n",
                 f->start, f->end, f->erased_at);
        return;
    }
    char b64[48];
    EVP_EncodeBlock((unsigned char *)b64, f->key, SEAL_KEY_SIZE);
    snprintf(out, cap, "sinkd epoch key v1\nstart %" PRIu32 "\nend %" PRIu32 "\nkey %s\n", f->start,
             f->end, b64);
    OPENSSL_cleanse(b64, sizeof(b64));
}

/* DIR/keys/epochs/<start>-<id>.key, or the tombstone <start>.erased. */
static int epoch_path(const char *state_dir, uint32_t start, uint32_t key_id, bool erased,
                      char *out, size_t cap)
{
    int n = erased
                ? snprintf(out, cap, "%s/" SEAL_EPOCH_DIR "/%" PRIu32 ".erased", state_dir, start)
                : snprintf(out, cap, "%s/" SEAL_EPOCH_DIR "/%" PRIu32 "-%08" PRIx32 ".key",
                           state_dir, start, key_id);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Reads one epoch file. 1 read, 0 absent, -1 unreadable or damaged (err). */
static int epoch_read(const char *path, struct seal_epoch_file *f, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return errno == ENOENT ? 0 : err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    char buf[SEAL_FILE_MAX + 1];
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    char why[128];
    int rc = n < 0 ? err_set(err, errlen, "%s: %s", path, strerror(errno))
             : seal_epoch_parse(buf, (size_t)n, f, why, sizeof(why)) != 0
                 ? err_set(err, errlen, "%s: %s", path, why)
                 : 1;
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

/* The key (start, id), else the epoch's tombstone. 1 key, 2 tombstone, 0 neither, -1 error. */
static int epoch_load(const char *state_dir, uint32_t start, uint32_t key_id,
                      struct seal_epoch_file *f, char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX + 64];
    if (epoch_path(state_dir, start, key_id, false, path, sizeof(path)) != 0) {
        return err_set(err, errlen, "%s: path too long", state_dir);
    }
    int rc = epoch_read(path, f, err, errlen);
    if (rc == 1 && (f->erased || f->start != start || f->key_id != key_id)) {
        return err_set(err, errlen, "%s: holds another epoch or key", path);
    }
    if (rc != 0) {
        return rc;
    }
    if (epoch_path(state_dir, start, 0, true, path, sizeof(path)) != 0) {
        return err_set(err, errlen, "%s: path too long", state_dir);
    }
    rc = epoch_read(path, f, err, errlen);
    if (rc == 1 && (!f->erased || f->start != start)) {
        return err_set(err, errlen, "%s: not this epoch's tombstone", path);
    }
    return rc == 1 ? 2 : rc;
}

/* The id of a key file name "<start>-<8 hex>.key" for `start`, or false. */
static bool key_file_name(const char *name, uint32_t start, uint32_t *key_id)
{
    char want[24];
    int n = snprintf(want, sizeof(want), "%" PRIu32 "-", start);
    if (strncmp(name, want, (size_t)n) != 0 || strlen(name) != (size_t)n + 12 ||
        strspn(name + n, "0123456789abcdef") != 8 || strcmp(name + n + 8, ".key") != 0) {
        return false;
    }
    *key_id = (uint32_t)strtoul(name + n, NULL, 16);
    return true;
}

/* The first key file of epoch `start` (a writer restarted within its epoch). 1 found, 0 none. */
static int epoch_find_key(const char *state_dir, uint32_t start, uint32_t *key_id)
{
    char dir[EVLOG_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/" SEAL_EPOCH_DIR, state_dir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return 0;
    }
    int found = 0;
    uint32_t best = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint32_t id;
        if (key_file_name(e->d_name, start, &id) && (!found || id < best)) {
            best = id;
            found = 1;
        }
    }
    closedir(d);
    *key_id = best;
    return found;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Writes an epoch file durably (temporary file, fsync, rename, directory fsync). */
static int epoch_write(const char *state_dir, const struct seal_epoch_file *f, char *err,
                       size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 32], path[EVLOG_PATH_MAX], tmp[EVLOG_PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s/" SEAL_EPOCH_DIR, state_dir);
    if (epoch_path(state_dir, f->start, f->key_id, f->erased, path, sizeof(path)) != 0) {
        return err_set(err, errlen, "%s: path too long", state_dir);
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    char text[SEAL_FILE_MAX];
    epoch_file_text(f, text, sizeof(text));
    size_t len = strlen(text);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    if (fd >= 0) {
        ok = close(fd) == 0 && ok;
    }
    OPENSSL_cleanse(text, sizeof(text));
    if (!ok || rename(tmp, path) != 0 || fsync_dir(dir) != 0) {
        e = ok ? errno : e;
        unlink(tmp);
        return err_set(err, errlen, "%s: %s", path, strerror(e));
    }
    return 0;
}

/* ---- the keyring -------------------------------------------------------------------------- */

struct epoch_entry {
    uint32_t start, end, key_id;
    uint8_t state; /* 1 key, 2 erased, 0 no such key */
    uint8_t key[SEAL_KEY_SIZE];
};

#define SEAL_CACHE_MAX 4096 /* epochs remembered (11 years of days) */

struct seal_keyring {
    char state_dir[EVLOG_PATH_MAX];
    bool writer;
    uint32_t epoch_s;
    struct seal_crypto crypto;
    struct epoch_entry *cache;
    size_t n;
    size_t current; /* writer: index in cache of the epoch being written, or n if none */
};

/* DIR/keys/epochs/epoch_seconds: the epoch length of this state directory (one number,
 * SEAL_EPOCH_S_MIN..SEAL_EPOCH_S_MAX), else one UTC day. */
uint32_t seal_epoch_seconds(const char *state_dir)
{
    char path[EVLOG_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/" SEAL_EPOCH_DIR "/epoch_seconds", state_dir);
    FILE *f = fopen(path, "re");
    unsigned long v = 0;
    if (f != NULL) {
        if (fscanf(f, "%lu", &v) != 1) {
            v = 0;
        }
        fclose(f);
    }
    return v >= SEAL_EPOCH_S_MIN && v <= SEAL_EPOCH_S_MAX ? (uint32_t)v : SEAL_EPOCH_S_DEFAULT;
}

int seal_keyring_open(struct seal_keyring **out, const char *state_dir, bool writer,
                      uint32_t epoch_s, char *err, size_t errlen)
{
    struct seal_keyring *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    if ((size_t)snprintf(k->state_dir, sizeof(k->state_dir), "%s", state_dir) >=
        sizeof(k->state_dir)) {
        free(k);
        return err_set(err, errlen, "%s: path too long", state_dir), EVLOG_EINVAL;
    }
    k->writer = writer;
    k->epoch_s = epoch_s ? epoch_s : seal_epoch_seconds(state_dir);
    k->cache = calloc(SEAL_CACHE_MAX, sizeof(*k->cache));
    if (k->cache == NULL || crypto_init(&k->crypto) != 0) {
        seal_keyring_free(k);
        return err_set(err, errlen, "libcrypto: no HKDF or AES-256-GCM"), EVLOG_ECRYPTO;
    }
    if (writer) {
        char dir[EVLOG_PATH_MAX + 16];
        snprintf(dir, sizeof(dir), "%s/keys", state_dir);
        (void)mkdir(dir, 0700);
        snprintf(dir, sizeof(dir), "%s/" SEAL_EPOCH_DIR, state_dir);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            seal_keyring_free(k);
            return err_set(err, errlen, "%s: %s", dir, strerror(e)), EVLOG_EIO;
        }
    }
    *out = k;
    return 0;
}

void seal_keyring_free(struct seal_keyring *k)
{
    if (k == NULL) {
        return;
    }
    crypto_free(&k->crypto);
    if (k->cache != NULL) {
        OPENSSL_cleanse(k->cache, SEAL_CACHE_MAX * sizeof(*k->cache));
    }
    free(k->cache);
    free(k);
}

/* The cached entry of key (start, id), loading it once. NULL on error. */
static struct epoch_entry *epoch_get(struct seal_keyring *k, uint32_t start, uint32_t key_id,
                                     char *err, size_t errlen)
{
    for (size_t i = 0; i < k->n; i++) {
        if (k->cache[i].start == start && k->cache[i].key_id == key_id) {
            return &k->cache[i];
        }
    }
    if (k->n == SEAL_CACHE_MAX) {
        k->n = 0; /* start over: rare (more epochs than the cache holds) */
        k->current = SIZE_MAX;
    }
    struct seal_epoch_file f;
    memset(&f, 0, sizeof(f));
    int rc = epoch_load(k->state_dir, start, key_id, &f, err, errlen);
    if (rc < 0) {
        return NULL;
    }
    struct epoch_entry *e = &k->cache[k->n++];
    memset(e, 0, sizeof(*e));
    e->start = start;
    e->key_id = key_id;
    e->state = (uint8_t)rc;
    if (rc == 1) {
        e->end = f.end;
        memcpy(e->key, f.key, SEAL_KEY_SIZE);
    } else if (rc == 2) {
        e->end = f.end;
    }
    OPENSSL_cleanse(&f, sizeof(f));
    return e;
}

/* Writer: the key of the epoch that contains now_s, made (durably) if it has none. */
static struct epoch_entry *epoch_current(struct seal_keyring *k, uint64_t now_s, char *err,
                                         size_t errlen)
{
    if (k->current < k->n) {
        struct epoch_entry *c = &k->cache[k->current];
        if (now_s >= c->start && now_s < c->end && c->state == 1) {
            return c;
        }
    }
    uint32_t start = (uint32_t)(now_s - now_s % k->epoch_s);
    char tomb[EVLOG_PATH_MAX + 64];
    struct stat st;
    if (epoch_path(k->state_dir, start, 0, true, tomb, sizeof(tomb)) == 0 && stat(tomb, &st) == 0) {
        err_set(err, errlen, "epoch %" PRIu32 " was erased: no record may be sealed under it",
                start);
        return NULL;
    }
    uint32_t key_id = 0;
    struct epoch_entry *e = NULL;
    if (epoch_find_key(k->state_dir, start, &key_id) == 1) {
        e = epoch_get(k, start, key_id, err, errlen);
        if (e == NULL) {
            return NULL;
        }
    } else {
        struct seal_epoch_file f = {.start = start, .end = start + k->epoch_s};
        if (RAND_priv_bytes(f.key, SEAL_KEY_SIZE) != 1) {
            err_set(err, errlen, "libcrypto: no random bytes for an epoch key");
            return NULL;
        }
        f.key_id = seal_key_id(f.key);
        if (epoch_write(k->state_dir, &f, err, errlen) != 0) {
            OPENSSL_cleanse(&f, sizeof(f));
            return NULL;
        }
        e = epoch_get(k, start, f.key_id, err, errlen);
        OPENSSL_cleanse(&f, sizeof(f));
        if (e == NULL) {
            return NULL;
        }
    }
    if (e->state != 1) {
        err_set(err, errlen, "epoch %" PRIu32 ": its key file is gone", start);
        return NULL;
    }
    k->current = (size_t)(e - k->cache);
    return e;
}

/* ---- sealing and opening ------------------------------------------------------------------ */

static void put_tlv_header(uint8_t *out, uint8_t tag, size_t len)
{
    out[0] = tag;
    out[1] = (uint8_t)(len >> 8);
    out[2] = (uint8_t)len;
}

int seal_record(struct seal_keyring *k, uint64_t index, uint64_t now_us, const uint8_t *in,
                size_t len, uint8_t *out, size_t cap, size_t *outlen, char *err, size_t errlen)
{
    struct tlv t[SEAL_TLVS_MAX];
    size_t n = 0;
    if (len < 2 || in[0] != EVENT_RECORD_VERSION || tlv_split(in, len, 2, t, &n) != 0) {
        return 0; /* not a record of ours: the log stores what it is given */
    }
    uint8_t kind = in[1];
    uint8_t plain[SEAL_PLAIN_MAX];
    size_t plen = 0, pos = 2;
    const uint8_t *bot_key = NULL;
    size_t bot_key_len = 0;
    bool personal = false;
    for (size_t i = 0; i < n; i++) {
        if (t[i].tag >= EVENT_TAG_SEAL_EPOCH) {
            return 0; /* sealed already */
        }
        personal = personal || seal_tag_personal(kind, t[i].tag);
    }
    if (!personal) {
        return 0;
    }
    if (cap < len + 3 + 8 + 3 + EVENT_SEAL_BOT_REF_SIZE + 3 + SEAL_TAG_SIZE) {
        return err_set(err, errlen, "seal: output buffer too small"), EVLOG_EINVAL;
    }
    out[0] = in[0];
    out[1] = kind;
    for (size_t i = 0; i < n; i++) {
        size_t whole = 3 + t[i].len;
        if (seal_tag_personal(kind, t[i].tag)) {
            if (plen + whole > sizeof(plain)) {
                return err_set(err, errlen, "seal: personal fields too long"), EVLOG_EINVAL;
            }
            memcpy(plain + plen, in + t[i].off, whole);
            plen += whole;
            if (bot_key_tag(kind, t[i].tag)) {
                bot_key = in + t[i].off + 3;
                bot_key_len = t[i].len;
            }
        } else {
            memcpy(out + pos, in + t[i].off, whole);
            pos += whole;
        }
    }
    char anon_key[33];
    if (bot_key == NULL && (kind == RECORD_CONTACT || kind == RECORD_HEARTBEATS) &&
        anonymous_bot_key(in, len, anon_key)) {
        bot_key = (const uint8_t *)anon_key;
        bot_key_len = strlen(anon_key);
    }
    struct epoch_entry *e = epoch_current(k, now_us / 1000000u, err, errlen);
    if (e == NULL) {
        OPENSSL_cleanse(plain, plen);
        return EVLOG_EIO;
    }
    put_tlv_header(out + pos, EVENT_TAG_SEAL_EPOCH, 8);
    for (int i = 0; i < 4; i++) {
        out[pos + 3 + i] = (uint8_t)(e->start >> (24 - 8 * i));
        out[pos + 7 + i] = (uint8_t)(e->key_id >> (24 - 8 * i));
    }
    pos += 11;
    if (bot_key != NULL) {
        put_tlv_header(out + pos, EVENT_TAG_SEAL_BOT_REF, EVENT_SEAL_BOT_REF_SIZE);
        if (bot_ref(&k->crypto, e->key, bot_key, bot_key_len, out + pos + 3) != 0) {
            OPENSSL_cleanse(plain, plen);
            return err_set(err, errlen, "libcrypto: HKDF failed"), EVLOG_ECRYPTO;
        }
        pos += 3 + EVENT_SEAL_BOT_REF_SIZE;
    }
    uint8_t key[SEAL_KEY_SIZE], nonce[SEAL_NONCE_SIZE];
    size_t aadlen = pos;
    put_tlv_header(out + pos, EVENT_TAG_SEALED, plen + SEAL_TAG_SIZE);
    pos += 3;
    int rc = record_key(&k->crypto, e->key, index, tlv_time(in, t, n), key, nonce);
    if (rc == 0) {
        rc = gcm_seal(&k->crypto, key, nonce, out, aadlen, plain, plen, out + pos);
    }
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(plain, plen);
    if (rc != 0) {
        return err_set(err, errlen, "libcrypto: sealing failed"), EVLOG_ECRYPTO;
    }
    *outlen = pos + plen + SEAL_TAG_SIZE;
    return 1;
}

/* Where a sealed record keeps its seal: the TLV index of tags 80 and 82 (SIZE_MAX if absent). */
struct sealed_view {
    struct tlv t[SEAL_TLVS_MAX];
    size_t n;
    size_t epoch_i, sealed_i;
    uint32_t epoch, key_id;
    uint64_t time_us;
};

static int sealed_view(const uint8_t *in, size_t len, struct sealed_view *v)
{
    if (len < 2 || in[0] != EVENT_RECORD_VERSION || tlv_split(in, len, 2, v->t, &v->n) != 0) {
        return 0; /* not a record of ours: nothing sealed in it */
    }
    v->epoch_i = v->sealed_i = SIZE_MAX;
    for (size_t i = 0; i < v->n; i++) {
        if (v->t[i].tag == EVENT_TAG_SEAL_EPOCH && v->t[i].len == 8) {
            const uint8_t *p = in + v->t[i].off + 3;
            v->epoch =
                ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
            v->key_id =
                ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
            v->epoch_i = i;
        } else if (v->t[i].tag == EVENT_TAG_SEALED) {
            v->sealed_i = i;
        }
    }
    v->time_us = tlv_time(in, v->t, v->n);
    if (v->sealed_i == SIZE_MAX) {
        return 0;
    }
    /* 82 is the last field, after 80 */
    return v->epoch_i != SIZE_MAX && v->sealed_i == v->n - 1 &&
                   v->t[v->sealed_i].len > SEAL_TAG_SIZE
               ? 1
               : -1;
}

/* Decrypts and merges the personal fields back among the clear ones, by tag: the record as it
 * was before sealing. */
static int open_into(struct seal_crypto *c, const uint8_t key[SEAL_KEY_SIZE],
                     const uint8_t nonce[SEAL_NONCE_SIZE], const uint8_t *in,
                     const struct sealed_view *v, uint8_t *out, size_t cap, size_t *outlen,
                     char *err, size_t errlen)
{
    const struct tlv *s = &v->t[v->sealed_i];
    uint8_t plain[SEAL_PLAIN_MAX];
    size_t plen = s->len - SEAL_TAG_SIZE;
    if (plen > sizeof(plain)) {
        return err_set(err, errlen, "sealed fields too long"), EVLOG_ECORRUPT;
    }
    if (gcm_open(c, key, nonce, in, s->off, in + s->off + 3, s->len, plain) != 0) {
        return err_set(err, errlen, "sealed fields do not open with their key (altered?)"),
               EVLOG_EVERIFY;
    }
    struct tlv p[SEAL_TLVS_MAX];
    size_t pn = 0;
    uint8_t kind = in[1];
    int rc = tlv_split(plain, plen, 0, p, &pn) == 0 && pn > 0 ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < pn; i++) {
        if (!seal_tag_personal(kind, p[i].tag) || (i > 0 && p[i].tag <= p[i - 1].tag)) {
            rc = -1;
        }
    }
    size_t need = 2 + plen;
    for (size_t i = 0; i < v->n; i++) {
        if (v->t[i].tag < EVENT_TAG_SEAL_EPOCH) {
            need += 3 + v->t[i].len;
        }
    }
    if (rc != 0 || need > cap) {
        OPENSSL_cleanse(plain, plen);
        return err_set(err, errlen, "sealed fields are not this kind's personal fields in order"),
               EVLOG_ECORRUPT;
    }
    out[0] = in[0];
    out[1] = kind;
    size_t pos = 2, a = 0, b = 0;
    while (a < v->n || b < pn) {
        bool clear_next =
            a < v->n && v->t[a].tag < EVENT_TAG_SEAL_EPOCH && (b == pn || v->t[a].tag < p[b].tag);
        if (a < v->n && v->t[a].tag >= EVENT_TAG_SEAL_EPOCH) {
            a++;
            continue;
        }
        if (a < v->n && b < pn && v->t[a].tag == p[b].tag) {
            OPENSSL_cleanse(plain, plen);
            return err_set(err, errlen, "field tag %u both clear and sealed", p[b].tag),
                   EVLOG_ECORRUPT;
        }
        if (clear_next) {
            memcpy(out + pos, in + v->t[a].off, 3 + v->t[a].len);
            pos += 3 + v->t[a].len;
            a++;
        } else {
            memcpy(out + pos, plain + p[b].off, 3 + p[b].len);
            pos += 3 + p[b].len;
            b++;
        }
    }
    OPENSSL_cleanse(plain, plen);
    *outlen = pos;
    return 0;
}

static int copy_as_is(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    if (len > cap) {
        return EVLOG_EINVAL;
    }
    memcpy(out, in, len);
    *outlen = len;
    return 0;
}

int seal_record_key(struct seal_keyring *k, uint64_t index, const uint8_t *in, size_t len,
                    uint8_t key[SEAL_KEY_SIZE], uint8_t nonce[SEAL_NONCE_SIZE], char *err,
                    size_t errlen)
{
    struct sealed_view v;
    int rc = sealed_view(in, len, &v);
    if (rc <= 0) {
        return rc < 0 ? (err_set(err, errlen, "malformed sealed record"), EVLOG_ECORRUPT)
                      : SEAL_PLAIN;
    }
    struct epoch_entry *e = epoch_get(k, v.epoch, v.key_id, err, errlen);
    if (e == NULL) {
        return EVLOG_EIO;
    }
    if (e->state != 1) {
        return e->state == 2 ? SEAL_ERASED : SEAL_NO_KEY;
    }
    if (record_key(&k->crypto, e->key, index, v.time_us, key, nonce) != 0) {
        return err_set(err, errlen, "libcrypto: HKDF failed"), EVLOG_ECRYPTO;
    }
    return SEAL_OPENED;
}

int seal_open(struct seal_keyring *k, uint64_t index, const uint8_t *in, size_t len, uint8_t *out,
              size_t cap, size_t *outlen, char *err, size_t errlen)
{
    uint8_t key[SEAL_KEY_SIZE], nonce[SEAL_NONCE_SIZE];
    int state = seal_record_key(k, index, in, len, key, nonce, err, errlen);
    if (state < 0 && state != EVLOG_EIO) {
        return state;
    }
    if (state == EVLOG_EIO) {
        state = SEAL_NO_KEY; /* an epoch file this user cannot read: sealed to us */
    }
    if (state != SEAL_OPENED) {
        return copy_as_is(in, len, out, cap, outlen) == 0 ? state : EVLOG_EINVAL;
    }
    struct sealed_view v;
    (void)sealed_view(in, len, &v);
    int rc = open_into(&k->crypto, key, nonce, in, &v, out, cap, outlen, err, errlen);
    OPENSSL_cleanse(key, sizeof(key));
    return rc == 0 ? SEAL_OPENED : rc;
}

int seal_open_with_key(const uint8_t key[SEAL_KEY_SIZE], const uint8_t nonce[SEAL_NONCE_SIZE],
                       const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                       char *err, size_t errlen)
{
    struct sealed_view v;
    if (sealed_view(in, len, &v) != 1) {
        return err_set(err, errlen, "not a sealed record"), EVLOG_EINVAL;
    }
    struct seal_crypto c;
    if (crypto_init(&c) != 0) {
        crypto_free(&c);
        return err_set(err, errlen, "libcrypto: no AES-256-GCM"), EVLOG_ECRYPTO;
    }
    int rc = open_into(&c, key, nonce, in, &v, out, cap, outlen, err, errlen);
    crypto_free(&c);
    return rc;
}

/* ---- listing and erasing epochs ----------------------------------------------------------- */

static int cmp_epoch(const void *a, const void *b)
{
    const struct seal_epoch_file *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

int seal_epochs_list(const char *state_dir, struct seal_epoch_file **out, size_t *n, char *err,
                     size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/" SEAL_EPOCH_DIR, state_dir);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        return errno == ENOENT ? 0 : (err_set(err, errlen, "%s: %s", dir, strerror(errno)), -1);
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long start = strtoull(e->d_name, &end, 10);
        uint32_t key_id = 0;
        bool erased = end != e->d_name && strcmp(end, ".erased") == 0;
        if (end == e->d_name || errno != 0 || start == 0 || start > UINT32_MAX ||
            (!erased && !key_file_name(e->d_name, (uint32_t)start, &key_id))) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            struct seal_epoch_file *bigger = realloc(*out, cap * sizeof(**out));
            if (bigger == NULL) {
                rc = err_set(err, errlen, "out of memory");
                break;
            }
            *out = bigger;
        }
        char path[EVLOG_PATH_MAX + 64];
        struct seal_epoch_file f;
        if (epoch_path(state_dir, (uint32_t)start, key_id, erased, path, sizeof(path)) != 0 ||
            epoch_read(path, &f, err, errlen) != 1) {
            rc = -1;
            break;
        }
        OPENSSL_cleanse(f.key, sizeof(f.key)); /* listings carry no key material */
        (*out)[(*n)++] = f;
    }
    closedir(d);
    if (rc == 0 && *n > 0) {
        qsort(*out, *n, sizeof(**out), cmp_epoch);
    }
    return rc;
}

int seal_epochs_erase(const char *state_dir, uint64_t before_s, uint64_t not_after_s,
                      uint64_t now_s, size_t *erased, uint32_t *first_start, uint32_t *last_end,
                      char *err, size_t errlen)
{
    struct seal_epoch_file *list = NULL;
    size_t n = 0, done = 0;
    if (seal_epochs_list(state_dir, &list, &n, err, errlen) != 0) {
        free(list);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct seal_epoch_file *f = &list[i];
        if (f->erased || f->end > before_s || f->end > not_after_s) {
            continue;
        }
        /* The tombstone first: at no time is there neither a key nor a word of its fate. Several
         * key files of one epoch (a key lost and made again) are listed one after the other. */
        bool first_of_epoch = i == 0 || list[i - 1].start != f->start;
        if (first_of_epoch) {
            struct seal_epoch_file tomb = {
                .start = f->start, .end = f->end, .erased = true, .erased_at = now_s};
            rc = epoch_write(state_dir, &tomb, err, errlen);
        }
        char path[EVLOG_PATH_MAX + 64];
        if (rc == 0 && epoch_path(state_dir, f->start, f->key_id, false, path, sizeof(path)) == 0) {
            /* Overwrite before unlinking, so the blocks do not keep the key on a file system
             * that writes in place; a copy-on-write file system or a backup may keep it
             * (docs/evidence.md). */
            int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
            if (fd >= 0) {
                char zeros[SEAL_FILE_MAX] = {0};
                struct stat st;
                if (fstat(fd, &st) == 0 && st.st_size > 0 && st.st_size <= SEAL_FILE_MAX) {
                    (void)!pwrite(fd, zeros, (size_t)st.st_size, 0);
                    (void)fsync(fd);
                }
                close(fd);
            }
            if (unlink(path) != 0 && errno != ENOENT) {
                rc = err_set(err, errlen, "%s: %s", path, strerror(errno));
            }
        }
        if (rc == 0 && first_of_epoch) {
            if (done == 0 && first_start != NULL) {
                *first_start = f->start;
            }
            if (last_end != NULL) {
                *last_end = f->end;
            }
            done++;
        }
    }
    if (rc == 0 && done > 0) {
        char dir[EVLOG_PATH_MAX + 32];
        snprintf(dir, sizeof(dir), "%s/" SEAL_EPOCH_DIR, state_dir);
        if (fsync_dir(dir) != 0) {
            rc = err_set(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        }
    }
    free(list);
    if (erased != NULL) {
        *erased = done;
    }
    return rc;
}
