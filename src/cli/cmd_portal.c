/* cmd_portal.c -- `sinkd portal`: run the authorities' portal, check an authorities file, issue
 * a token, and list, approve or reject disinfection requests (docs/portal.md). */
#include "cli/cli.h"
#include "cli/commands.h"
#include "enrich/enrich.h"
#include "evidence/access.h"
#include "policy/policy.h"
#include "portal/portal.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char portal_usage[] =
    "usage: sinkd portal --state DIR --listen HOST:PORT --authorities FILE --tls-cert CERT\n"
    "                    --tls-key KEY [options]\n"
    "       sinkd portal check FILE\n"
    "       sinkd portal token\n"
    "       sinkd portal requests --state DIR [--json]\n"
    "       sinkd portal approve ID --state DIR --policy FILE [--command-id ID]\n"
    "                    [--authorities FILE] [--rate N] [--exclude-tags LIST] [--operator NAME]\n"
    "       sinkd portal reject ID --state DIR --reason TEXT [--operator NAME]\n"
    "\n"
    "The authorities' portal: an HTTPS server, separate from serve, where each authority named\n"
    "in FILE sees only its own victims (its countries, ASNs or networks), downloads them\n"
    "(Shadowserver CSV, IntelMQ, n6 JSON), gets evidence bundles and asks for disinfection.\n"
    "Every answered read is put on the record. See docs/portal.md.\n"
    "\n"
    "  --state DIR           serve's state directory (log/, registry.db); the portal keeps its\n"
    "                        requests in DIR/portal/\n"
    "  --listen HOST:PORT    HTTPS address (IPv6 as [::1]:8443)\n"
    "  --authorities FILE    the authorities file (sinkd portal check FILE); SIGHUP reloads it\n"
    "  --tls-cert CERT       PEM certificate chain; --tls-key KEY its PEM private key\n"
    "  --registry URL        the shared PostgreSQL registry (default DIR/registry.db)\n"
    "  --node NAME           node name in access records (default: host name)\n"
    "  --data-dir DIR        where the AS names for IntelMQ rows are (DIR/npm/asn; default\n"
    "                        $SINKD_DATA_DIR or the installed data)\n"
    "  --user USER           after binding, become USER (required when started as root,\n"
    "                        unless --allow-root); every capability is dropped either way\n"
    "  --allow-root          run as root anyway (tests, throwaway sandboxes)\n"
    "  --seccomp kill|off    serve's system-call allow-list once started (default kill)\n"
    "  --ready-file FILE     written once the portal listens\n"
    "\n"
    "check: validates FILE and says what each authority may see (exit 0 valid, 1 invalid,\n"
    "  2 usage). token: prints a new random token and the token_sha256 line for FILE.\n"
    "requests: lists disinfection requests. approve: writes a new version of the policy FILE\n"
    "  with the request's uninstall authorisation, with --command-id (the seized variant's\n"
    "  self-delete id; without it serve's --uninstall-command applies, and with neither nothing\n"
    "  is sent), checked by the policy parser; the old version is kept\n"
    "  in DIR/portal/policies/); serve loads it on SIGHUP and logs its hash. reject: records\n"
    "  the refusal and its reason. The authority sees either on its page and through the API.\n";

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* "--opt VALUE": returns VALUE and advances *i, or NULL (with *rc = 2 when it is missing). */
static const char *opt_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                             int *rc)
{
    if (argv[*i] == NULL || strcmp(argv[*i], name) != 0) {
        return NULL;
    }
    /* argv[argc] is NULL; testing the element too lets NULL mean only "not this option". */
    if (*i + 1 >= argc || argv[*i + 1] == NULL) {
        *rc = cli_usage_error(cmd, "%s needs a value", name);
        return NULL;
    }
    return argv[++*i];
}

static int run_portal(int argc, char **argv)
{
    struct portal_config cfg = {.seccomp = true, .log = stderr};
    const char *listen = NULL, *data_dir = cli_data_dir();
    char node[64] = "";
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        if (argv[i] == NULL) {
            break;
        }
        const char *v;
        if (is_help(argv[i])) {
            fputs(portal_usage, stdout);
            return 0;
        } else if ((v = opt_value("portal", argc, argv, &i, "--state", &rc)) != NULL) {
            cfg.state_dir = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--listen", &rc)) != NULL) {
            listen = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--authorities", &rc)) != NULL) {
            cfg.authorities_path = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--tls-cert", &rc)) != NULL) {
            cfg.tls_cert = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--tls-key", &rc)) != NULL) {
            cfg.tls_key = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--registry", &rc)) != NULL) {
            cfg.registry = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--data-dir", &rc)) != NULL) {
            data_dir = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--node", &rc)) != NULL) {
            snprintf(node, sizeof(node), "%s", v);
        } else if ((v = opt_value("portal", argc, argv, &i, "--user", &rc)) != NULL) {
            cfg.user = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--ready-file", &rc)) != NULL) {
            cfg.ready_file = v;
        } else if ((v = opt_value("portal", argc, argv, &i, "--seccomp", &rc)) != NULL) {
            if (strcmp(v, "kill") == 0) {
                cfg.seccomp = true;
            } else if (strcmp(v, "off") == 0) {
                cfg.seccomp = false;
            } else {
                rc = cli_usage_error("portal", "--seccomp: '%s' is not kill or off", v);
            }
        } else if (strcmp(argv[i], "--allow-root") == 0) {
            cfg.allow_root = true;
        } else if (rc == 0) {
            rc = cli_usage_error("portal", "unknown option '%s'", argv[i]);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (cfg.state_dir == NULL || listen == NULL || cfg.authorities_path == NULL ||
        cfg.tls_cert == NULL || cfg.tls_key == NULL) {
        return cli_usage_error("portal", "--state, --listen, --authorities, --tls-cert and "
                                         "--tls-key are required (HTTPS only)");
    }
    char err[512];
    if (net_addr_parse_hostport(listen, &cfg.listen, err, sizeof(err)) != 0) {
        return cli_usage_error("portal", "--listen: %s", err);
    }
    struct stat sb;
    if (stat(cfg.state_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "sinkd portal: --state %s: not a directory (serve makes it)\n",
                cfg.state_dir);
        return 1;
    }
    if (node[0] == '\0' && gethostname(node, sizeof(node) - 1) != 0) {
        snprintf(node, sizeof(node), "portal");
    }
    cfg.node = node;
    /* IntelMQ rows name each source's AS, as sinkd report's do; like the report, a missing data
     * file leaves the names out rather than stopping the portal. */
    struct enrich_as_names *names = NULL;
    if (enrich_as_names_load(&names, data_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd portal: AS names left out of IntelMQ rows: %s\n", err);
    }
    cfg.as_names = names;
    rc = portal_run(&cfg, err, sizeof(err)) != 0 ? 1 : 0;
    if (rc != 0) {
        fprintf(stderr, "sinkd portal: %s\n", err);
    }
    enrich_as_names_free(names);
    return rc;
}

static int run_check(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (argv[i] == NULL) {
            break;
        }
        if (is_help(argv[i])) {
            fputs(portal_usage, stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return cli_usage_error("portal check", "unknown option '%s'", argv[i]);
        }
        if (path != NULL) {
            return cli_usage_error("portal check", "more than one FILE ('%s')", argv[i]);
        }
        path = argv[i];
    }
    if (path == NULL) {
        return cli_usage_error("portal check", "missing FILE");
    }
    char err[512];
    struct portal_authorities *as = NULL;
    if (portal_authorities_load(path, &as, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd portal check: invalid authorities file: %s\n", err);
        return 1;
    }
    char *text = portal_authorities_describe(as);
    portal_authorities_free(as);
    if (text == NULL) {
        fprintf(stderr, "sinkd portal check: out of memory\n");
        return 1;
    }
    printf("%s: valid.\n%s", path, text);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int run_token(int argc, char **argv)
{
    if (argc > 2) {
        return is_help(argv[2]) ? (fputs(portal_usage, stdout), 0)
                                : cli_usage_error("portal token", "takes no arguments");
    }
    unsigned char raw[32], digest[32];
    char token[65], hex[65];
    if (RAND_bytes(raw, sizeof(raw)) != 1 ||
        EVP_Digest(NULL, 0, digest, NULL, EVP_sha256(), NULL) != 1) {
        fprintf(stderr, "sinkd portal token: no randomness\n");
        return 1;
    }
    for (size_t i = 0; i < 32; i++) {
        snprintf(token + 2 * i, 3, "%02x", raw[i]);
    }
    EVP_Digest(token, 64, digest, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    }
    printf("token (give it to the authority, once, over a secure channel; it is not kept):\n"
           "%s\n\nfor the authorities file:\ntoken_sha256 = %s\n",
           token, hex);
    return 0;
}

struct print_ctx {
    bool json;
    size_t n;
};

static int print_request(void *ctx, const struct portal_disinfection *r)
{
    struct print_ctx *p = ctx;
    p->n++;
    if (p->json) {
        char *text = portal_disinfection_json(r);
        if (text == NULL) {
            return -1;
        }
        printf("%s\n", text);
        free(text);
        return 0;
    }
    char nb[32], na[32], sub[32];
    time_t t;
    struct tm tm;
    t = (time_t)(r->not_before_us / 1000000);
    strftime(nb, sizeof(nb), "%Y-%m-%d", gmtime_r(&t, &tm));
    t = (time_t)(r->not_after_us / 1000000);
    strftime(na, sizeof(na), "%Y-%m-%d", gmtime_r(&t, &tm));
    t = (time_t)(r->submitted_us / 1000000);
    strftime(sub, sizeof(sub), "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
    printf("%4" PRIu64 "  %-9s  %-16s  submitted %s UTC  window %s..%s\n", r->id,
           portal_request_status_name(r->status), r->authority, sub, nb, na);
    printf("      scope:");
    for (size_t i = 0; i < r->n_countries; i++) {
        printf("%s%s", i ? "," : " countries ", r->countries[i]);
    }
    for (size_t i = 0; i < r->n_networks; i++) {
        struct net_addr m = {.family = r->networks[i].family};
        memcpy(m.ip, r->networks[i].ip, 16);
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&m, ip);
        printf("%s%s/%u", i ? "," : " networks ", ip, r->networks[i].prefix);
    }
    printf("\n      legal reference: %s\n      contact: %s\n", r->legal_reference, r->contact);
    if (r->status == PORTAL_REQ_REJECTED) {
        printf("      rejected by %s: %s\n", r->decided_by, r->reason);
    } else if (r->status == PORTAL_REQ_APPROVED) {
        printf("      approved by %s as %s\n", r->decided_by, r->authorisation);
    }
    return 0;
}

/* --operator, or the invoking user as access records name it ("alice (sudo)" through sudo). */
static void operator_name(const char *given, char *out, size_t len)
{
    if (given != NULL) {
        snprintf(out, len, "%s", given);
    } else {
        access_invoking_user(out, len);
    }
}

/* Reads a whole file (at most POLICY_MAX_FILE_BYTES); a missing file is empty. */
static int read_policy(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    *out = malloc(POLICY_MAX_FILE_BYTES + 1);
    *len = 0;
    if (*out == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    if (f == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    *len = fread(*out, 1, POLICY_MAX_FILE_BYTES + 1, f);
    int bad = ferror(f) || *len > POLICY_MAX_FILE_BYTES;
    fclose(f);
    return bad ? -1 : 0;
}

static int write_file(const char *path, const char *text, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp)) {
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        return -1;
    }
    bool ok = fwrite(text, 1, len, f) == len && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int decide(int argc, char **argv, bool approve)
{
    const char *cmd = approve ? "portal approve" : "portal reject";
    const char *state = NULL, *policy_path = NULL, *reason = NULL, *op = NULL, *auth_path = NULL;
    const char *exclude = NULL;
    uint64_t id = 0;
    double rate = 10;
    uint32_t command_id = 0;
    bool have_id = false;
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (argv[i] == NULL) {
            break;
        }
        const char *v;
        if (is_help(argv[i])) {
            fputs(portal_usage, stdout);
            return 0;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--state", &rc)) != NULL) {
            state = v;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--policy", &rc)) != NULL && approve) {
            policy_path = v;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--authorities", &rc)) != NULL && approve) {
            auth_path = v;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--exclude-tags", &rc)) != NULL && approve) {
            exclude = v;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--rate", &rc)) != NULL && approve) {
            char *end = NULL;
            rate = strtod(v, &end);
            if (end == NULL || *end != '\0' || !(rate >= 0.001) || rate > POLICY_RATE_MAX) {
                rc = cli_usage_error(cmd,
                                     "--rate: '%s' is not a number of commands per second "
                                     "(0.001..%.0f)",
                                     v, POLICY_RATE_MAX);
            }
        } else if ((v = opt_value(cmd, argc, argv, &i, "--command-id", &rc)) != NULL && approve) {
            uint64_t cid = 0;
            if (!cli_parse_u64(cmd, "command-id", v, 1, POLICY_COMMAND_ID_MAX, &cid)) {
                return 2;
            }
            command_id = (uint32_t)cid;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--reason", &rc)) != NULL && !approve) {
            reason = v;
        } else if ((v = opt_value(cmd, argc, argv, &i, "--operator", &rc)) != NULL) {
            op = v;
        } else if (rc == 0 && argv[i][0] != '-' && !have_id) {
            if (!cli_parse_u64(cmd, "ID", argv[i], 1, INT64_MAX, &id)) {
                return 2;
            }
            have_id = true;
        } else if (rc == 0) {
            rc = cli_usage_error(cmd, "unknown option '%s'", argv[i]);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (!have_id || state == NULL || (approve && policy_path == NULL) ||
        (!approve && (reason == NULL || reason[0] == '\0'))) {
        return cli_usage_error(cmd, approve ? "ID, --state and --policy are required"
                                            : "ID, --state and --reason are required");
    }
    /* requests.db (and its -wal/-shm), portal/policies/ and the spool must stay the service's;
     * the policy file (in /etc/sinkd, which the service must not write) is written as root. */
    if (cli_act_as_state_owner_keeping_root(cmd, state) != 0) {
        return 1;
    }
    char err[1024];
    struct portal_store *store = NULL;
    if (portal_store_open(&store, state, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd %s: %s\n", cmd, err);
        return 1;
    }
    struct portal_disinfection *r = malloc(sizeof(*r));
    int got = r == NULL ? -1 : portal_store_get(store, id, r, err, sizeof(err));
    if (got != 1 || r->status != PORTAL_REQ_PENDING) {
        if (got == 1) {
            fprintf(stderr, "sinkd %s: request %" PRIu64 " is %s already\n", cmd, id,
                    portal_request_status_name(r->status));
        } else {
            fprintf(stderr, "sinkd %s: %s\n", cmd,
                    got == 0 ? "no such request" : (r == NULL ? "out of memory" : err));
        }
        free(r);
        portal_store_close(store);
        return 1;
    }
    r->decided_us = (uint64_t)time(NULL) * 1000000u;
    operator_name(op, r->decided_by, sizeof(r->decided_by));
    int result = 0;
    if (!approve) {
        r->status = PORTAL_REQ_REJECTED;
        snprintf(r->reason, sizeof(r->reason), "%s", reason);
    } else {
        /* The authority's display name, if its file is given, goes into the authorisation. */
        char name[PORTAL_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", r->authority);
        struct portal_authorities *as = NULL;
        if (auth_path != NULL) {
            cli_as_invoker(true);
            int loaded = portal_authorities_load(auth_path, &as, err, sizeof(err));
            cli_as_invoker(false);
            if (loaded != 0) {
                fprintf(stderr, "sinkd %s: %s\n", cmd, err);
                result = 1;
            } else if (portal_authority_by_id(as, r->authority) != NULL) {
                snprintf(name, sizeof(name), "%s", portal_authority_by_id(as, r->authority)->name);
            }
            portal_authorities_free(as);
        }
        char *old = NULL, *next = NULL;
        size_t old_len = 0, next_len = 0;
        cli_as_invoker(true);
        errno = 0;
        int read_rc = result == 0 ? read_policy(policy_path, &old, &old_len) : 0;
        int read_errno = errno;
        cli_as_invoker(false);
        if (result == 0 && read_rc != 0) {
            fprintf(stderr, "sinkd %s: --policy %s: %s\n", cmd, policy_path,
                    read_errno ? strerror(read_errno) : "too large");
            result = 1;
        }
        const char *tags[POLICY_MAX_TAGS];
        size_t ntags = 0;
        char tagbuf[512] = "";
        if (exclude != NULL) {
            snprintf(tagbuf, sizeof(tagbuf), "%s", exclude);
            char *save = NULL;
            for (char *t = strtok_r(tagbuf, ",", &save); t != NULL && ntags < POLICY_MAX_TAGS;
                 t = strtok_r(NULL, ",", &save)) {
                tags[ntags++] = t;
            }
        }
        if (result == 0 &&
            portal_approve_policy(old, old_len, policy_path, r, name, rate, command_id, tags, ntags,
                                  &next, &next_len, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd %s: the new policy does not check: %s\n", cmd, err);
            result = 1;
        }
        /* The version in force is kept, named by its SHA-256, before it is replaced. */
        if (result == 0 && old_len > 0) {
            uint8_t d[32];
            char hist[PATH_MAX], dir[PATH_MAX];
            EVP_Digest(old, old_len, d, NULL, EVP_sha256(), NULL);
            snprintf(dir, sizeof(dir), "%s/portal/policies", state);
            int n = snprintf(hist, sizeof(hist), "%s/", dir);
            for (size_t i = 0; i < 32 && n > 0 && (size_t)n + 3 < sizeof(hist); i++) {
                n += snprintf(hist + n, sizeof(hist) - (size_t)n, "%02x", d[i]);
            }
            snprintf(hist + n, sizeof(hist) - (size_t)n, ".ini");
            if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || write_file(hist, old, old_len) != 0) {
                fprintf(stderr, "sinkd %s: keeping the old policy in %s: %s\n", cmd, dir,
                        strerror(errno));
                result = 1;
            }
        }
        if (result == 0) {
            cli_as_invoker(true);
            int written = write_file(policy_path, next, next_len);
            int write_errno = errno;
            cli_as_invoker(false);
            if (written != 0) {
                fprintf(stderr, "sinkd %s: writing %s: %s\n", cmd, policy_path,
                        strerror(write_errno));
                result = 1;
            }
        }
        if (result == 0) {
            EVP_Digest(next, next_len, r->policy_sha256, NULL, EVP_sha256(), NULL);
            r->status = PORTAL_REQ_APPROVED;
            snprintf(r->authorisation, sizeof(r->authorisation), "portal-%" PRIu64 "-*", r->id);
        }
        free(old);
        free(next);
    }
    cli_drop_kept_root(); /* the policy file is written: nothing more needs root */
    /* The decision goes on the record (a portal-decision record through the spool) before the
     * store says so; serve's writer, or this command when none runs, appends it to the log. */
    if (result == 0) {
        struct record *rec = calloc(1, sizeof(*rec));
        struct access_receipt receipt;
        if (rec == NULL) {
            fprintf(stderr, "sinkd %s: out of memory\n", cmd);
            result = 1;
        } else {
            rec->kind = RECORD_PORTAL_DECISION;
            struct portal_request_record *p = &rec->u.portal_request;
            p->time_us = r->decided_us;
            char host[64] = "";
            gethostname(host, sizeof(host) - 1);
            snprintf(p->node, sizeof(p->node), "%.31s", host);
            snprintf(p->operator_name, sizeof(p->operator_name), "%s", r->decided_by);
            snprintf(p->authority, sizeof(p->authority), "%s", r->authority);
            p->request_id = r->id;
            portal_disinfection_scope(r, p->scope, sizeof(p->scope));
            p->not_before_us = r->not_before_us;
            p->not_after_us = r->not_after_us;
            snprintf(p->legal_reference, sizeof(p->legal_reference), "%s", r->legal_reference);
            p->state = approve ? PORTAL_REQUEST_APPROVED : PORTAL_REQUEST_REJECTED;
            snprintf(p->reason, sizeof(p->reason), "%s", r->reason);
            snprintf(p->authorisation, sizeof(p->authorisation), "%s", r->authorisation);
            memcpy(p->policy_sha256, r->policy_sha256, 32);
            if (access_submit(state, rec, &receipt, err, sizeof(err)) != 0) {
                fprintf(stderr, "sinkd %s: the decision record could not be made durable: %s%s\n",
                        cmd, err, approve ? " (the policy file was already written)" : "");
                result = 1;
            }
            free(rec);
        }
    }
    if (result == 0) {
        int d = portal_store_decide(store, r, err, sizeof(err));
        if (d != 0) {
            fprintf(stderr, "sinkd %s: %s\n", cmd, d == 1 ? "decided meanwhile" : err);
            result = 1;
        }
    }
    if (result == 0 && approve) {
        char hex[65];
        for (size_t i = 0; i < 32; i++) {
            snprintf(hex + 2 * i, 3, "%02x", r->policy_sha256[i]);
        }
        printf("sinkd portal approve: request %" PRIu64 " approved; %s now holds authorisation(s) "
               "%s (policy SHA-256 %s).\nReload serve to put it in force (systemctl reload sinkd, "
               "or kill -HUP its pid): its policy-loaded record will carry that hash. Commands "
               "go out only under serve --enforce.\n",
               r->id, policy_path, r->authorisation, hex);
    } else if (result == 0) {
        printf("sinkd portal reject: request %" PRIu64 " rejected\n", r->id);
    }
    free(r);
    portal_store_close(store);
    return result;
}

static int run_requests(int argc, char **argv)
{
    const char *state = NULL;
    struct print_ctx p = {0};
    int rc = 0;
    for (int i = 2; i < argc && rc == 0; i++) {
        if (argv[i] == NULL) {
            break;
        }
        const char *v;
        if (is_help(argv[i])) {
            fputs(portal_usage, stdout);
            return 0;
        } else if ((v = opt_value("portal requests", argc, argv, &i, "--state", &rc)) != NULL) {
            state = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            p.json = true;
        } else if (rc == 0) {
            rc = cli_usage_error("portal requests", "unknown option '%s'", argv[i]);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (state == NULL) {
        return cli_usage_error("portal requests", "--state is required");
    }
    if (cli_act_as_state_owner("portal requests", state) != 0) {
        return 1; /* requests.db and its -wal/-shm stay the service's */
    }
    char err[512];
    struct portal_store *s = NULL;
    if (portal_store_open(&s, state, err, sizeof(err)) != 0 ||
        portal_store_list(s, NULL, print_request, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd portal requests: %s\n", err);
        portal_store_close(s);
        return 1;
    }
    portal_store_close(s);
    if (!p.json && p.n == 0) {
        printf("no disinfection requests\n");
    }
    return 0;
}

int cmd_portal(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "check") == 0) {
        return run_check(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "token") == 0) {
        return run_token(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "requests") == 0) {
        return run_requests(argc, argv);
    }
    if (argc >= 2 && strcmp(argv[1], "approve") == 0) {
        return decide(argc, argv, true);
    }
    if (argc >= 2 && strcmp(argv[1], "reject") == 0) {
        return decide(argc, argv, false);
    }
    return run_portal(argc, argv);
}
