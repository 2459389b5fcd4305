/* swarm.h -- the bot emulator: many emulated PlugX bots on loopback, each with a stable identity
 * and a public-looking source address carried in PROXY v2, speaking raw TCP, HTTP with the packet
 * in the body, HTTP with values in headers, or a variant sinkd does not know. Pure parts
 * (identities, country mix, address ranges, request builders, the response reader, unknown-variant
 * bytes) are exposed for tests; swarm_run() drives the libuv loop. */
#ifndef SINKD_SWARM_SWARM_H
#define SINKD_SWARM_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <http_parser.h>

#include "event/event.h"
#include "proto/plugx/plugx.h"
#include "util/addr.h"
#include "util/hist.h"

#define SWARM_MAX_BOTS 10000000u      /* identities are computed, so only the flags scale */
#define SWARM_MAX_CONCURRENCY 100000u /* simultaneous connections (bounded by open files too) */
#define SWARM_MAX_COUNTRIES 300u
#define SWARM_MAX_RANGES 2000000u /* lines in the ranges CSV */
#define SWARM_REPLY_TIMEOUT_MS 10000u
#define SWARM_LINE_MAX 512                /* longest accepted CSV line */
#define SWARM_HTTP_BODY_MAX (2u * 65552u) /* largest response body read: two full packets */
#define SWARM_UNKNOWN_WAIT_MS 3000u       /* default wait of an unknown-variant bot for a reply */
#define SWARM_HEADER_STEM_MAX 8           /* "numbered" header names: stem length bound */

enum swarm_error {
    SWARM_E_FILE = -1,     /* cannot open / read a data file */
    SWARM_E_SYNTAX = -2,   /* bad line in a data file (err names file:line) */
    SWARM_E_LIMIT = -3,    /* a bound above was exceeded */
    SWARM_E_NOMEM = -4,    /* allocation failed */
    SWARM_E_CONFIG = -5,   /* inconsistent configuration */
    SWARM_E_RUNTIME = -6,  /* libuv failure */
    SWARM_E_PROTOCOL = -7, /* a response the swarm cannot read (err says why) */
};

/* ---- country mix: "cc,weight,basis" lines, # comments, optional header "cc,weight,basis" ---- */
struct swarm_country {
    char cc[3];
    double weight;     /* > 0 */
    double cumulative; /* sum of weights up to and including this one */
};

struct swarm_countries {
    struct swarm_country *items;
    size_t count;
    double total;
};

int swarm_countries_load(const char *path, struct swarm_countries *out, char *err, size_t errlen);
/* Parses from an open stream; `name` is used in messages ("name:line: ..."). */
int swarm_countries_read(FILE *in, const char *name, struct swarm_countries *out, char *err,
                         size_t errlen);
void swarm_countries_free(struct swarm_countries *c);
/* Index of the country for a uniform draw u in [0, 1). */
size_t swarm_countries_pick(const struct swarm_countries *c, double u);

/* ---- IPv4 ranges: "start_ip,end_ip,cc" lines (ip-location-db geo-whois-asn-country) ---- */
struct swarm_range {
    uint32_t start, end; /* host byte order, inclusive */
    uint16_t cc;         /* packed two letters: (c0 << 8) | c1 */
};

struct swarm_ranges {
    struct swarm_range *items; /* sorted by (cc, start) */
    uint64_t *cumulative;      /* addresses in items[0..i] of the same cc, inclusive */
    size_t count;
};

int swarm_ranges_load(const char *path, struct swarm_ranges *out, char *err, size_t errlen);
int swarm_ranges_read(FILE *in, const char *name, struct swarm_ranges *out, char *err,
                      size_t errlen);
void swarm_ranges_free(struct swarm_ranges *r);
/* Addresses the ranges give to country cc (0 if none). */
uint64_t swarm_ranges_size(const struct swarm_ranges *r, const char *cc);
/* Picks an address of cc, uniform over all of its addresses, from the 64-bit draw r64.
 * Returns 0 and *ip (host order), or -1 if cc has no ranges. */
int swarm_ranges_pick(const struct swarm_ranges *r, const char *cc, uint64_t r64, uint32_t *ip);

/* ---- bots ---- */
enum swarm_cipher_choice {
    SWARM_CIPHER_MIX = -1, /* per bot, uniform over A, B, C, RC4 */
};

/* What a bot's requests look like on the wire (docs/swarm.md). */
enum swarm_kind {
    SWARM_KIND_RAW = 0,         /* PlugX packets back to back on TCP */
    SWARM_KIND_HTTP_BODY = 1,   /* each packet the body of a POST */
    SWARM_KIND_HTTP_HEADER = 2, /* empty-body POST with four custom headers; packets in replies */
    SWARM_KIND_UNKNOWN = 3,     /* bytes no configured family decodes (raw or POST body) */
    SWARM_KIND_COUNT = 4,
};

enum swarm_http_form { /* --http-form: which form an HTTP bot uses */
                       SWARM_HTTP_FORM_BODY = 0,
                       SWARM_HTTP_FORM_HEADER = 1,
                       SWARM_HTTP_FORM_MIX = 2, /* per bot, half and half */
};

enum swarm_header_names {                      /* the four header names of a build */
                          SWARM_NAMES_X = 0,   /* X-Session, X-Status, X-Size, X-Sn */
                          SWARM_NAMES_HHV = 1, /* HHV1 .. HHV4 */
                          SWARM_NAMES_NUMBERED =
                              2,               /* one upper-case stem + a digit, from 0 or from 1 */
                          SWARM_NAMES_MIX = 3, /* per bot, uniform over the three */
};

enum swarm_header_uri {                       /* the check-in URI */
                        SWARM_URI_HEX24 = 0,  /* /<24 upper-case hex digits> */
                        SWARM_URI_UPDATE = 1, /* /update?id=<8 hex digits> (older builds) */
                        SWARM_URI_MIX = 2,    /* per bot, half and half */
};

enum swarm_header_values { /* the four values after the first check-in (not confirmed) */
                           SWARM_VALUES_SEQUENCE =
                               0, /* 0, 0, 61456, n: n counts the requests of the connection */
                           SWARM_VALUES_FIRST = 1, /* 0, 0, 61456, 1 on every request */
};

enum swarm_header_answer { /* how a header-form bot sends a packet of its own (not confirmed) */
                           SWARM_ANSWER_BODY = 0, /* in the body of its next header-form request */
                           SWARM_ANSWER_NONE =
                               1, /* never: it only polls, and a 0x1001 request stays unanswered */
};

enum swarm_unknown_kind {
    SWARM_UNKNOWN_CIPHER = 0,  /* a PlugX poll sealed with family C constants / RC4 key cfg lacks */
    SWARM_UNKNOWN_FRAMING = 1, /* a 32-bit length and that many opaque bytes */
};

struct swarm_options {
    struct net_addr target;     /* loopback only */
    struct net_cidr source_net; /* bots bind round-robin to hosts of this loopback prefix */
    uint32_t bots;
    uint32_t duration_s;
    uint32_t concurrency;
    uint64_t seed;
    uint32_t heartbeat_ms; /* mean, jittered +-50% */
    double http_share, gone_share, uninstall_fail_share;
    double unknown_share;   /* bots of a variant no configured family decodes */
    double volunteer_share; /* bots that send machine information unasked after the hello */
    int cipher;             /* enum plugx_cipher or SWARM_CIPHER_MIX */
    uint8_t http_form;      /* enum swarm_http_form */
    uint8_t header_names;   /* enum swarm_header_names */
    uint8_t header_uri;     /* enum swarm_header_uri */
    uint8_t header_values;  /* enum swarm_header_values */
    uint8_t header_answer;  /* enum swarm_header_answer */
    uint32_t unknown_wait_ms;
    int32_t uninstall_command; /* command id the bots obey, -1 for none */
};

/* Fills defaults: 100 bots, 60 s, concurrency 0 (= min(bots, 5000)), source 127.0.1.0/24, seed 1,
 * heartbeat 2000 ms, http 0 (body form when raised), gone 0.1, uninstall-fail 0, unknown 0,
 * volunteer 0, cipher A, header names mix, URI hex24, values sequence, answer body, unknown wait
 * 3000 ms, uninstall command the PlugX default config's. The target is left empty. */
void swarm_options_default(struct swarm_options *o);

/* --preset worm: the mix docs/swarm.md argues is closest to the USB worm's callers (80% HTTP,
 * half of it header form; 2% unknown variant; one cipher family, as one build has). Sets
 * http_share, http_form and unknown_share only. */
void swarm_options_preset_worm(struct swarm_options *o);

/* How one header-form bot's build names and addresses its requests. */
struct swarm_header_style {
    uint8_t names;                        /* SWARM_NAMES_X, _HHV or _NUMBERED */
    uint8_t uri;                          /* SWARM_URI_HEX24 or _UPDATE */
    uint8_t first_digit;                  /* numbered names: 0 or 1 */
    char stem[SWARM_HEADER_STEM_MAX + 1]; /* numbered names: 4 upper-case letters */
};

/* Everything fixed about one bot, derived from (seed, index) and the data tables. */
struct swarm_bot {
    uint32_t index;
    struct plugx_machine_info info;
    char cc[3];
    uint32_t public_ip; /* host order */
    uint8_t cipher;     /* enum plugx_cipher */
    bool http, gone, uninstall_fail, compress;
    uint32_t start_ms;    /* first contact, within the first 40% of the run */
    uint8_t kind;         /* enum swarm_kind (an unknown-variant bot uses HTTP when `http`) */
    uint8_t unknown_kind; /* enum swarm_unknown_kind, for SWARM_KIND_UNKNOWN */
    bool volunteer;       /* sends machine information unasked after each hello's reply */
    struct swarm_header_style header; /* for SWARM_KIND_HTTP_HEADER */
};

void swarm_bot_make(const struct swarm_options *o, const struct swarm_countries *countries,
                    const struct swarm_ranges *ranges, uint32_t index, struct swarm_bot *out);

/* ---- the wire (http.c, unknown.c) ---- */

/* `POST / HTTP/1.1` with Host, User-Agent, Content-Type, Content-Length, Connection: Keep-Alive,
 * then the body. host is "ip:port" ("[ip]:port" for IPv6). Returns bytes written, -1 if cap is
 * too small. */
ptrdiff_t swarm_http_body_request(const char *host, const uint8_t *body, size_t body_len,
                                  uint8_t *out, size_t cap);

/* The header form: `POST /<24 upper-case hex>` (from uri_draw[0..2]) or `/update?id=<8 hex>`
 * (uri_draw[0]), an Accept header for any type, the style's four names with values[0..3] in decimal
 * in that order, User-Agent, Host, `Content-Length: body_len`, Connection: Keep-Alive,
 * Cache-Control: no-cache, no Referer; then the body (empty on a check-in). Returns bytes written
 * or -1. */
ptrdiff_t swarm_http_header_request(const struct swarm_header_style *s, const char *host,
                                    const uint32_t uri_draw[3], const uint32_t values[4],
                                    const uint8_t *body, size_t body_len, uint8_t *out, size_t cap);

/* Reads HTTP/1.x responses one at a time from a byte stream (http_parser). Only status 200 with
 * Content-Length or chunked encoding is accepted; the body is kept (at most
 * SWARM_HTTP_BODY_MAX bytes, heap) until the next response starts. */
struct swarm_http_reader {
    http_parser parser;
    uint8_t *body;
    size_t body_len, body_cap;
    bool complete;   /* a whole response is in body; act on it before feeding more */
    bool keep_alive; /* false: the server ends the connection after this response */
    const char *why; /* internal: the reason a callback refused */
};

void swarm_http_reader_init(struct swarm_http_reader *r);
/* Feeds bytes. Returns bytes consumed (stops right after a complete response: r->complete; feed
 * the rest after acting on it) or SWARM_E_PROTOCOL with the reason in err. */
ptrdiff_t swarm_http_reader_feed(struct swarm_http_reader *r, const uint8_t *buf, size_t len,
                                 char *err, size_t errlen);
void swarm_http_reader_free(struct swarm_http_reader *r);

/* Whether buf would be taken for PlugX by cfg's families (a whole packet, or a plausible header
 * waiting for more). scratch: PROTO_SCRATCH_SIZE bytes. */
bool swarm_bytes_decode(const struct plugx_config *cfg, const uint8_t *buf, size_t len,
                        uint8_t *scratch, size_t scratch_cap);
/* The bytes an unknown-variant bot of `kind` sends, from the 64-bit draw; never bytes that
 * swarm_bytes_decode() takes for PlugX under cfg. Returns the length or a negative enum
 * proto_error. */
ptrdiff_t swarm_unknown_bytes(const struct plugx_config *cfg, int kind, uint64_t draw, uint8_t *out,
                              size_t cap, uint8_t *scratch, size_t scratch_cap);

/* ---- the run ---- */
struct swarm_country_count {
    char cc[3];
    uint32_t bots;
};

struct swarm_summary {
    uint32_t bots, bots_run, bots_answered;
    uint32_t bots_replied; /* bots that got at least one reply (a passive server's "served") */
    uint32_t bots_by_kind[SWARM_KIND_COUNT]; /* bots run, by enum swarm_kind */
    uint32_t bots_asked;                     /* bots the server asked for machine information */
    uint64_t info_requests;                  /* 0x1001 requests received */
    uint64_t info_sent, info_volunteered;    /* machine-information packets sent; unasked */
    uint64_t contacts_by_kind[SWARM_KIND_HTTP_HEADER + 1]; /* contacts_sent, by kind */
    uint64_t unknown_sent, unknown_replied, unknown_closed, unknown_silent;
    uint64_t contacts_sent, replies_received;
    uint64_t err_connect, err_reset, err_timeout, err_protocol;
    uint32_t uninstalled, uninstall_ignored;
    uint32_t connected_bots; /* bots that completed at least one TCP connect */
    /* Distinct public addresses (a passive sinkhole's counting unit): of the decodable bots that
     * got a reply, and of the unknown-variant bots run. Bots may share one, as behind a NAT. */
    uint32_t addresses_replied, addresses_unknown;
    double duration_s;
    struct hist latency_us;
    /* Only heartbeats on a session already set up: without the connect storms of the first
     * hello and machine information, which every bot sends at the start of a run. */
    struct hist heartbeat_latency_us;
    struct swarm_country_count *per_country; /* bots run, per country, `countries` entries */
    size_t countries;
};

/* Runs the swarm to the end of o->duration_s. Returns 0 (summary filled, free it with
 * swarm_summary_free) or a negative enum swarm_error. */
int swarm_run(const struct swarm_options *o, const struct swarm_countries *countries,
              const struct swarm_ranges *ranges, struct swarm_summary *out, char *err,
              size_t errlen);
void swarm_summary_free(struct swarm_summary *s);

/* Writes the readable summary, and the JSON form (field names in docs/swarm.md). */
void swarm_summary_print(const struct swarm_summary *s, FILE *out);
int swarm_summary_write_json(const struct swarm_summary *s, const char *path, char *err,
                             size_t errlen);

#endif
