/* event.h -- the facts sinkd records (contacts, decisions, commands, operational notes), their one
 * canonical versioned binary encoding (what the evidence log stores) and their JSON rendering. */
#ifndef SINKD_EVENT_EVENT_H
#define SINKD_EVENT_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "util/addr.h"

/* Bot identity fields as received (UTF-8, NUL-terminated, "" when the message carried none). */
struct bot_identity {
    char host[64];     /* computer name */
    char user[64];     /* user name */
    char os[32];       /* "6.1.7601 SP1" */
    char local_ip[46]; /* address behind NAT, as the bot reports it */
    char campaign[64]; /* group / campaign string */
    char version[32];  /* malware build / version */
};

enum contact_transport {
    CONTACT_TRANSPORT_TCP = 1,         /* raw packets on a TCP stream */
    CONTACT_TRANSPORT_HTTP = 2,        /* packet as the body of an HTTP POST ("body form") */
    CONTACT_TRANSPORT_HTTP_HEADER = 3, /* HTTP check-in whose values travel in headers */
};

enum contact_msg_type {
    CONTACT_MSG_OTHER = 0,
    CONTACT_MSG_HELLO = 1,        /* first packet on a connection without machine information */
    CONTACT_MSG_MACHINE_INFO = 2, /* the bot describes itself */
    CONTACT_MSG_HEARTBEAT = 3,    /* later polls / keep-alives on the same connection */
    /* Bytes that reached the seized address but that no family could decode (unknown cipher,
     * other framing, an HTTP request of another shape): recorded by source, never dropped. */
    CONTACT_MSG_UNDECODED = 4,
    CONTACT_MSG_TYPES = 5,
};

/* How much of an undecoded caller's bytes its head_sha256 covers. */
#define CONTACT_HEAD_MAX 4096

/* One message received from one bot. */
struct contact {
    uint64_t time_us;    /* UTC, microseconds since the epoch */
    char node[32];       /* which sinkd node recorded it */
    struct net_addr src; /* the bot, after PROXY */
    struct net_addr dst; /* the seized address it called, after PROXY */
    struct net_addr
        peer;          /* the TCP peer when it differs from src (a trusted proxy), else family 0 */
    uint8_t transport; /* enum contact_transport */
    char family[16];   /* protocol family, "plugx" */
    uint32_t command;  /* family-specific command id */
    uint8_t msg_type;  /* enum contact_msg_type */
    struct bot_identity bot; /* as carried by this message (heartbeats carry none) */
    /* event_bot_key() of the bot: from this message's identity, or, for messages that carry none,
     * from the identity an earlier message on the same connection gave; "" if never identified. */
    char bot_key[33];
    uint8_t body_sha256[32]; /* SHA-256 of the decrypted, decompressed message body */
    /* Enrichment, filled before the record is written. */
    char cc[3];         /* ISO 3166-1 alpha-2, "" if unknown */
    uint32_t asn;       /* 0 if unknown */
    char tags[64];      /* operator sector tags, comma-separated, "" if none */
    uint32_t enrich_id; /* identifies the table-loaded record describing the data versions used */
    /* Undecoded contacts only (msg_type CONTACT_MSG_UNDECODED). */
    uint32_t size;           /* bytes received from the caller */
    uint8_t head_sha256[32]; /* SHA-256 of its first head_len bytes */
    uint32_t head_len;       /* min(size, CONTACT_HEAD_MAX) */
    char reason[96];         /* why no family decoded it ("no cipher family decrypts ...") */
    /* Undecoded contacts from this source address that were not recorded one by one since this
     * address's previous undecoded record (the per-address bound, docs/limits.md). */
    uint32_t suppressed;
};

/* A bot's repeated polls rolled up (kind RECORD_HEARTBEATS): one record per bot per interval
 * instead of one per poll. Its first contact of a session, machine information, undecoded bytes,
 * decisions and commands stay records of their own. */
struct heartbeats {
    uint64_t time_us;       /* the last poll counted */
    uint64_t first_time_us; /* the first poll counted */
    char node[32];
    struct net_addr src; /* the bot, after PROXY */
    struct net_addr dst;
    struct net_addr peer;
    uint8_t transport;
    char family[16];
    char bot_key[33];
    char cc[3];
    uint32_t asn;
    char tags[64];
    uint32_t enrich_id;
    uint32_t count;                /* polls counted, >= 1 */
    uint8_t heartbeats_sha256[32]; /* SHA-256 chain over the polls' body hashes, in order */
    /* Index of the leaf that describes the bot these polls came from (0: this record describes
     * it itself; leaf 0 is always a log's first node-started record, never such a leaf). A record
     * naming one holds only the counts, times, country, AS, sector tags and transport; node,
     * endpoints, family, bot key and enrichment id are those of the named leaf (a contact or a
     * heartbeats record of the same seal epoch), except the source port and the proxy peer, which
     * may have changed between polls (docs/evidence.md, "Heartbeats rolled up"). */
    uint64_t described_in;
};

/* What a heartbeats record says of its bot, from a contact of it: node, endpoints, transport,
 * family, bot key, country, AS, tags, enrichment id (counts, times and digest untouched). */
void event_heartbeats_describe(struct heartbeats *hb, const struct contact *ct);
/* Copies the description a record naming a leaf leaves out (node, endpoints, transport, family,
 * bot key, enrichment id; not country, AS, tags) from `from` to `to`. */
void event_heartbeats_copy_description(struct heartbeats *to, const struct heartbeats *from);

/* Remediation verdicts (issue: remediate only where authorised). */
enum decision_verdict {
    VERDICT_SEND = 1,
    VERDICT_DRY_RUN = 2,
    VERDICT_NOT_AUTHORISED = 3,
    VERDICT_EXCLUDED = 4,
    VERDICT_OUTSIDE_WINDOW = 5,
    VERDICT_RATE_LIMITED = 6,
    VERDICT_ALREADY_SENT = 7,      /* a command was really sent to this bot under it before */
    VERDICT_ALREADY_REHEARSED = 8, /* dry run: this bot was rehearsed before; nothing was sent */
    /* Nodes sharing a registry: the send could not be claimed there (the database down or slow),
     * so nothing was sent (fail closed); the bot is decided again at a later presence. */
    VERDICT_CLAIM_FAILED = 9,
    VERDICT_COUNT = 10,
};

/* What a decision is about. Remediation (the uninstall command) is the original kind and is
 * encoded by omission, so logs written before collection existed read unchanged. */
enum decision_action {
    ACTION_UNINSTALL = 0, /* send the configured self-delete command */
    ACTION_COLLECT = 1,   /* ask the bot for its machine information */
};

struct decision {
    uint64_t time_us;
    char node[32];
    char bot_key[33];       /* event_bot_key() */
    struct net_addr src;    /* where the bot called from */
    char authorisation[64]; /* authorisation id, "" if none applied */
    uint8_t verdict;        /* enum decision_verdict */
    uint32_t command;       /* command that would be / is sent */
    uint8_t policy_sha256[32];
    uint8_t action; /* enum decision_action */
};

/* command-sent / command-failed */
struct command_record {
    uint64_t time_us;
    char node[32];
    char bot_key[33];
    struct net_addr src;
    char authorisation[64];
    uint32_t command;
    uint8_t bytes_sha256[32]; /* SHA-256 of the exact bytes written to the socket */
    char error[128];          /* command-failed only */
    uint8_t action;           /* enum decision_action */
};

/* Who read or exported victims' data (Law Enforcement Directive Art. 25): holds no victim data
 * itself, only what was asked, by whom, why, and a digest of what was handed out. */
struct access_record {
    uint64_t time_us;
    char node[32];
    char operator_name[64]; /* --operator, the invoking user, or "portal:<authority>" */
    char what[128];         /* the command or route: "report --format csv", "GET /api/v1/..." */
    char scope[512];        /* filters and scope: countries, networks, time range, ... */
    uint64_t rows;          /* rows (records, bots) handed out */
    uint8_t output_sha256[32];
    char justification[512];
};

/* What retention or an order erased: no victim data. */
struct erasure_record {
    uint64_t time_us;
    char node[32];
    char operator_name[64];
    uint64_t before_us;    /* personal data of records before this time was erased */
    char detail[1024];     /* epochs destroyed, registry rows removed, ... */
    char legal_basis[512]; /* the order, or the retention rule */
};

/* A disinfection request an authority made through the portal (RECORD_PORTAL_REQUEST) and the
 * operator's decision on it (RECORD_PORTAL_DECISION). No victim data: the scope is the countries
 * and networks the authority named; its contact stays in the portal's own store. */
enum portal_request_state {
    PORTAL_REQUEST_SUBMITTED = 0,
    PORTAL_REQUEST_APPROVED = 1,
    PORTAL_REQUEST_REJECTED = 2,
};

struct portal_request_record {
    uint64_t time_us;
    char node[32];
    char operator_name[64]; /* decision: who decided ("portal:<authority>" for a submission) */
    char authority[64];     /* the authority's id in the authorities file */
    uint64_t request_id;    /* in the portal's store */
    char scope[512];        /* "countries=NG,GH networks=102.88.0.0/15" */
    uint64_t not_before_us; /* the window asked for */
    uint64_t not_after_us;
    char legal_reference[512];
    uint8_t state;             /* enum portal_request_state */
    char reason[512];          /* rejection: why */
    char authorisation[64];    /* approval: the policy authorisation ids ("portal-3-*") */
    uint8_t policy_sha256[32]; /* approval: the policy version it went into */
};

/* policy-loaded, table-loaded, node-started, node-stopped: operational facts. */
struct note_record {
    uint64_t time_us;
    char node[32];
    uint8_t sha256[32]; /* policy file hash, table data hash, ... (zero when not applicable) */
    uint32_t id;        /* table-loaded: the enrich_id contacts refer to */
    char detail[1024];  /* human-readable: file name, versions, listen addresses, ... */
};

enum record_kind {
    RECORD_CONTACT = 1,
    RECORD_DECISION = 2,
    RECORD_COMMAND_SENT = 3,
    RECORD_COMMAND_FAILED = 4,
    RECORD_POLICY_LOADED = 5,
    RECORD_TABLE_LOADED = 6,
    RECORD_NODE_STARTED = 7,
    RECORD_NODE_STOPPED = 8,
    RECORD_HEARTBEATS = 9,       /* struct heartbeats */
    RECORD_ACCESS = 10,          /* struct access_record */
    RECORD_ERASURE = 11,         /* struct erasure_record */
    RECORD_PORTAL_REQUEST = 12,  /* struct portal_request_record: an authority asked */
    RECORD_PORTAL_DECISION = 13, /* struct portal_request_record: the operator decided */
    /* 14..15: kept for the portal; 16..19: sealing (kept free for them). */
};

/* Sealing (tags 80..99, docs/evidence.md "Sealed personal data"): a record's personal fields
 * (source address, host, user, local IP, bot key, an access record's scope) travel encrypted in
 * tag 82 under a key of the epoch in tag 80, and tag 81 is a per-epoch pseudonym of the bot key,
 * so that unique bots per epoch count without any key. The seal tags come after every other
 * field. A record read with its epoch key is handed on opened (exactly the bytes it had before
 * sealing, no seal tags); one whose key is gone (erased) or not readable here decodes with its
 * clear fields and `seal` set. evidence/seal.h seals and opens. */
#define EVENT_TAG_SEAL_EPOCH 80   /* u32 epoch start (POSIX seconds) || u32 key id */
#define EVENT_TAG_SEAL_BOT_REF 81 /* 8 bytes */
#define EVENT_TAG_SEALED 82       /* AES-256-GCM ciphertext of the personal fields || 16-byte tag */
#define EVENT_SEAL_BOT_REF_SIZE 8
#define EVENT_SEALED_MAX 1200

struct record_seal {
    uint32_t epoch;  /* 0: not sealed (or opened) */
    uint32_t key_id; /* which key of that epoch (evidence/seal.h) */
    bool has_bot_ref;
    uint8_t bot_ref[EVENT_SEAL_BOT_REF_SIZE];
    uint16_t sealed_len;
    uint8_t sealed[EVENT_SEALED_MAX];
};

struct record {
    uint8_t kind; /* enum record_kind */
    union {
        struct contact contact;
        struct decision decision;
        struct command_record command;
        struct note_record note;
        struct heartbeats heartbeats;
        struct access_record access;
        struct erasure_record erasure;
        struct portal_request_record portal_request; /* both portal kinds */
    } u;
    struct record_seal seal; /* a record still sealed: its personal fields are not in `u` */
};

/* Encoding version written as the first byte of every record. */
#define EVENT_RECORD_VERSION 1
/* No record encodes to more than this (all fields are bounded; a sealed record's seal tags
 * included: its largest kind, ~1.7 KB, plus EVENT_SEALED_MAX). */
#define EVENT_RECORD_MAX 4096

/* Canonical encoding: version(1) kind(1) then fields as tag(1) len(2, big-endian) value, in
 * ascending tag order, each at most once, empty fields omitted. Returns bytes written or -1 if
 * cap is too small. */
int event_encode(const struct record *rec, uint8_t *out, size_t cap);

/* Pure decoder. Returns 0 or -1 with a message (unknown version, truncated field, duplicate or
 * out-of-order tag, over-long string, ...). Unknown tags are errors: the encoding is canonical. */
int event_decode(const uint8_t *buf, size_t len, struct record *out, char *err, size_t errlen);

/* JSON rendering as printed by `sinkd contacts` (one object per record). */
json_t *event_to_json(const struct record *rec);

/* An encoded record as that JSON, indented, in a malloc'd *out; 0, or -1 if it does not decode.
 * Shaped as evlog_bundle_write's describe callback (ctx unused). */
int event_describe_json(void *ctx, const uint8_t *entry, size_t len, char **out);

const char *event_kind_name(uint8_t kind);
const char *event_msg_type_name(uint8_t msg_type);
const char *event_transport_name(uint8_t transport);
const char *event_verdict_name(uint8_t verdict);
const char *event_action_name(uint8_t action);

/* Stable bot key: first 16 bytes of SHA-256 over the family and identity fields (see
 * docs/registry.md), as 32 lowercase hex characters. Bots that sent no identity are keyed by
 * source IP instead ("ip:" prefix inside the hash input). */
void event_bot_key(const struct contact *c, char out[33]);

/* Current UTC time in microseconds. */
uint64_t event_now_us(void);

/* "2026-11-23T09:15:13.123456Z" */
void event_format_time(uint64_t time_us, char out[32]);

#endif
