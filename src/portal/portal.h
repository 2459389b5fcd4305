/* portal.h -- the authorities' portal: an HTTPS server (OpenSSL, http_parser) separate from serve
 * where each authority named in an authorities file sees only its own victims (its countries,
 * ASNs and networks), downloads them, asks for disinfection, and where every answered read is
 * put on the record. The whole contract of src/portal/ (docs/portal.md is the operator's view). */
#ifndef SINKD_PORTAL_PORTAL_H
#define SINKD_PORTAL_PORTAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event/event.h"
#include "util/addr.h"

/* ---- the authorities file ----------------------------------------------------------------- */

/* Bounds: a file past one of them is refused, never truncated. */
#define PORTAL_AUTH_FILE_MAX (1u << 20) /* bytes */
#define PORTAL_AUTH_LINE_MAX 1024       /* one physical line */
#define PORTAL_AUTHORITIES_MAX 256
#define PORTAL_ID_MAX 63 /* [authority <id>]: letters, digits, '-', '_', '.' */
#define PORTAL_NAME_MAX 127
#define PORTAL_COUNTRIES_MAX 250
#define PORTAL_ASNS_MAX 256
#define PORTAL_NETWORKS_MAX 256
#define PORTAL_MAX_DAYS_OLD_MAX 3650

/* One authority: who it is, how it proves it, what it may see and do. Its scope is the n6
 * "inside" rule: a victim is its own when the victim's country is in `countries`, OR its AS in
 * `asns`, OR its address in one of `networks` (the latest contact's, as the registry holds it). */
struct portal_authority {
    char id[PORTAL_ID_MAX + 1];
    char name[PORTAL_NAME_MAX + 1];
    unsigned line; /* of the section header */
    char countries[PORTAL_COUNTRIES_MAX][3];
    size_t n_countries;
    uint32_t asns[PORTAL_ASNS_MAX];
    size_t n_asns;
    struct net_cidr networks[PORTAL_NETWORKS_MAX];
    size_t n_networks;
    bool has_token; /* token_sha256: SHA-256 of the Bearer token (the token is never stored) */
    uint8_t token_sha256[32];
    bool has_cert; /* client_cert_sha256: SHA-256 of the DER client certificate (mTLS) */
    uint8_t cert_sha256[32];
    bool may_read;         /* may = read: its victims, statistics, bundles */
    bool may_request;      /* may = request: ask for disinfection within its scope */
    uint32_t max_days_old; /* rows last seen longer ago are not handed out */
};

struct portal_authorities {
    size_t n;
    struct portal_authority *a[PORTAL_AUTHORITIES_MAX];
    uint8_t sha256[32]; /* of the exact bytes parsed */
};

/* Parses an authorities file held in memory. Every key unknown, repeated, missing or out of
 * range is refused with "name:line: authority 'id': what" (the policy file's house style).
 * All or nothing: 0 and *out, or -1 and err. */
int portal_authorities_parse(const char *text, size_t len, const char *name,
                             struct portal_authorities **out, char *err, size_t errlen);
int portal_authorities_load(const char *path, struct portal_authorities **out, char *err,
                            size_t errlen);
void portal_authorities_free(struct portal_authorities *as);
/* Plain words: each authority, its scope, how it logs in, what it may do. malloc'd. */
char *portal_authorities_describe(const struct portal_authorities *as);

/* Is a victim (country "" if unknown, ASN 0 if unknown, address) inside the authority's scope? */
bool portal_scope_holds(const struct portal_authority *a, const char *cc, uint32_t asn,
                        const struct net_addr *ip);
bool portal_scope_has_country(const struct portal_authority *a, const char *cc);
bool portal_scope_has_asn(const struct portal_authority *a, uint32_t asn);
/* true when `net` lies wholly inside one of the authority's networks. */
bool portal_scope_has_network(const struct portal_authority *a, const struct net_cidr *net);

/* The authority whose token_sha256 is SHA-256(token), comparing with CRYPTO_memcmp against every
 * authority (no early exit), or NULL. */
const struct portal_authority *portal_authority_by_token(const struct portal_authorities *as,
                                                         const char *token, size_t len);
/* The authority whose client_cert_sha256 equals `fingerprint`, or NULL. */
const struct portal_authority *portal_authority_by_cert(const struct portal_authorities *as,
                                                        const uint8_t fingerprint[32]);
const struct portal_authority *portal_authority_by_id(const struct portal_authorities *as,
                                                      const char *id);

/* ---- HTTP requests (pure parsers over a buffer, fuzzed) ------------------------------------ */

#define PORTAL_HEAD_MAX 8192        /* request line and headers */
#define PORTAL_BODY_MAX (64 * 1024) /* a POST body (forms, JSON) */
#define PORTAL_PATH_MAX 256
#define PORTAL_QUERY_MAX 2048
#define PORTAL_JUSTIFICATION_MAX 511
#define PORTAL_TOKEN_MAX 256

enum portal_method { PORTAL_GET = 1, PORTAL_POST = 2, PORTAL_HEAD_METHOD = 3, PORTAL_OTHER = 4 };

struct portal_request {
    enum portal_method method;
    char path[PORTAL_PATH_MAX + 1];   /* percent-decoding is left to the router */
    char query[PORTAL_QUERY_MAX + 1]; /* after '?', raw */
    char authorization[PORTAL_TOKEN_MAX + 16];
    char justification[PORTAL_JUSTIFICATION_MAX + 1]; /* X-Justification */
    char cookie[1024];
    char csrf[96]; /* X-CSRF-Token */
    char content_type[128];
    char origin[256];
    bool has_authorization, has_justification;
    const char *body; /* points into the parsed buffer */
    size_t body_len;
    size_t consumed; /* bytes of the buffer this request took */
};

enum portal_parse_result {
    PORTAL_PARSE_DONE = 1,
    PORTAL_PARSE_NEED_MORE = 0,
    PORTAL_PARSE_BAD = -1,       /* not HTTP/1.x, malformed, a repeated security header, chunked */
    PORTAL_PARSE_TOO_LARGE = -2, /* head over PORTAL_HEAD_MAX, body over PORTAL_BODY_MAX, or a
                                    path/query/header value over its field */
};

/* Parses one request from buf[0..len) (http_parser does the HTTP). Pure: no I/O, no allocation.
 * `why` (may be NULL) receives a short reason for BAD / TOO_LARGE. */
enum portal_parse_result portal_http_parse(const char *buf, size_t len, struct portal_request *out,
                                           char *why, size_t whylen);

/* A query string or an application/x-www-form-urlencoded body, split and percent-decoded
 * ('+' is a space). At most PORTAL_PARAMS_MAX pairs, each name and value bounded. */
#define PORTAL_PARAMS_MAX 64
#define PORTAL_PARAM_NAME_MAX 32
#define PORTAL_PARAM_VALUE_MAX 1024
struct portal_param {
    char name[PORTAL_PARAM_NAME_MAX + 1];
    char value[PORTAL_PARAM_VALUE_MAX + 1];
};
struct portal_params {
    size_t n;
    struct portal_param p[PORTAL_PARAMS_MAX];
};
/* 0, or -1 with `why` (bad escape, NUL byte, too many pairs, a name or value too long). */
int portal_params_parse(const char *text, size_t len, struct portal_params *out, char *why,
                        size_t whylen);
/* The first value of `name`, or NULL. */
const char *portal_params_get(const struct portal_params *ps, const char *name);

/* The value of cookie `name` in a Cookie header into out (cap bytes); 0, or -1 when absent or
 * too long. */
int portal_cookie_get(const char *header, const char *name, char *out, size_t cap);

/* ---- disinfection requests ---------------------------------------------------------------- */

#define PORTAL_REQ_COUNTRIES_MAX 32
#define PORTAL_REQ_NETWORKS_MAX 64
#define PORTAL_REQ_TEXT_MAX 511
#define PORTAL_REQ_WINDOW_MAX_DAYS 366

enum portal_request_status {
    PORTAL_REQ_PENDING = 0,
    PORTAL_REQ_APPROVED = 1,
    PORTAL_REQ_REJECTED = 2,
};

/* What an authority asks for: uninstall commands for bots in these countries and/or networks
 * (each within its own scope), from not_before to not_after, under a legal reference. */
struct portal_disinfection {
    uint64_t id; /* assigned when stored */
    char authority[PORTAL_ID_MAX + 1];
    char countries[PORTAL_REQ_COUNTRIES_MAX][3];
    size_t n_countries;
    struct net_cidr networks[PORTAL_REQ_NETWORKS_MAX];
    size_t n_networks;
    char legal_reference[PORTAL_REQ_TEXT_MAX + 1];
    char contact[PORTAL_REQ_TEXT_MAX + 1];
    uint64_t not_before_us, not_after_us;
    uint64_t submitted_us;
    uint8_t status; /* enum portal_request_status */
    uint64_t decided_us;
    char decided_by[64];
    char reason[PORTAL_REQ_TEXT_MAX + 1];  /* rejection reason */
    char authorisation[PORTAL_ID_MAX + 1]; /* policy authorisation id(s) prefix, approved */
    uint8_t policy_sha256[32];             /* of the policy version it went into */
};

/* Reads a request from form or JSON parameters (countries "NG,GH", networks "CIDR,CIDR",
 * legal_reference, contact, not_before / not_after as YYYY-MM-DD or RFC 3339 UTC) and checks it
 * against the authority: may = request, every country among its countries, every network inside
 * one of its networks, at least one of the two, a window of at most PORTAL_REQ_WINDOW_MAX_DAYS
 * ending in the future. Returns 0; 403-type refusals return 1 (outside the scope, not allowed);
 * malformed input -1. `why` says which. */
int portal_disinfection_from_params(const struct portal_authority *a,
                                    const struct portal_params *ps, uint64_t now_us,
                                    struct portal_disinfection *out, char *why, size_t whylen);
/* The same from a JSON object text (the API's POST body). */
int portal_disinfection_from_json(const struct portal_authority *a, const char *json, size_t len,
                                  uint64_t now_us, struct portal_disinfection *out, char *why,
                                  size_t whylen);

const char *portal_request_status_name(uint8_t status);

/* The request store: state/portal/requests.db (SQLite). Written by the portal (submissions) and
 * by `sinkd portal approve|reject` (decisions); read by both. */
struct portal_store;
int portal_store_open(struct portal_store **out, const char *state_dir, char *err, size_t errlen);
void portal_store_close(struct portal_store *s);
/* Stores a new pending request; sets r->id and r->submitted_us (if 0). */
int portal_store_add(struct portal_store *s, struct portal_disinfection *r, char *err,
                     size_t errlen);
/* 1 found, 0 not, < 0 error. */
int portal_store_get(struct portal_store *s, uint64_t id, struct portal_disinfection *out,
                     char *err, size_t errlen);
/* Every request (authority NULL) or one authority's, oldest first. */
typedef int (*portal_request_fn)(void *ctx, const struct portal_disinfection *r);
int portal_store_list(struct portal_store *s, const char *authority, portal_request_fn fn,
                      void *ctx, char *err, size_t errlen);
/* Records the decision on a pending request (status, decided_us, decided_by, reason,
 * authorisation, policy_sha256 from r). A request already decided is refused (returns 1). */
int portal_store_decide(struct portal_store *s, const struct portal_disinfection *r, char *err,
                        size_t errlen);

/* "countries=NG,GH networks=102.88.0.0/15" (bounded), as the request records carry it. */
void portal_disinfection_scope(const struct portal_disinfection *r, char *out, size_t cap);

/* JSON form of a request (for the API and `portal requests --json`). */
char *portal_disinfection_json(const struct portal_disinfection *r);

/* The policy section an approval adds: authorisation(s) "portal-<id>-cc" (countries) and
 * "portal-<id>-net" (networks), each with the request's window, authority, legal reference,
 * mode = enforce, command = uninstall with command_id (0: none written, serve's
 * --uninstall-command default applies, and without one nothing is ever sent), the given rate and
 * exclude_tags; the serve --enforce gate still applies. Written through policy_append_authorisation
 * (policy/policy.h), so the policy module owns its format. Returns the new policy text (malloc'd)
 * after checking it parses. */
int portal_approve_policy(const char *old_text, size_t old_len, const char *policy_name,
                          const struct portal_disinfection *r, const char *authority_name,
                          double rate, uint32_t command_id, const char *const *exclude_tags,
                          size_t n_exclude_tags, char **new_text, size_t *new_len, char *err,
                          size_t errlen);

/* ---- the server --------------------------------------------------------------------------- */

#define PORTAL_MAX_CONNS 64
#define PORTAL_MAX_CONNS_PER_IP 8
#define PORTAL_TIMEOUT_MS 15000                 /* whole connection: handshake, request, answer */
#define PORTAL_RESPONSE_MAX (64u * 1024 * 1024) /* largest answer body */
#define PORTAL_SESSIONS_MAX 1024
#define PORTAL_SESSION_TTL_S 1800  /* idle expiry */
#define PORTAL_SESSION_MAX_S 28800 /* absolute expiry: 8 h after login */
#define PORTAL_FAIL_WINDOW_S 300   /* failed logins counted per address over this window */
#define PORTAL_FAIL_MAX 10         /* ... beyond which the address gets 429 until it passes */
#define PORTAL_BUNDLE_ENTRIES_MAX 4096

/* Where the portal's records go (evidence/access.h builds them): an access record per answered
 * read (and per refused reach past the scope), naming the authority, and a portal-request record
 * per stored request. Called on the server's thread before the answer is sent; when it fails the
 * answer is withheld (503): no read without its record. */
typedef int (*portal_record_fn)(void *ctx, const struct record *rec, char *err, size_t errlen);

struct enrich_as_names;

struct portal_config {
    const char *state_dir; /* serve's state: log/, registry.db; portal/ is the portal's */
    const char *registry;  /* NULL: state_dir/registry.db, else a path or PostgreSQL URL */
    struct net_addr listen;
    const char *authorities_path;
    const char *tls_cert, *tls_key;
    const char *user; /* drop to this user after binding (sandbox.h) */
    bool allow_root;
    bool seccomp;                     /* install serve's allow-list once started */
    const char *node;                 /* recorded in access records */
    struct enrich_as_names *as_names; /* IntelMQ source.as_name (enrich.h); NULL: left out */
    const char *ready_file;           /* written once listening (tests) */
    FILE *log;                        /* operator log lines; never a token, never victim data */
    portal_record_fn record;          /* NULL: DIR/spool through access_spool() */
    void *record_ctx;
};

/* Binds, drops privileges, opens the registry, store and TLS context, sandboxes and serves until
 * SIGTERM/SIGINT. SIGHUP reloads the authorities file (a file that does not load leaves the old
 * one in force). Returns 0 or -1 with err. */
int portal_run(const struct portal_config *cfg, char *err, size_t errlen);

/* ---- bits shared with the CLI -------------------------------------------------------------- */

/* Parses "YYYY-MM-DD" (start of the day, or its end when end_of_day) or
 * "YYYY-MM-DDTHH:MM:SSZ". 0 or -1. */
int portal_parse_time(const char *text, bool end_of_day, uint64_t *out_us);

#endif
