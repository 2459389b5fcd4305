/* bundle.c -- evidence bundles: chosen entries with inclusion proofs to a signed checkpoint,
 * checkable by hand or with tools that share no code with sinkd. */
#include "evidence/log.h"
#include "util/hex.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "event/event.h"
#include "evidence/files.h"
#include "evidence/raw.h"
#include "evidence/seal.h"

#define EVLOG_SEAL_OPENED_MAX 4096
#include "util/err.h"

#define BUNDLE_FORMAT "sinkd-evidence-bundle/1"
#define BUNDLE_ENTRIES_MAX 1000000u
#define MANIFEST_MAX (256u << 20)

static const char readme[] =
    "SINKD EVIDENCE BUNDLE\n"
    "=====================\n"
    "\n"
    "This directory proves that the records in entries/ are part of an append-only log whose\n"
    "state is signed in `checkpoint`. Nothing here requires sinkd to check.\n"
    "\n"
    "Files\n"
    "  checkpoint      the log's signed statement (C2SP tlog-checkpoint, a C2SP signed note):\n"
    "                  line 1 the log name, line 2 the number of entries, line 3 the root hash\n"
    "                  (base64), then a blank line and an Ed25519 signature line.\n"
    "  log.vkey        the log's public key: <name>+<key id hex>+base64(0x01 || 32-byte key).\n"
    "  entries/<i>.bin the exact bytes of entry number i (counting from 0).\n"
    "  entries/<i>.json a readable rendering of the same record (not part of the proof).\n"
    "  bundle.json     for each entry: its index, leaf hash and inclusion proof (hex).\n"
    "\n"
    "How to check by hand\n"
    "  1. Signature: the signed message is the first three lines of `checkpoint` including\n"
    "     their newlines. The signature line is '\\u2014 <name> <base64>'; base64-decode it:\n"
    "     4 bytes key id, then a 64-byte Ed25519 signature (RFC 8032) over that message, by\n"
    "     the 32-byte key in log.vkey. Key id = first 4 bytes of SHA-256(name, 0x0A, 0x01, key).\n"
    "  2. Leaf hash of entry i: SHA-256 of one 0x00 byte followed by the entry bytes:\n"
    "        (printf '\\000'; cat entries/<i>.bin) | sha256sum\n"
    "     It must equal leaf_hash in bundle.json.\n"
    "  3. Inclusion (RFC 9162 section 2.1.3.2): start with r = leaf hash, fn = i,\n"
    "     sn = tree_size - 1. For each proof hash p in order: if fn is odd or fn == sn, then\n"
    "     r = SHA-256(0x01 || p || r) and, if fn was even, shift fn and sn right until fn is\n"
    "     odd or zero; otherwise r = SHA-256(0x01 || r || p). Then shift fn and sn right by one.\n"
    "     At the end sn must be 0 and r must equal the root hash on line 3 of `checkpoint`.\n"
    "  4. The same checkpoint can be compared with the copy published by the log operator or\n"
    "     witnesses: a log never signs two different roots that are not consistent.\n"
    "\n"
    "  5. Time (only if checkpoint.tsr is here): an RFC 3161 token in which a time-stamping\n"
    "     authority states that SHA-256 of the file `checkpoint` existed at its genTime, so\n"
    "     every entry above existed no later than that. With OpenSSL and the TSA's CA:\n"
    "        openssl ts -verify -data checkpoint -in checkpoint.tsr -CAfile TSA_CA.pem\n"
    "     (add `-attime <genTime as POSIX seconds>` once the TSA certificate has expired;\n"
    "     `openssl ts -reply -in checkpoint.tsr -text` shows genTime; checkpoint.tsq is the\n"
    "     request, whose nonce the token repeats).\n"
    "  6. Witnesses (only if checkpoint.cosigned is here): `checkpoint` followed by witnesses'\n"
    "     lines (C2SP tlog-cosignature). Each base64-decodes to a 4-byte key id, an 8-byte\n"
    "     big-endian time and a 64-byte Ed25519 signature, by the witness's key, over\n"
    "     'cosignature/v1\\ntime <time>\\n' followed by the first three lines of `checkpoint`.\n"
    "     A witness cosigns only trees consistent with every one it cosigned before, so this\n"
    "     log cannot have shown anyone a different history up to this point.\n"
    "  7. Message bodies (only if raw/ is here; the sinkhole ran with --keep-raw): raw/<ab>/<h>\n"
    "     is the decrypted, decompressed body of a message whose contact record above\n"
    "     carries body_sha256 = <h>. `sha256sum raw/*/*` must print each file's own name,\n"
    "     and each name must be the body_sha256 of an entry here. The bytes are as the bot\n"
    "     sent them: host and user names are UTF-16LE strings inside.\n"
    "\n"
    "Independent tools: Go golang.org/x/mod/sumdb/note + sumdb/tlog (CheckRecord), or a few\n"
    "lines of Python with hashlib and the `cryptography` package (Ed25519); OpenSSL for the\n"
    "timestamp.\n";

/* The kept body (`serve --keep-raw`) a contact entry names, if there is one, into out_dir/raw. */
static int copy_body(const char *state_dir, const char *out_dir, const uint8_t *entry, size_t len,
                     char *err, size_t errlen)
{
    struct record rec;
    char why[128];
    if (event_decode(entry, len, &rec, why, sizeof why) != 0 || rec.kind != RECORD_CONTACT) {
        return 0;
    }
    return raw_copy(state_dir, out_dir, rec.u.contact.body_sha256, err, errlen) < 0 ? EVLOG_EIO : 0;
}

/* Entry `index` of a tree of `size`, read from its entry bundle. */
static int read_entry(const char *log_dir, uint64_t size, uint64_t index, uint8_t *out, size_t *len,
                      char *err, size_t errlen)
{
    uint64_t n = index / EVLOG_TILE_WIDTH;
    uint64_t left = size - n * EVLOG_TILE_WIDTH;
    unsigned w = left >= EVLOG_TILE_WIDTH ? EVLOG_TILE_WIDTH : (unsigned)left;
    char rel[160];
    evlog_tile_path(EVLOG_TILE_ENTRIES, n, w, rel, sizeof rel);
    char *b;
    size_t blen;
    int rc = evfile_read(log_dir, rel, &b, &blen, 256u * 65537u, err, errlen);
    if (rc != 0 && w < EVLOG_TILE_WIDTH) {
        evlog_tile_path(EVLOG_TILE_ENTRIES, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
        rc = evfile_read(log_dir, rel, &b, &blen, 256u * 65537u, err, errlen);
    }
    if (rc != 0) {
        return rc;
    }
    const uint8_t *p = (const uint8_t *)b;
    size_t off = 0;
    for (uint64_t i = n * EVLOG_TILE_WIDTH;; i++) {
        if (off + 2 > blen || off + 2 + ((size_t)p[off] << 8 | p[off + 1]) > blen) {
            free(b);
            return err_set(err, errlen, "%s: truncated before entry %llu", rel,
                           (unsigned long long)index),
                   EVLOG_EVERIFY;
        }
        size_t el = (size_t)p[off] << 8 | p[off + 1];
        if (i == index) {
            memcpy(out, p + off + 2, el);
            *len = el;
            break;
        }
        off += 2 + el;
    }
    free(b);
    return 0;
}

/* Copies what the log keeps about the checkpoint of `size` besides itself, if it has it:
 * timestamps/<size>.tsr / .tsq as checkpoint.tsr / .tsq, cosignatures/<size> as
 * checkpoint.cosigned (a .tsq without its .tsr is a pending request and stays behind). */
static int copy_attestations(const char *log_dir, uint64_t size, const char *out_dir, char *err,
                             size_t errlen)
{
    static const struct {
        const char *src_fmt, *dst;
    } files[] = {
        {"timestamps/%llu.tsr", "checkpoint.tsr"},
        {"timestamps/%llu.tsq", "checkpoint.tsq"},
        {"cosignatures/%llu", "checkpoint.cosigned"},
    };
    bool have_tsr = false;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char rel[64], *buf;
        size_t len;
        snprintf(rel, sizeof rel, files[i].src_fmt, (unsigned long long)size);
        if (!evfile_exists(log_dir, rel) || (i == 1 && !have_tsr)) {
            continue;
        }
        have_tsr = have_tsr || i == 0;
        int rc = evfile_read(log_dir, rel, &buf, &len, EVLOG_TS_RESP_MAX, err, errlen);
        if (rc != 0) {
            return rc;
        }
        rc = evfile_write_new(out_dir, files[i].dst, buf, len, err, errlen);
        free(buf);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int evlog_bundle_write(const char *state_dir, uint64_t at_size, const uint64_t *indices, size_t n,
                       const char *out_dir,
                       int (*describe)(void *ctx, const uint8_t *entry, size_t len, char **out),
                       void *describe_ctx, char *err, size_t errlen)
{
    if (n > BUNDLE_ENTRIES_MAX) {
        return err_set(err, errlen, "more than %u entries", BUNDLE_ENTRIES_MAX), EVLOG_EFULL;
    }
    char log_dir[EVLOG_PATH_MAX], keys_dir[EVLOG_PATH_MAX], vkey_path[EVLOG_PATH_MAX + 16];
    snprintf(log_dir, sizeof log_dir, "%s/log", state_dir);
    snprintf(keys_dir, sizeof keys_dir, "%s/keys", state_dir);
    snprintf(vkey_path, sizeof vkey_path, "%s/log.vkey", keys_dir);
    struct evlog_verifier v;
    int rc = evlog_verifier_load(vkey_path, &v, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char *note = NULL, *vtext = NULL;
    size_t note_len, vlen;
    char cp_rel[64] = "checkpoint";
    if (at_size != 0) {
        snprintf(cp_rel, sizeof cp_rel, "checkpoints/%llu", (unsigned long long)at_size);
    }
    char cp_path[EVLOG_PATH_MAX + 96];
    snprintf(cp_path, sizeof cp_path, "%s/%s", log_dir, cp_rel);
    if (at_size != 0 && access(cp_path, F_OK) != 0 && errno == ENOENT) {
        return err_set(err, errlen,
                       "%s: no checkpoint of size %llu is kept here (past serve "
                       "--checkpoint-keep-hours only the newest of each hour and those "
                       "timestamped or cosigned stay); the sizes kept are the names in %s/"
                       "checkpoints/",
                       cp_path, (unsigned long long)at_size, log_dir),
               EVLOG_EINVAL;
    }
    rc = evfile_read(log_dir, cp_rel, &note, &note_len, EVLOG_NOTE_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct evlog_checkpoint cp;
    char e[256];
    if (evlog_checkpoint_open(note, note_len, &v, &cp, e, sizeof e) != 0) {
        free(note);
        return err_set(err, errlen, "%s/%s: %s", log_dir, cp_rel, e), EVLOG_EVERIFY;
    }
    rc = evfile_read(keys_dir, "log.vkey", &vtext, &vlen, 1024, err, errlen);
    if (rc != 0) {
        free(note);
        return rc;
    }
    char sub[EVLOG_PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/entries", out_dir);
    if ((mkdir(out_dir, 0755) != 0 && errno != EEXIST) || mkdir(sub, 0755) != 0) {
        err_set(err, errlen, "%s: %s", errno == EEXIST ? sub : out_dir, strerror(errno));
        free(note);
        free(vtext);
        return EVLOG_EIO;
    }
    struct evlog_tile_reader *tr = NULL;
    json_t *root = json_object(), *arr = json_array();
    uint8_t *entry = malloc(EVLOG_ENTRY_MAX + 1);
    uint8_t *opened = malloc(EVLOG_SEAL_OPENED_MAX);
    struct seal_keyring *keys = NULL;
    if (seal_keyring_open(&keys, state_dir, false, 0, NULL, 0) != 0) {
        keys = NULL; /* sealed entries go in without their keys, marked "no key" */
    }
    rc = evlog_tile_reader_open(&tr, log_dir, cp.size, err, errlen);
    if (rc == 0 && (root == NULL || arr == NULL || entry == NULL || opened == NULL)) {
        rc = EVLOG_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint64_t idx = indices[i];
        if (idx >= cp.size) {
            err_set(err, errlen, "entry %llu is not covered by %s (size %llu); %s",
                    (unsigned long long)idx,
                    at_size != 0 ? "that checkpoint" : "the latest checkpoint",
                    (unsigned long long)cp.size,
                    at_size != 0 ? "choose a later one" : "publish a newer checkpoint first");
            rc = EVLOG_EINVAL;
            break;
        }
        size_t len;
        rc = read_entry(log_dir, cp.size, idx, entry, &len, err, errlen);
        if (rc != 0) {
            break;
        }
        uint8_t leaf[EVLOG_HASH_SIZE], proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE];
        size_t pn;
        evlog_leaf_hash(entry, len, leaf);
        rc = evlog_prove_inclusion(evlog_tile_reader_hash, tr, idx, cp.size, proof, &pn, err,
                                   errlen);
        if (rc != 0) {
            break;
        }
        if (evlog_verify_inclusion(idx, cp.size, leaf, (const uint8_t(*)[EVLOG_HASH_SIZE])proof, pn,
                                   cp.root) != 0) {
            err_set(err, errlen,
                    "entry %llu: proof does not reach the checkpoint root "
                    "(run `sinkd verify`)",
                    (unsigned long long)idx);
            rc = EVLOG_EVERIFY;
            break;
        }
        char rel[64], hx[65];
        snprintf(rel, sizeof rel, "entries/%llu.bin", (unsigned long long)idx);
        rc = evfile_write_new(out_dir, rel, entry, len, err, errlen);
        /* A sealed entry: its own key goes in the bundle (it opens this record and no other),
         * and the rendering shows it opened. */
        uint8_t skey[SEAL_KEY_SIZE], snonce[SEAL_NONCE_SIZE];
        int sstate = SEAL_PLAIN;
        const uint8_t *shown = entry;
        size_t shown_len = len;
        if (rc == 0) {
            sstate =
                keys != NULL
                    ? seal_record_key(keys, idx, entry, len, skey, snonce, err, errlen)
                    : (seal_inspect(entry, len, &(uint32_t){0}, &(uint64_t){0}) == 1 ? SEAL_NO_KEY
                                                                                     : SEAL_PLAIN);
            if (sstate == EVLOG_EIO) {
                sstate = SEAL_NO_KEY;
            } else if (sstate < 0) {
                rc = sstate;
            }
        }
        if (rc == 0 && sstate == SEAL_OPENED) {
            rc = seal_open_with_key(skey, snonce, entry, len, opened, EVLOG_SEAL_OPENED_MAX,
                                    &shown_len, err, errlen);
            shown = opened;
        }
        if (rc == 0 && describe != NULL) {
            char *text = NULL;
            if (describe(describe_ctx, shown, shown_len, &text) == 0 && text != NULL) {
                snprintf(rel, sizeof rel, "entries/%llu.json", (unsigned long long)idx);
                rc = evfile_write_new(out_dir, rel, text, strlen(text), err, errlen);
            }
            free(text);
        }
        if (rc == 0) {
            rc = copy_body(state_dir, out_dir, entry, len, err, errlen);
        }
        if (rc != 0) {
            break;
        }
        json_t *ps = json_array();
        for (size_t k = 0; k < pn; k++) {
            hex_encode(proof[k], 32, hx);
            json_array_append_new(ps, json_string(hx));
        }
        hex_encode(leaf, 32, hx);
        snprintf(rel, sizeof rel, "entries/%llu.bin", (unsigned long long)idx);
        json_t *je = json_pack("{s:I,s:s,s:s,s:o}", "index", (json_int_t)idx, "file", rel,
                               "leaf_hash", hx, "inclusion_proof", ps);
        if (sstate == SEAL_OPENED) {
            char kx[2 * SEAL_KEY_SIZE + 1], nx[2 * SEAL_NONCE_SIZE + 1];
            hex_encode(skey, SEAL_KEY_SIZE, kx);
            hex_encode(snonce, SEAL_NONCE_SIZE, nx);
            json_object_set_new(je, "seal_key", json_string(kx));
            json_object_set_new(je, "seal_nonce", json_string(nx));
            OPENSSL_cleanse(kx, sizeof kx);
            OPENSSL_cleanse(skey, sizeof skey);
        } else if (sstate == SEAL_ERASED || sstate == SEAL_NO_KEY) {
            json_object_set_new(je, "sealed",
                                json_string(sstate == SEAL_ERASED ? "erased" : "no key"));
        }
        json_array_append_new(arr, je);
    }
    if (rc == 0) {
        char rootb64[64];
        /* line 3 of the checkpoint text is the base64 root */
        const char *l3 = strchr(strchr(note, '\n') + 1, '\n') + 1;
        snprintf(rootb64, sizeof rootb64, "%.*s", (int)(strchr(l3, '\n') - l3), l3);
        json_object_set_new(root, "format", json_string(BUNDLE_FORMAT));
        json_object_set_new(root, "origin", json_string(cp.origin));
        json_object_set_new(root, "tree_size", json_integer((json_int_t)cp.size));
        json_object_set_new(root, "root", json_string(rootb64));
        json_object_set_new(root, "entries", arr);
        arr = NULL;
        char *text = json_dumps(root, JSON_INDENT(1));
        rc = text == NULL
                 ? EVLOG_ENOMEM
                 : evfile_write_new(out_dir, "bundle.json", text, strlen(text), err, errlen);
        free(text);
    }
    if (rc == 0) {
        rc = evfile_write_new(out_dir, "checkpoint", note, note_len, err, errlen);
    }
    if (rc == 0) {
        rc = evfile_write_new(out_dir, "log.vkey", vtext, vlen, err, errlen);
    }
    if (rc == 0) {
        rc = copy_attestations(log_dir, cp.size, out_dir, err, errlen);
    }
    if (rc == 0) {
        rc = evfile_write_new(out_dir, "README.txt", readme, sizeof readme - 1, err, errlen);
    }
    json_decref(arr);
    json_decref(root);
    free(entry);
    free(opened);
    seal_keyring_free(keys);
    evlog_tile_reader_close(tr);
    free(note);
    free(vtext);
    return rc;
}

/* Parses bundle.json; calls check(ctx, index, leaf, proof, n, rel) for each entry. */
static int parse_manifest(const char *json, size_t len, struct evlog_checkpoint *cp,
                          int (*check)(void *ctx, uint64_t index, const uint8_t leaf[32],
                                       const uint8_t (*proof)[32], size_t n, const char *file,
                                       const uint8_t *seal_key, const uint8_t *seal_nonce),
                          void *ctx, uint64_t *entries, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        return err_set(err, errlen, "bundle.json:%d: %s", je.line, je.text), EVLOG_EINVAL;
    }
    int rc = 0;
    const char *fmt = NULL, *origin = NULL, *rootb64 = NULL;
    json_int_t size = -1;
    json_t *arr = NULL;
    memset(cp, 0, sizeof *cp);
    if (json_unpack_ex(root, &je, JSON_STRICT, "{s:s,s:s,s:I,s:s,s:o}", "format", &fmt, "origin",
                       &origin, "tree_size", &size, "root", &rootb64, "entries", &arr) != 0 ||
        strcmp(fmt, BUNDLE_FORMAT) != 0 || size < 0 || !json_is_array(arr) ||
        strlen(origin) > EVLOG_NAME_MAX) {
        json_decref(root);
        return err_set(err, errlen, "bundle.json: not a %s manifest (%s)", BUNDLE_FORMAT, je.text),
               EVLOG_EINVAL;
    }
    /* Reuse the checkpoint parser for the root so both agree on base64 strictness. */
    char text[EVLOG_NAME_MAX + 128];
    snprintf(text, sizeof text, "%s\n%lld\n%s\n", origin, (long long)size, rootb64);
    rc = evlog_checkpoint_parse(text, strlen(text), cp, err, errlen);
    size_t count = json_array_size(arr);
    if (rc == 0 && count > BUNDLE_ENTRIES_MAX) {
        err_set(err, errlen, "bundle.json: too many entries");
        rc = EVLOG_EINVAL;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        json_int_t idx = -1;
        const char *file = NULL, *leafhex = NULL, *keyhex = NULL, *noncehex = NULL, *sealed = NULL;
        json_t *ps = NULL;
        if (json_unpack_ex(json_array_get(arr, i), &je, JSON_STRICT,
                           "{s:I,s:s,s:s,s:o,s?s,s?s,s?s}", "index", &idx, "file", &file,
                           "leaf_hash", &leafhex, "inclusion_proof", &ps, "seal_key", &keyhex,
                           "seal_nonce", &noncehex, "sealed", &sealed) != 0 ||
            idx < 0 || !json_is_array(ps) || json_array_size(ps) > EVLOG_PROOF_MAX ||
            (keyhex == NULL) != (noncehex == NULL) || (keyhex != NULL && sealed != NULL)) {
            err_set(err, errlen, "bundle.json: entry %zu is malformed", i);
            rc = EVLOG_EINVAL;
            break;
        }
        uint8_t leaf[32], proof[EVLOG_PROOF_MAX][32], skey[SEAL_KEY_SIZE], snonce[SEAL_NONCE_SIZE];
        size_t pn = json_array_size(ps);
        bool ok = hex_decode(leafhex, leaf, 32) == 0 &&
                  (keyhex == NULL || (hex_decode(keyhex, skey, sizeof skey) == 0 &&
                                      hex_decode(noncehex, snonce, sizeof snonce) == 0));
        for (size_t k = 0; ok && k < pn; k++) {
            ok = hex_decode(json_string_value(json_array_get(ps, k)), proof[k], 32) == 0;
        }
        if (!ok) {
            err_set(err, errlen, "bundle.json: entry %zu: hashes must be 64 hex digits", i);
            rc = EVLOG_EINVAL;
            break;
        }
        if (evlog_verify_inclusion((uint64_t)idx, cp->size, leaf, (const uint8_t(*)[32])proof, pn,
                                   cp->root) != 0) {
            err_set(err, errlen, "bundle.json: entry %lld: inclusion proof fails", (long long)idx);
            rc = EVLOG_EVERIFY;
            break;
        }
        if (check != NULL) {
            rc = check(ctx, (uint64_t)idx, leaf, (const uint8_t(*)[32])proof, pn, file,
                       keyhex != NULL ? skey : NULL, keyhex != NULL ? snonce : NULL);
        }
    }
    if (entries != NULL) {
        *entries = count;
    }
    json_decref(root);
    return rc;
}

int evlog_bundle_parse_manifest(const char *json, size_t len, struct evlog_checkpoint *cp_out,
                                uint64_t *entries_out, char *err, size_t errlen)
{
    return parse_manifest(json, len, cp_out, NULL, NULL, entries_out, err, errlen);
}

struct bundle_ctx {
    const char *dir;
    char *err;
    size_t errlen;
    uint64_t opened;      /* sealed entries opened with the key the bundle gives for them */
    struct keyset bodies; /* body hashes the bundle's contact entries name */
    bool oom;
};

static int check_entry_file(void *ctx, uint64_t index, const uint8_t leaf[32],
                            const uint8_t (*proof)[32], size_t n, const char *file,
                            const uint8_t *seal_key, const uint8_t *seal_nonce)
{
    (void)proof;
    (void)n;
    struct bundle_ctx *b = ctx;
    char want[64];
    snprintf(want, sizeof want, "entries/%llu.bin", (unsigned long long)index);
    if (strcmp(file, want) != 0) {
        return err_set(b->err, b->errlen, "bundle.json: entry %llu names file '%.64s'",
                       (unsigned long long)index, file),
               EVLOG_EVERIFY;
    }
    char *data;
    size_t len;
    int rc = evfile_read(b->dir, file, &data, &len, EVLOG_ENTRY_MAX, b->err, b->errlen);
    if (rc != 0) {
        return rc;
    }
    uint8_t h[32];
    evlog_leaf_hash((const uint8_t *)data, len, h);
    if (seal_key != NULL && memcmp(h, leaf, 32) == 0) {
        /* The disclosed key must open exactly this record (GCM authenticates every clear field
         * too); a key that does not is a bundle that does not say what it claims. */
        uint8_t *opened = malloc(EVLOG_SEAL_OPENED_MAX);
        size_t olen = 0;
        char why[128];
        int orc = opened == NULL
                      ? EVLOG_ENOMEM
                      : seal_open_with_key(seal_key, seal_nonce, (const uint8_t *)data, len, opened,
                                           EVLOG_SEAL_OPENED_MAX, &olen, why, sizeof why);
        if (orc == 0) {
            b->opened++;
        }
        if (opened != NULL) {
            OPENSSL_cleanse(opened, EVLOG_SEAL_OPENED_MAX);
        }
        free(opened);
        if (orc != 0) {
            free(data);
            return err_set(b->err, b->errlen, "%s: its seal_key does not open entry %llu (%s)",
                           file, (unsigned long long)index, orc == EVLOG_ENOMEM ? "memory" : why),
                   EVLOG_EVERIFY;
        }
    }
    struct record rec;
    char why[128];
    if (event_decode((const uint8_t *)data, len, &rec, why, sizeof why) == 0 &&
        rec.kind == RECORD_CONTACT && keyset_add(&b->bodies, rec.u.contact.body_sha256) < 0) {
        b->oom = true;
    }
    free(data);
    if (memcmp(h, leaf, 32) != 0) {
        return err_set(b->err, b->errlen, "%s: does not hash to the leaf hash of entry %llu", file,
                       (unsigned long long)index),
               EVLOG_EVERIFY;
    }
    return 0;
}

/* checkpoint.tsr, if the bundle has one, against the exact bytes of `checkpoint`. */
static int check_bundle_timestamp(const char *dir, const char *note, size_t nlen,
                                  const char *ca_file, struct evlog_bundle_report *rep, char *err,
                                  size_t errlen)
{
    char *resp = NULL, *req = NULL, e[512];
    size_t resp_len, req_len = 0;
    if (!evfile_exists(dir, "checkpoint.tsr")) {
        return 0;
    }
    int rc = evfile_read(dir, "checkpoint.tsr", &resp, &resp_len, EVLOG_TS_RESP_MAX, err, errlen);
    if (rc == 0 && evfile_exists(dir, "checkpoint.tsq")) {
        rc = evfile_read(dir, "checkpoint.tsq", &req, &req_len, EVLOG_TS_REQ_MAX, err, errlen);
    }
    uint8_t digest[EVLOG_HASH_SIZE];
    unsigned int dlen = 0;
    if (rc == 0 && (EVP_Digest(note, nlen, digest, &dlen, EVP_sha256(), NULL) != 1 ||
                    dlen != EVLOG_HASH_SIZE)) {
        err_set(err, errlen, "SHA-256 of checkpoint failed");
        rc = EVLOG_ECRYPTO;
    }
    if (rc == 0) {
        rc = evlog_ts_check(digest, (const uint8_t *)req, req_len, (const uint8_t *)resp, resp_len,
                            ca_file, &rep->timestamp, e, sizeof e);
        if (rc != 0) {
            err_set(err, errlen, "checkpoint.tsr: %s", e);
        }
    }
    rep->timestamped = rc == 0;
    free(resp);
    free(req);
    return rc;
}

/* checkpoint.cosigned, if present, extends `checkpoint` byte for byte and carries a valid line
 * of every witness in ws; with witnesses given it must be present. */
static int check_bundle_cosigned(const char *dir, const char *note, size_t nlen,
                                 const struct evlog_verifier *ws, size_t nw,
                                 struct evlog_bundle_report *rep, char *err, size_t errlen)
{
    char *cos, e[256];
    size_t clen;
    if (!evfile_exists(dir, "checkpoint.cosigned")) {
        return nw == 0 ? 0
                       : (err_set(err, errlen, "no checkpoint.cosigned, but witnesses were given"),
                          EVLOG_EVERIFY);
    }
    int rc = evfile_read(dir, "checkpoint.cosigned", &cos, &clen, EVLOG_NOTE_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (clen < nlen || memcmp(cos, note, nlen) != 0) {
        err_set(err, errlen, "checkpoint.cosigned does not extend checkpoint");
        rc = EVLOG_EVERIFY;
    }
    for (size_t i = 0; rc == 0 && i < nw; i++) {
        size_t tl;
        uint64_t when;
        if (evlog_note_open_at(cos, clen, &ws[i], &tl, &when, e, sizeof e) != 0) {
            err_set(err, errlen, "checkpoint.cosigned: %s", e);
            rc = EVLOG_EVERIFY;
        } else if (rep->cosignatures < EVLOG_BUNDLE_WITNESSES_MAX) {
            rep->cosigned_by[rep->cosignatures] = &ws[i];
            rep->cosigned_at[rep->cosignatures++] = when;
        }
    }
    free(cos);
    return rc;
}

static void first_bad_body(void *ctx, const char *path, const char *why)
{
    char *first = ctx;
    if (first[0] == '\0') {
        snprintf(first, 256, "%s: %s", path, why);
    }
}

/* raw/, if the bundle has one: every body intact and named by one of its contact entries. */
static int check_bundle_bodies(const char *dir, const struct keyset *named,
                               struct evlog_bundle_report *rep, char *err, size_t errlen)
{
    if (!evfile_exists(dir, RAW_DIR)) {
        return 0;
    }
    struct raw_check_result res;
    memset(&res, 0, sizeof res);
    char first[256] = "";
    int rc = raw_check_dir(dir, named, NULL, &res, first_bad_body, first, err, errlen);
    if (rc != 0) {
        return EVLOG_EIO;
    }
    if (res.damaged > 0 || res.stray > 0) {
        return err_set(err, errlen, "%s", first), EVLOG_EVERIFY;
    }
    if (res.unreferenced > 0) {
        return err_set(err, errlen, "%llu file(s) in raw/ are the body of no contact entry here",
                       (unsigned long long)res.unreferenced),
               EVLOG_EVERIFY;
    }
    rep->bodies = res.files;
    return 0;
}

int evlog_bundle_verify(const char *dir, const struct evlog_verifier *v, const char *ca_file,
                        const struct evlog_verifier *witnesses, size_t nw,
                        struct evlog_bundle_report *rep, char *err, size_t errlen)
{
    struct evlog_bundle_report own_rep;
    if (rep == NULL) {
        rep = &own_rep;
    }
    memset(rep, 0, sizeof *rep);
    struct evlog_verifier own;
    char path[EVLOG_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/log.vkey", dir);
    int vrc = evlog_verifier_load(path, &own, err, errlen);
    if (vrc != 0) {
        return vrc;
    }
    if (v == NULL) {
        v = &own;
    } else if (strcmp(own.name, v->name) != 0 || own.keyid != v->keyid ||
               memcmp(own.pub, v->pub, sizeof own.pub) != 0) {
        /* A bundle names the key it claims; one that names another than the trusted key is
         * wrong even if the trusted key signed its checkpoint. */
        return err_set(err, errlen, "log.vkey: the bundle names %s+%08x, not the trusted key",
                       own.name, (unsigned)own.keyid),
               EVLOG_EVERIFY;
    }
    char *note = NULL, *json = NULL;
    size_t nlen, jlen;
    int rc = evfile_read(dir, "checkpoint", &note, &nlen, EVLOG_NOTE_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct evlog_checkpoint cp, mcp;
    char e[256];
    if (evlog_checkpoint_open(note, nlen, v, &cp, e, sizeof e) != 0) {
        free(note);
        return err_set(err, errlen, "checkpoint: %s", e), EVLOG_EVERIFY;
    }
    rc = check_bundle_timestamp(dir, note, nlen, ca_file, rep, err, errlen);
    if (rc == 0) {
        rc = check_bundle_cosigned(dir, note, nlen, witnesses, nw, rep, err, errlen);
    }
    free(note);
    if (rc != 0) {
        return rc;
    }
    rc = evfile_read(dir, "bundle.json", &json, &jlen, MANIFEST_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct bundle_ctx ctx = {dir, err, errlen, 0, {0}, false};
    uint64_t count = 0;
    rc = parse_manifest(json, jlen, &mcp, check_entry_file, &ctx, &count, err, errlen);
    free(json);
    if (rc == 0 && ctx.oom) {
        rc = EVLOG_ENOMEM;
    }
    if (rc == 0) {
        rc = check_bundle_bodies(dir, &ctx.bodies, rep, err, errlen);
    }
    keyset_free(&ctx.bodies);
    if (rc == 0 && (mcp.size != cp.size || memcmp(mcp.root, cp.root, 32) != 0 ||
                    strcmp(mcp.origin, cp.origin) != 0)) {
        err_set(err, errlen, "bundle.json: tree head differs from the signed checkpoint");
        rc = EVLOG_EVERIFY;
    }
    rep->entries = rc == 0 ? count : 0;
    rep->opened = rc == 0 ? ctx.opened : 0;
    rep->tree_size = cp.size;
    return rc;
}
