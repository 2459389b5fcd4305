/* internal.h -- what the portal's own files share (not part of the module contract): the
 * server's state, answers, sessions and the data views the routes render. */
#ifndef SINKD_PORTAL_INTERNAL_H
#define SINKD_PORTAL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "portal/portal.h"
#include "registry/registry.h"

/* ---- sessions and failed logins (sessions.c) ---------------------------------------------- */

#define PORTAL_SESSION_ID_HEX 64 /* 32 random bytes */
#define PORTAL_FAIL_TABLE 4096   /* addresses whose failures are remembered */

struct portal_session {
    bool used;
    char id[PORTAL_SESSION_ID_HEX + 1];
    char csrf[PORTAL_SESSION_ID_HEX + 1];
    char authority[PORTAL_ID_MAX + 1];
    char justification[PORTAL_JUSTIFICATION_MAX + 1];
    uint64_t created_us, last_us;
};

struct portal_fail {
    struct net_addr ip; /* family 0: free slot */
    uint64_t window_start_us;
    uint32_t count;
};

struct portal_sessions {
    struct portal_session s[PORTAL_SESSIONS_MAX];
    struct portal_fail fail[PORTAL_FAIL_TABLE];
};

/* Random hex (2 * n chars + NUL) from OpenSSL's generator; 0 or -1. */
int portal_random_hex(char *out, size_t n);
/* A new session for the authority; NULL when the table is full of live sessions. */
struct portal_session *portal_session_new(struct portal_sessions *t, const char *authority,
                                          const char *justification, uint64_t now_us);
/* The live session with this id (constant-time compare), refreshing its idle time; expired
 * ones are dropped and not found. */
struct portal_session *portal_session_find(struct portal_sessions *t, const char *id,
                                           uint64_t now_us);
void portal_session_end(struct portal_session *s);
/* Failed-login accounting per address: true while the address must wait (429). */
bool portal_fail_blocked(struct portal_sessions *t, const struct net_addr *ip, uint64_t now_us);
void portal_fail_note(struct portal_sessions *t, const struct net_addr *ip, uint64_t now_us);
/* Ends every session of authorities no longer in `as` (after a reload). */
void portal_sessions_prune(struct portal_sessions *t, const struct portal_authorities *as);

/* ---- answers ------------------------------------------------------------------------------ */

struct portal_answer {
    int status;
    const char *ctype;
    char *body; /* malloc'd, or points at static data when body_static */
    size_t len;
    bool body_static;
    char headers[1024]; /* extra header lines, each ending in \r\n */
};

/* Sets a small text or JSON answer (copies text). */
void portal_answer_text(struct portal_answer *a, int status, const char *ctype, const char *text);
/* {"error": message} with the status. */
void portal_answer_error(struct portal_answer *a, int status, const char *message);

/* ---- the server's state, as routes see it ------------------------------------------------- */

struct portal_state {
    const struct portal_config *cfg;
    struct portal_authorities *authorities;
    struct registry *reg;
    struct portal_store *store;
    struct portal_sessions *sessions;
    uint64_t answered, refused;
};

/* Who is asking, as the connection knows it. */
struct portal_peer {
    struct net_addr ip;
    bool has_cert;
    uint8_t cert_sha256[32];
};

/* Answers one parsed request (routes.c). */
void portal_route(struct portal_state *st, const struct portal_request *req,
                  const struct portal_peer *peer, struct portal_answer *ans);

/* ---- data views (data.c) ------------------------------------------------------------------ */

enum portal_victims_format { PV_CSV, PV_INTELMQ, PV_N6 };

/* What a victims query asks for on top of the authority's scope. Each filter must name a part
 * of the scope (routes.c checks that). */
struct portal_victims_query {
    enum portal_victims_format format;
    uint64_t since_us, until_us; /* clamped to max_days_old by the caller */
    char cc[16][3];
    size_t n_cc;
    uint32_t asn[16];
    size_t n_asn;
    struct net_cidr net[16];
    size_t n_net;
    struct net_addr ip; /* family 0: any */
    uint64_t limit;     /* 0: none */
};

/* Renders the authority's victims matching q into *body (malloc'd); *rows gets the row count.
 * Returns 0, 1 when the answer would pass PORTAL_RESPONSE_MAX (narrow the window), < 0 error. */
int portal_victims(struct portal_state *st, const struct portal_authority *a,
                   const struct portal_victims_query *q, char **body, size_t *len, uint64_t *rows,
                   char *err, size_t errlen);

/* The authority's statistics as JSON (portal docs: per-day curves, countries, ASNs, sectors,
 * remediation and its requests' effectiveness). */
int portal_stats(struct portal_state *st, const struct portal_authority *a, uint64_t since_us,
                 char **body, size_t *len, uint64_t *rows, char *err, size_t errlen);

/* An evidence bundle (tar) of the log entries naming `ip`, which must be one of the authority's
 * victims. Returns 0, 1 when no victim of its own is at that address (*foreign set when one of
 * another authority's is), < 0 error. */
int portal_bundle(struct portal_state *st, const struct portal_authority *a,
                  const struct net_addr *ip, uint64_t since_us, char **body, size_t *len,
                  uint64_t *rows, bool *foreign, char *err, size_t errlen);

/* Scope text for access records: "countries=NG,GH asns=... networks=..." (bounded). */
void portal_scope_text(const struct portal_authority *a, char *out, size_t cap);

#endif
