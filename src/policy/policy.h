/* policy.h -- the remediation policy: which bots may be sent which command, from when to when and
 * how fast, the pure decision for one bot, the shared rate state and the reloadable handle.
 * docs/policy.md is the operator's view of the same rules. */
#ifndef SINKD_POLICY_POLICY_H
#define SINKD_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "util/addr.h"

/* Bounds. A file that exceeds one of them is refused, never truncated. */
#define POLICY_MAX_FILE_BYTES (1u << 20) /* whole policy file */
#define POLICY_MAX_LINE 1024             /* one physical line, newline included */
#define POLICY_MAX_AUTHORISATIONS 64     /* one bit each in policy_bot.sent */
#define POLICY_MAX_COUNTRIES 250         /* per authorisation */
#define POLICY_MAX_ASNS 256
#define POLICY_MAX_PREFIXES 256   /* prefixes and exclude_prefixes, each */
#define POLICY_MAX_TAGS 32        /* exclude_tags */
#define POLICY_TAG_MAX 31         /* characters in one tag */
#define POLICY_ID_MAX 63          /* characters in an authorisation id (decision field) */
#define POLICY_TEXT_MAX 511       /* authority, legal_reference, name, version */
#define POLICY_RATE_MAX 1000000.0 /* commands per second */
#define POLICY_BURST_MAX 1000000u /* commands back to back */

enum policy_mode {
    POLICY_MODE_DRY_RUN = 0, /* the default */
    POLICY_MODE_ENFORCE = 1,
};

enum policy_command {
    POLICY_COMMAND_UNINSTALL =
        1, /* the family's self-delete (PlugX: plugx_config.uninstall_command) */
};

/* A loaded policy. Immutable once policy_parse() returns it. */
struct policy;

/* Parses and validates a policy held in memory (len bytes, NUL bytes refused). name is used in
 * messages ("policy.ini:12: authorisation 'fr-2024': unknown country code 'XX' in 'countries'").
 * All or nothing: returns 0 and *out, or -1 with the first error and *out untouched. */
int policy_parse(const char *text, size_t len, const char *name, struct policy **out, char *err,
                 size_t errlen);

/* Reads path (at most POLICY_MAX_FILE_BYTES) and parses it; messages name path. */
int policy_load_file(const char *path, struct policy **out, char *err, size_t errlen);

void policy_free(struct policy *p);

/* SHA-256 of the exact bytes parsed (32 bytes), for the policy-loaded record. */
const uint8_t *policy_sha256(const struct policy *p);
const char *policy_name(const struct policy *p);    /* [policy] name, "" if absent */
const char *policy_version(const struct policy *p); /* [policy] version, "" if absent */
size_t policy_authorisation_count(const struct policy *p);
/* Id of authorisation i in file order, NULL when i is out of range. */
const char *policy_authorisation_id(const struct policy *p, size_t i);
/* Index of the authorisation called id, or -1. */
int policy_authorisation_index(const struct policy *p, const char *id);

/* Plain-words account of what the policy does (countries, networks, exclusions, window in UTC,
 * rate, once per bot, mode, authority, legal reference, SHA-256). malloc'd; NULL on no memory. */
char *policy_describe(const struct policy *p);

/* What the decision looks at for one bot. The decision depends on nothing else. */
struct policy_bot {
    struct net_addr src; /* where the bot called from (port ignored) */
    char cc[3];          /* ISO 3166-1 alpha-2 from enrichment, "" if unknown */
    uint32_t asn;        /* 0 if unknown */
    const char *tags;    /* operator sector tags, comma-separated, NULL or "" if none */
    /* Bit i set: the command was already sent to this bot under authorisation i (file order,
     * see policy_authorisation_id). The caller keeps that record by authorisation id. */
    uint64_t sent;
};

struct policy_verdict {
    uint8_t verdict;                          /* enum decision_verdict */
    int authorisation;                        /* index of the authorisation named, -1 for none */
    char authorisation_id[POLICY_ID_MAX + 1]; /* "" for none */
    uint8_t command;                          /* enum policy_command for send / dry-run, else 0 */
};

/* Rate state: one lock-free bucket per authorisation, shared by every worker thread. It lives
 * outside the immutable policy and is bound to the policy it was made for. */
struct policy_rate;

/* Makes rate state for p. If carry is given (the state of the policy p replaces), buckets of
 * authorisations with the same id and rate keep their position, so a reload grants no burst. */
int policy_rate_new(const struct policy *p, const struct policy_rate *carry,
                    struct policy_rate **out);
void policy_rate_free(struct policy_rate *rate);

/* The decision. Pure and total: its result depends only on the arguments; the one side effect is
 * taking a token from rate when the verdict is send or dry-run. Rule, in this order (file order
 * = the order of the [authorisation] sections):
 *   1. M = authorisations whose scope holds the bot: every key given among countries, asns and
 *      prefixes matches (a list matches if any entry does). M empty: not-authorised.
 *   2. Any authorisation in M excludes the bot (exclude_tags / exclude_prefixes): excluded,
 *      naming the first such; exclusions win over everything, in or out of the window.
 *   3. W = members of M with not_before <= now_us < not_after. W empty: outside-window (first
 *      of M).
 *   4. E = members of W not already sent (bit clear in bot->sent, or once_per_bot = false).
 *      E empty: already-sent (first of W).
 *   5. The first member of E, in file order, whose bucket has a token takes it. None has:
 *      rate-limited (first of E). rate NULL or made for another policy: rate-limited.
 *   6. send if that authorisation has mode = enforce AND enforce_flag, else dry-run. dry-run
 *      takes the token too, so a dry run shows what enforce would do at that rate.
 * p or bot NULL: not-authorised. Returns out->verdict. */
int policy_decide(const struct policy *p, const struct policy_bot *bot, uint64_t now_us,
                  struct policy_rate *rate, bool enforce_flag, struct policy_verdict *out);

/* Reloadable holder of the policy in force: readers acquire a reference to a (policy, rate)
 * pair and release it when done; a reload swaps in a new pair atomically, and the old pair is
 * freed by whoever releases it last. A file that does not load leaves the old pair in force. */
struct policy_handle;
struct policy_live;

/* Takes ownership of p (also on failure). */
int policy_handle_new(struct policy *p, struct policy_handle **out, char *err, size_t errlen);
/* Frees the handle's reference; live references stay valid until released. */
void policy_handle_free(struct policy_handle *h);
/* Loads path; on success it replaces the policy in force, carrying rate buckets over; on failure
 * returns -1 with the error and the old policy stays in force. */
int policy_handle_reload_file(struct policy_handle *h, const char *path, char *err, size_t errlen);
/* Same with a parsed policy; takes ownership of p (also on failure). */
int policy_handle_replace(struct policy_handle *h, struct policy *p, char *err, size_t errlen);
/* Never NULL for a live handle. Each acquire needs one policy_live_release. */
const struct policy_live *policy_handle_acquire(struct policy_handle *h);
void policy_live_release(const struct policy_live *live);
const struct policy *policy_live_policy(const struct policy_live *live);
struct policy_rate *policy_live_rate(const struct policy_live *live);

/* An authorisation to add to a policy (what `sinkd portal approve` writes for an approved
 * disinfection request). Text fields must not hold control characters, ';' or '#'. */
struct policy_authorisation_text {
    const char *id;
    const char *authority;
    const char *legal_reference;
    const char (*countries)[3];
    size_t n_countries;
    const struct net_cidr *prefixes;
    size_t n_prefixes;
    const char *const *exclude_tags;
    size_t n_exclude_tags;
    uint64_t not_before_us, not_after_us; /* whole seconds */
    double rate;                          /* commands per second */
    uint8_t command;                      /* enum policy_command */
    uint8_t mode;                         /* enum policy_mode */
    const char *comment;                  /* one ';' line above the section; may be NULL */
};

/* Appends `a` as a section in this module's file format to the policy text `old` (which may be
 * empty: a [policy] section is written first) and checks the whole result with policy_parse
 * (messages name `name`). The policy module owns its format, so a later format change changes
 * this writer with it. Returns 0 and *out (malloc'd, *out_len bytes), or -1 and err. */
int policy_append_authorisation(const char *old, size_t old_len, const char *name,
                                const struct policy_authorisation_text *a, char **out,
                                size_t *out_len, char *err, size_t errlen);

/* "uninstall" */
const char *policy_command_name(uint8_t command);
/* "dry-run" / "enforce" */
const char *policy_mode_name(uint8_t mode);

#endif
