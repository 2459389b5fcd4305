/* cmd_evidence.c -- `sinkd keygen`, `verify`, `prove` and `verify-bundle`: the evidence log's
 * operator and auditor commands. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "event/event.h"
#include "evidence/access.h"
#include "evidence/log.h"

#define PROVE_MAX_ENTRIES 100000u

static const char keygen_usage[] =
    "usage: sinkd keygen --name ORIGIN [--out DIR]\n"
    "\n"
    "Creates the evidence log's Ed25519 signing key in DIR (default ./keys): log.key (signer,\n"
    "mode 0600, golang.org/x/mod note format) and log.vkey (public verifier key to give to\n"
    "courts, CERTs and witnesses). ORIGIN names the log in every checkpoint, for example\n"
    "sinkhole.example.org/node1. Refuses if DIR holds either file already: a new key pair\n"
    "beside an existing public key would split the log's identity.\n"
    "\n"
    "Before the first serve: sinkd keygen --name ORIGIN --out STATE/keys, then\n"
    "sinkd serve --state STATE takes its origin from the key (docs/operations.md, \"The key\").\n"
    "\n"
    "  --name ORIGIN  log origin and key name (no spaces, no '+')\n"
    "  --out DIR      key directory (default: keys)\n"
    "  --help         this text\n";

static const char verify_usage[] =
    "usage: sinkd verify LOG_DIR --key VKEY_FILE [--tsa-ca FILE] [--witness VKEY_FILE]...\n"
    "\n"
    "Checks a C2SP tlog-tiles evidence log offline: every checkpoint's signature, every entry\n"
    "against its leaf hash, every tile against the level below, every checkpoint's root\n"
    "against the tree recomputed from the entries, and consistency between consecutive\n"
    "checkpoints; then every RFC 3161 timestamp in timestamps/ against the checkpoint it\n"
    "covers (`sinkd timestamp`), and the witnesses' cosignatures in cosignatures/ (`sinkd\n"
    "cosign`). Prints the first mismatch (file, byte, entry index) and exits 1 on any.\n"
    "\n"
    "  --key FILE     the log's verifier key (state/keys/log.vkey)\n"
    "  --tsa-ca FILE  PEM CA certificate(s) of the time-stamping authority: each timestamp's\n"
    "                 signer must chain to one (without it, only each token's signature with\n"
    "                 the certificate it carries is checked)\n"
    "  --witness FILE a witness's public key (type 0x04), repeatable: its cosignatures must\n"
    "                 verify, and it must have cosigned at least one checkpoint\n"
    "  --help         this text\n";

static const char prove_usage[] =
    "usage: sinkd prove --state DIR (--bot KEY | --entry INDEX)... --out BUNDLE_DIR\n"
    "                   [--checkpoint SIZE] --justification TEXT [--operator NAME]\n"
    "\n"
    "Writes an evidence bundle: the chosen log entries, their inclusion proofs to the latest\n"
    "signed checkpoint, the checkpoint, the verifier key and a README explaining how to check\n"
    "it by hand, plus the checkpoint's RFC 3161 timestamp if it has one (`sinkd timestamp`)\n"
    "and, under raw/, the message bodies `serve --keep-raw` kept for the chosen contacts.\n"
    "--bot selects every record (contact, decision, command) of that bot key.\n"
    "\n"
    "  --state DIR        the sinkd state directory\n"
    "  --bot KEY          32-hex bot key (as in `sinkd contacts`), may repeat\n"
    "  --entry INDEX      one log entry, may repeat\n"
    "  --out DIR          bundle directory to create\n"
    "  --checkpoint SIZE  prove against the archived checkpoint of this size (e.g. a\n"
    "                     timestamped one) instead of the latest\n" CLI_ACCESS_USAGE
    "  --help             this text\n"
    "\n"
    "A bundle discloses victims' data: it is written under a hidden name beside BUNDLE_DIR\n"
    "and renamed into place only once DIR's log records the access (the SHA-256 of the\n"
    "bundle's files, as `sha256sum` lists them).\n";

static const char verify_bundle_usage[] =
    "usage: sinkd verify-bundle BUNDLE_DIR [--key VKEY_FILE] [--tsa-ca FILE]\n"
    "                           [--witness VKEY_FILE]...\n"
    "\n"
    "Checks an evidence bundle: the checkpoint signature (with the bundle's log.vkey, or\n"
    "VKEY_FILE), each entry file against its leaf hash and each inclusion proof against the\n"
    "signed root, the checkpoint's RFC 3161 timestamp (checkpoint.tsr) and its witnesses'\n"
    "cosignatures (checkpoint.cosigned) if there are, and every message body in raw/ against\n"
    "its name and the contact entries that name it. Exits 1 on any mismatch.\n"
    "\n"
    "  --key FILE     verifier key to trust instead of the bundle's own log.vkey\n"
    "  --tsa-ca FILE  PEM CA certificate(s) of the time-stamping authority: the timestamp's\n"
    "                 signer must chain to one\n"
    "  --witness FILE a witness's public key, repeatable: checkpoint.cosigned must carry its\n"
    "                 valid cosignature\n"
    "  --help         this text\n";

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Option with a value: "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                             int *rc)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (strcmp(argv[*i], name) != 0) {
        return NULL;
    }
    /* argv[argc] is NULL; testing the element too lets a NULL return mean only "not this
     * option" (or an error in *rc), never a value. */
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        *rc = cli_usage_error(cmd, "option '%s' needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

int cmd_keygen(int argc, char **argv)
{
    const char *name = NULL, *out = "keys";
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        const char *v;
        if (is_help(argv[i])) {
            fputs(keygen_usage, stdout);
            return 0;
        } else if ((v = opt_value("keygen", argc, argv, &i, "--name", &rc)) != NULL) {
            name = v;
        } else if ((v = opt_value("keygen", argc, argv, &i, "--out", &rc)) != NULL) {
            out = v;
        } else if (rc != 0) {
            return rc;
        } else {
            return cli_usage_error("keygen", "unknown option '%s'", argv[i]);
        }
    }
    if (name == NULL) {
        return cli_usage_error("keygen", "--name is required");
    }
    if (!evlog_key_name_valid(name)) {
        return cli_usage_error("keygen", "--name: '%s' is not a valid key name (no spaces, no '+')",
                               name);
    }
    char err[512];
    /* --out STATE/keys before the first serve: the state directory may not exist yet. */
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", out);
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        if (cli_make_dirs(parent, 0750, err, sizeof err) != 0) {
            fprintf(stderr, "sinkd keygen: %s\n", err);
            return 1;
        }
    }
    if (evlog_keygen(out, name, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd keygen: %s\n", err);
        return 1;
    }
    printf("%s/log.key (signer, keep secret)\n%s/log.vkey (verifier, publish)\n", out, out);
    return 0;
}

static void print_timestamp(void *ctx, uint64_t size, const struct evlog_timestamp *ts)
{
    (void)ctx;
    printf("  timestamp: checkpoint %llu existed by %s, says %s (serial %s); %s\n",
           (unsigned long long)size, ts->time_text, ts->tsa, ts->serial,
           ts->chain_checked ? "signer chains to --tsa-ca" : "signer chain not checked");
}

static void print_cosignature(void *ctx, uint64_t size, const struct evlog_verifier *w,
                              uint64_t time)
{
    (void)ctx;
    printf("  cosignature: checkpoint %llu by witness %s at %llu (POSIX time)\n",
           (unsigned long long)size, w->name, (unsigned long long)time);
}

#define VERIFY_WITNESSES_MAX 16

/* Loads --witness key files; a log key given as one is refused by name. */
static int load_witnesses(const char *cmd, const char *const *files, size_t n,
                          struct evlog_verifier *out)
{
    for (size_t i = 0; i < n; i++) {
        char err[512] = "a log key (type 0x01), not a witness key (0x04)";
        if (evlog_verifier_load(files[i], &out[i], err, sizeof err) != 0 || !out[i].witness) {
            fprintf(stderr, "sinkd %s: --witness %s: %s\n", cmd, files[i], err);
            return -1;
        }
    }
    return 0;
}

int cmd_verify(int argc, char **argv)
{
    const char *dir = NULL, *key = NULL, *ca = NULL;
    const char *witness_files[VERIFY_WITNESSES_MAX];
    size_t nwitness = 0;
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        const char *v;
        if (is_help(argv[i])) {
            fputs(verify_usage, stdout);
            return 0;
        } else if ((v = opt_value("verify", argc, argv, &i, "--key", &rc)) != NULL) {
            key = v;
        } else if ((v = opt_value("verify", argc, argv, &i, "--tsa-ca", &rc)) != NULL) {
            ca = v;
        } else if ((v = opt_value("verify", argc, argv, &i, "--witness", &rc)) != NULL) {
            if (nwitness == VERIFY_WITNESSES_MAX) {
                return cli_usage_error("verify", "at most %d --witness keys", VERIFY_WITNESSES_MAX);
            }
            witness_files[nwitness++] = v;
        } else if (rc != 0) {
            return rc;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("verify", "unknown option '%s'", argv[i]);
        } else if (dir == NULL) {
            dir = argv[i];
        } else {
            return cli_usage_error("verify", "unexpected argument '%s'", argv[i]);
        }
    }
    if (dir == NULL || key == NULL) {
        return cli_usage_error("verify", "LOG_DIR and --key are required");
    }
    char err[1024];
    struct evlog_verifier vk;
    if (evlog_verifier_load(key, &vk, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd verify: %s\n", err);
        return 1;
    }
    struct evlog_verify_report rep;
    if (evlog_verify_dir(dir, &vk, &rep, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd verify: FAILED: %s: %s\n", dir, err);
        return 1;
    }
    int stamps = evlog_ts_verify_dir(dir, ca, print_timestamp, NULL, err, sizeof err);
    if (stamps < 0) {
        fprintf(stderr, "sinkd verify: FAILED: %s: %s\n", dir, err);
        return 1;
    }
    struct evlog_verifier witnesses[VERIFY_WITNESSES_MAX];
    if (load_witnesses("verify", witness_files, nwitness, witnesses) != 0) {
        return 1;
    }
    int cosigs = evlog_cosignatures_verify_dir(dir, witnesses, nwitness, print_cosignature, NULL,
                                               err, sizeof err);
    if (cosigs < 0) {
        fprintf(stderr, "sinkd verify: FAILED: %s: %s\n", dir, err);
        return 1;
    }
    printf("sinkd verify: OK: %s: %llu entries, %llu checkpoints, %llu tile files, %d "
           "timestamps, %d cosignatures checked\n",
           dir, (unsigned long long)rep.entries, (unsigned long long)rep.checkpoints,
           (unsigned long long)rep.tiles, stamps, cosigs);
    return 0;
}

static int describe_record(void *ctx, const uint8_t *entry, size_t len, char **out)
{
    (void)ctx;
    struct record *rec = malloc(sizeof *rec);
    if (rec == NULL) {
        return -1;
    }
    char err[128];
    json_t *j = NULL;
    if (event_decode(entry, len, rec, err, sizeof err) == 0) {
        j = event_to_json(rec);
    }
    free(rec);
    if (j == NULL) {
        return -1;
    }
    *out = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    return *out != NULL ? 0 : -1;
}

static const char *record_bot_key(const struct record *rec)
{
    switch (rec->kind) {
    case RECORD_CONTACT:
        return rec->u.contact.bot_key;
    case RECORD_DECISION:
        return rec->u.decision.bot_key;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return rec->u.command.bot_key;
    default:
        return NULL;
    }
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes a bundle that was never handed out (its access record could not be made). */
static void remove_held(const char *dir)
{
    (void)nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes the bundle under a hidden name beside `out`, makes its access record durable, and only
 * then renames it into place. Prints why on failure. */
static int prove_recorded(const char *state, uint64_t at_size, const uint64_t *idx, size_t n,
                          const char *out, const struct cli_access *access, const char *scope)
{
    char err[1024];
    struct stat st;
    if (stat(out, &st) == 0 && (!S_ISDIR(st.st_mode) || rmdir(out) != 0)) {
        fprintf(stderr, "sinkd prove: %s: exists and is not an empty directory\n", out);
        return 1;
    }
    char held[EVLOG_PATH_MAX];
    if ((size_t)snprintf(held, sizeof held, "%s.held-XXXXXX", out) >= sizeof held ||
        mkdtemp(held) == NULL) {
        fprintf(stderr, "sinkd prove: %s: cannot make a directory beside it: %s\n", out,
                strerror(errno));
        return 1;
    }
    uint8_t sha[32];
    uint64_t files = 0;
    if (evlog_bundle_write(state, at_size, idx, n, held, describe_record, NULL, err, sizeof err) !=
            0 ||
        access_dir_digest(held, sha, &files, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd prove: %s\n", err);
        remove_held(held);
        return 1;
    }
    if (cli_access_record("prove", state, access, "prove", scope, n, sha) != 0) {
        remove_held(held);
        return 1;
    }
    if (rename(held, out) != 0) {
        fprintf(stderr, "sinkd prove: %s -> %s: %s\n", held, out, strerror(errno));
        return 1;
    }
    return 0;
}

int cmd_prove(int argc, char **argv)
{
    const char *state = NULL, *out = NULL;
    uint64_t at_size = 0;
    struct cli_access access = {0};
    const char *bots[64];
    size_t nbots = 0, n = 0;
    uint64_t *idx = calloc(PROVE_MAX_ENTRIES, sizeof *idx);
    if (idx == NULL) {
        fprintf(stderr, "sinkd prove: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *v;
        if (is_help(argv[i])) {
            fputs(prove_usage, stdout);
            free(idx);
            return 0;
        } else if ((v = opt_value("prove", argc, argv, &i, "--state", &rc)) != NULL) {
            state = v;
        } else if ((v = opt_value("prove", argc, argv, &i, "--out", &rc)) != NULL) {
            out = v;
        } else if ((v = opt_value("prove", argc, argv, &i, "--justification", &rc)) != NULL) {
            access.justification = v;
        } else if ((v = opt_value("prove", argc, argv, &i, "--operator", &rc)) != NULL) {
            access.operator_name = v;
        } else if ((v = opt_value("prove", argc, argv, &i, "--bot", &rc)) != NULL) {
            if (nbots == sizeof bots / sizeof bots[0]) {
                rc = cli_usage_error("prove", "at most 64 --bot options");
            } else if (strlen(v) != 32 || strspn(v, "0123456789abcdef") != 32) {
                rc = cli_usage_error("prove", "--bot: '%s' is not a 32-hex bot key", v);
            } else {
                bots[nbots++] = v;
            }
        } else if ((v = opt_value("prove", argc, argv, &i, "--checkpoint", &rc)) != NULL) {
            if (!cli_parse_u64("prove", "checkpoint", v, 1, UINT64_MAX, &at_size)) {
                rc = 2;
            }
        } else if ((v = opt_value("prove", argc, argv, &i, "--entry", &rc)) != NULL) {
            uint64_t e;
            if (!cli_parse_u64("prove", "entry", v, 0, UINT64_MAX - 1, &e)) {
                rc = 2;
            } else if (n == PROVE_MAX_ENTRIES) {
                rc = cli_usage_error("prove", "more than %u entries", PROVE_MAX_ENTRIES);
            } else {
                idx[n++] = e;
            }
        } else if (rc == 0) {
            rc = cli_usage_error("prove", "unknown option '%s'", argv[i]);
        }
    }
    if (rc == 0 && (state == NULL || out == NULL || (n == 0 && nbots == 0))) {
        free(idx);
        return cli_usage_error("prove", "--state, --out and at least one --bot or --entry are "
                                        "required");
    }
    if (rc == 0) {
        rc = cli_access_check("prove", &access);
    }
    if (rc != 0 || state == NULL || out == NULL) {
        free(idx);
        return rc != 0 ? rc : 2;
    }
    char err[1024];
    if (nbots > 0) {
        /* Scan the durable entries for the bots' records. */
        struct evlog_reader *r;
        struct record *rec = malloc(sizeof *rec);
        if (rec == NULL || evlog_reader_open(&r, state, 0, err, sizeof err) != 0) {
            fprintf(stderr, "sinkd prove: %s\n", rec == NULL ? "out of memory" : err);
            free(rec);
            free(idx);
            return 1;
        }
        const uint8_t *entry;
        size_t len;
        uint64_t index;
        int got;
        size_t before = n;
        while ((got = evlog_reader_next(r, &entry, &len, &index, err, sizeof err)) == 1) {
            char derr[64];
            if (event_decode(entry, len, rec, derr, sizeof derr) != 0) {
                continue;
            }
            const char *bk = record_bot_key(rec);
            for (size_t b = 0; bk != NULL && b < nbots; b++) {
                if (strcmp(bk, bots[b]) == 0 && n < PROVE_MAX_ENTRIES) {
                    idx[n++] = index;
                    break;
                }
            }
        }
        evlog_reader_close(r);
        free(rec);
        if (got < 0) {
            fprintf(stderr, "sinkd prove: %s\n", err);
            free(idx);
            return 1;
        }
        if (n == before) {
            fprintf(stderr, "sinkd prove: no records of the given bot key(s) in %s\n", state);
            free(idx);
            return 1;
        }
    }
    char scope[512];
    int len = snprintf(scope, sizeof scope, "state=%s entries=%zu", state, n);
    for (size_t b = 0; b < nbots && len > 0 && (size_t)len < sizeof scope; b++) {
        len += snprintf(scope + len, sizeof scope - (size_t)len, " bot=%s", bots[b]);
    }
    rc = prove_recorded(state, at_size, idx, n, out, &access, scope);
    free(idx);
    if (rc != 0) {
        return 1;
    }
    printf("sinkd prove: %zu entries with inclusion proofs written to %s\n", n, out);
    return 0;
}

int cmd_verify_bundle(int argc, char **argv)
{
    const char *dir = NULL, *key = NULL, *ca = NULL;
    const char *witness_files[VERIFY_WITNESSES_MAX];
    size_t nwitness = 0;
    for (int i = 1; i < argc; i++) {
        int rc = 0;
        const char *v;
        if (is_help(argv[i])) {
            fputs(verify_bundle_usage, stdout);
            return 0;
        } else if ((v = opt_value("verify-bundle", argc, argv, &i, "--witness", &rc)) != NULL) {
            if (nwitness == VERIFY_WITNESSES_MAX) {
                return cli_usage_error("verify-bundle", "at most %d --witness keys",
                                       VERIFY_WITNESSES_MAX);
            }
            witness_files[nwitness++] = v;
        } else if ((v = opt_value("verify-bundle", argc, argv, &i, "--key", &rc)) != NULL) {
            key = v;
        } else if ((v = opt_value("verify-bundle", argc, argv, &i, "--tsa-ca", &rc)) != NULL) {
            ca = v;
        } else if (rc != 0) {
            return rc;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("verify-bundle", "unknown option '%s'", argv[i]);
        } else if (dir == NULL) {
            dir = argv[i];
        } else {
            return cli_usage_error("verify-bundle", "unexpected argument '%s'", argv[i]);
        }
    }
    if (dir == NULL) {
        return cli_usage_error("verify-bundle", "BUNDLE_DIR is required");
    }
    char err[1024];
    struct evlog_verifier vk;
    if (key != NULL && evlog_verifier_load(key, &vk, err, sizeof err) != 0) {
        fprintf(stderr, "sinkd verify-bundle: %s\n", err);
        return 1;
    }
    struct evlog_verifier witnesses[VERIFY_WITNESSES_MAX];
    if (load_witnesses("verify-bundle", witness_files, nwitness, witnesses) != 0) {
        return 1;
    }
    struct evlog_bundle_report rep;
    if (evlog_bundle_verify(dir, key != NULL ? &vk : NULL, ca, witnesses, nwitness, &rep, err,
                            sizeof err) != 0) {
        fprintf(stderr, "sinkd verify-bundle: FAILED: %s: %s\n", dir, err);
        return 1;
    }
    printf("sinkd verify-bundle: OK: %llu entries included in the signed tree of size %llu\n",
           (unsigned long long)rep.entries, (unsigned long long)rep.tree_size);
    if (rep.timestamped) {
        print_timestamp(NULL, rep.tree_size, &rep.timestamp);
    }
    for (size_t i = 0; i < rep.cosignatures; i++) {
        print_cosignature(NULL, rep.tree_size, rep.cosigned_by[i], rep.cosigned_at[i]);
    }
    if (rep.bodies > 0) {
        printf("  %llu message bodies in raw/, each hashing to the body_sha256 of a contact "
               "entry\n",
               (unsigned long long)rep.bodies);
    }
    return 0;
}
