/* cmd_evidence.c -- `sinkd keygen`, `verify` and `verify-bundle`: the evidence log's
 * operator and auditor commands (`prove` is cmd_prove.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "event/event.h"
#include "evidence/log.h"

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
    "       sinkd verify LOG_DIR --key VKEY_FILE [LOG_DIR --key VKEY_FILE]... [--registry TARGET]\n"
    "                    [--tsa-ca FILE] [--witness VKEY_FILE]...\n"
    "\n"
    "Checks a C2SP tlog-tiles evidence log offline: every checkpoint's signature, every entry\n"
    "against its leaf hash, every tile against the level below, every checkpoint's root\n"
    "against the tree recomputed from the entries, and consistency between consecutive\n"
    "checkpoints; then every RFC 3161 timestamp in timestamps/ against the checkpoint it\n"
    "covers (`sinkd timestamp`), and the witnesses' cosignatures in cosignatures/ (`sinkd\n"
    "cosign`). Prints the first mismatch (file, byte, entry index) and exits 1 on any.\n"
    "\n"
    "Several nodes' logs (each LOG_DIR followed by its own --key) are each checked so; with\n"
    "--registry, the registry they share (a postgresql:// URL) must hold exactly these logs,\n"
    "applied no further than their latest checkpoints, and its cross-node totals (bots,\n"
    "source addresses, commanded bots, contacts and commands per day) must equal those of\n"
    "the verified entries applied afresh. Exits 1 on any difference, naming it.\n"
    "\n"
    "  --key FILE     the log's verifier key (state/keys/log.vkey)\n"
    "  --registry TARGET  the registry whose cross-node totals are checked\n"
    "  --tsa-ca FILE  PEM CA certificate(s) of the time-stamping authority: each timestamp's\n"
    "                 signer must chain to one (without it, only each token's signature with\n"
    "                 the certificate it carries is checked)\n"
    "  --witness FILE a witness's public key (type 0x04), repeatable: its cosignatures must\n"
    "                 verify, and it must have cosigned at least one checkpoint\n"
    "  --help         this text\n";

static const char verify_bundle_usage[] =
    "usage: sinkd verify-bundle BUNDLE_DIR [--key VKEY_FILE] [--tsa-ca FILE]\n"
    "                           [--witness VKEY_FILE]...\n"
    "\n"
    "Checks an evidence bundle: the checkpoint signature (with VKEY_FILE, the log's published\n"
    "key; without --key only with the bundle's own log.vkey, which its maker chose, and the\n"
    "result line says so), each entry file against its leaf hash and each inclusion proof\n"
    "against the signed root, the checkpoint's RFC 3161 timestamp (checkpoint.tsr) and its\n"
    "witnesses' cosignatures (checkpoint.cosigned) if there are, and every message body in\n"
    "raw/ against its name and the contact entries that name it. Exits 1 on any mismatch.\n"
    "\n"
    "  --key FILE     the log's verifier key, as published: the key to trust (the bundle's\n"
    "                 own log.vkey proves nothing about who signed)\n"
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
        /* keys/ in a state directory: the service must be able to read log.key (0600). */
        if (cli_act_as_state_owner("keygen", parent) != 0) {
            return 1;
        }
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
    if (cmd_verify_is_nodes(argc, argv)) {
        return cmd_verify_nodes(argc, argv);
    }
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
    if (key != NULL) {
        printf("sinkd verify-bundle: OK: %llu entries included in the signed tree of size %llu, "
               "signed by %s+%08x (--key)\n",
               (unsigned long long)rep.entries, (unsigned long long)rep.tree_size, vk.name,
               (unsigned)vk.keyid);
    } else {
        /* Whoever made the bundle chose that key: anyone can make a bundle that checks against
         * a key of their own. Say so where the verdict is. */
        char own[1024];
        snprintf(own, sizeof own, "%s/log.vkey", dir);
        struct evlog_verifier bk;
        bool named = evlog_verifier_load(own, &bk, err, sizeof err) == 0;
        printf("sinkd verify-bundle: OK ONLY AGAINST THE BUNDLE'S OWN KEY %s+%08x: %llu entries "
               "included in the signed tree of size %llu; that key was not checked against one "
               "you trust (give --key with the log's published key)\n",
               named ? bk.name : "?", named ? (unsigned)bk.keyid : 0u,
               (unsigned long long)rep.entries, (unsigned long long)rep.tree_size);
    }
    if (rep.timestamped) {
        print_timestamp(NULL, rep.tree_size, &rep.timestamp);
    }
    for (size_t i = 0; i < rep.cosignatures; i++) {
        print_cosignature(NULL, rep.tree_size, rep.cosigned_by[i], rep.cosigned_at[i]);
    }
    if (rep.opened > 0) {
        printf("  %llu sealed entries opened with the per-record keys the bundle discloses\n",
               (unsigned long long)rep.opened);
    }
    if (rep.bodies > 0) {
        printf("  %llu message bodies in raw/, each hashing to the body_sha256 of a contact "
               "entry\n",
               (unsigned long long)rep.bodies);
    }
    return 0;
}
