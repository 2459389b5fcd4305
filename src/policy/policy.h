/* policy.h -- the remediation policy: which bots may be sent which command (uninstall, or collect:
 * ask for machine information), from when to when and how fast, the check that the server can
 * evaluate it, the pure decision for one bot, the shared rate state and the reloadable handle.
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
/* command_id: PlugX carries the command id in the low 16 bits of the header's flags. */
#define POLICY_COMMAND_ID_MAX 0xFFFFu

enum policy_mode {
    POLICY_MODE_DRY_RUN = 0, /* the default */
    POLICY_MODE_ENFORCE = 1,
};

/* What an authorisation allows. Each authorisation allows exactly one; a decision is always made
 * for one command and considers only the authorisations that allow it. */
enum policy_command {
    /* The seized variant's self-delete. Its id is the authorisation's command_id, or the server's
     * --uninstall-command default; there is no built-in id (docs/policy.md: 0x1005 is "install
     * new copy / restart self" in every public PlugX command table). */
    POLICY_COMMAND_UNINSTALL = 1,
    /* Ask the bot for its machine information (PlugX 0x1001: host and user names, personal data).
     * The family fixes the request; a collect authorisation has no command_id. */
    POLICY_COMMAND_COLLECT = 2,
};

/* A loaded policy. Immutable once policy_parse() returns it. */
struct policy;

/* Parses and validates a policy held in memory (len bytes, NUL bytes refused). name is used in
 * messages ("policy.ini:12: authorisation 'fr-2024': unknown country code 'XX' in 'countries'")
 * and kept (policy_source). All or nothing: returns 0 and *out, or -1 with the first error and
 * *out untouched. Refused here is everything that cannot be right whatever the server loads:
 * besides malformed keys and values, a command_id on a collect authorisation, command_id 0 or
 * above POLICY_COMMAND_ID_MAX, and a command_id that public command tables give another meaning
 * (policy_command_id_meaning). What depends on the server (tables, --enforce, a default id) is
 * policy_check_env's. */
int policy_parse(const char *text, size_t len, const char *name, struct policy **out, char *err,
                 size_t errlen);

/* Reads path (at most POLICY_MAX_FILE_BYTES) and parses it; messages name path. */
int policy_load_file(const char *path, struct policy **out, char *err, size_t errlen);

void policy_free(struct policy *p);

/* SHA-256 of the exact bytes parsed (32 bytes), for the policy-loaded record. */
const uint8_t *policy_sha256(const struct policy *p);
const char *policy_name(const struct policy *p);    /* [policy] name, "" if absent */
const char *policy_version(const struct policy *p); /* [policy] version, "" if absent */
const char *policy_source(const struct policy *p);  /* the name given to policy_parse (a path) */
size_t policy_authorisation_count(const struct policy *p);
/* Id of authorisation i in file order, NULL when i is out of range. */
const char *policy_authorisation_id(const struct policy *p, size_t i);
/* Index of the authorisation called id, or -1. */
int policy_authorisation_index(const struct policy *p, const char *id);
/* enum policy_command of authorisation i; 0 when i is out of range. */
uint8_t policy_authorisation_command(const struct policy *p, size_t i);
/* command_id written in uninstall authorisation i (1..POLICY_COMMAND_ID_MAX); 0 when it gives
 * none (the server's default then applies, see policy_check_env), for collect, or out of range. */
uint32_t policy_authorisation_command_id(const struct policy *p, size_t i);
/* Tag k of authorisation i's exclude_tags, NULL past the last (or i out of range). */
const char *policy_authorisation_exclude_tag(const struct policy *p, size_t i, size_t k);
/* enum policy_mode of authorisation i as written; dry-run when i is out of range. */
uint8_t policy_authorisation_mode(const struct policy *p, size_t i);
/* Whether any authorisation allows command: without a collect authorisation the server never
 * asks a bot for anything. */
bool policy_has_command(const struct policy *p, uint8_t command);
/* What public PlugX command tables (../PLUGX.md, docs/plugx.md) say id means when it is not a
 * self-delete ("install new copy / restart self" for 0x1005, "machine information" for 0x1001,
 * ...), or NULL when they give it no meaning. Such an id is refused as an uninstall id, in a
 * policy and as the server's default. */
const char *policy_command_id_meaning(uint32_t id);

/* Plain-words account of what the policy does (commands and command ids, countries, networks,
 * exclusions, window in UTC, rate, once per bot, mode, authority, legal reference, SHA-256).
 * malloc'd; NULL on no memory. */
char *policy_describe(const struct policy *p);

/* What the server that will apply the policy can evaluate and may do. */
struct policy_env {
    bool country_table;            /* a country database is loaded (not --no-enrich) */
    bool asn_table;                /* ASN tables are loaded (not --no-enrich) */
    bool tag_table;                /* at least one --tags file is loaded */
    bool enforce_flag;             /* serve --enforce */
    uint32_t default_uninstall_id; /* serve --uninstall-command, 0 when not given */
};

/* Fail closed: refuses, with one line "FILE:LINE: authorisation 'ID': why" (or "FILE: why"),
 *   - an exclusion or scope env cannot evaluate: exclude_tags without a tag table, countries
 *     without a country table, asns without ASN tables (it would silently exclude or cover
 *     nothing while `policy check` promised otherwise);
 *   - with env->enforce_flag, an uninstall authorisation with mode = enforce that gives no
 *     command_id while env->default_uninstall_id is 0 (there is no built-in self-delete id);
 *   - env->default_uninstall_id above POLICY_COMMAND_ID_MAX or with another public meaning.
 * On success it binds env->default_uninstall_id to p: uninstall verdicts of authorisations
 * without their own command_id carry it. So call it on every policy before it is put in force
 * (at start and at each reload; a refusal at reload keeps the old policy), before p is shared.
 * Returns 0 or -1 with the message. */
int policy_check_env(struct policy *p, const struct policy_env *env, char *err, size_t errlen);

/* One line for the server to print and record at start and on reload: which policy (source and
 * SHA-256), which authorisations, each with its command, command id and what it will really do
 * under env ("ng-demo uninstall 0xFD01 dry-run (mode = enforce, serve without --enforce)").
 * No victim data. malloc'd, no newline; NULL on no memory. */
char *policy_summary_line(const struct policy *p, const struct policy_env *env);

/* What the decision looks at for one bot. The decision depends on nothing else. */
struct policy_bot {
    struct net_addr src; /* where the bot called from (port ignored) */
    char cc[3];          /* ISO 3166-1 alpha-2 from enrichment, "" if unknown */
    uint32_t asn;        /* 0 if unknown */
    const char *tags;    /* operator sector tags, comma-separated, NULL or "" if none */
    /* Bit i set: a command was really sent to this bot under authorisation i (a send decision;
     * file order, see policy_authorisation_id). The caller keeps that record by authorisation id
     * and sets it from send decisions only: a dry run never counts as sent. */
    uint64_t sent;
    /* Bit i set: a dry run was already decided for this bot under authorisation i. */
    uint64_t rehearsed;
};

struct policy_verdict {
    uint8_t verdict;                          /* enum decision_verdict */
    int authorisation;                        /* index of the authorisation named, -1 for none */
    char authorisation_id[POLICY_ID_MAX + 1]; /* "" for none */
    uint8_t command;                          /* enum policy_command for send / dry-run, else 0 */
    /* For an uninstall send / dry-run: the authorisation's command_id, else the default bound
     * by policy_check_env; 0 when neither exists (then the verdict is never send). 0 for every
     * other verdict and for collect (the family fixes its request). */
    uint32_t command_id;
};

/* Rate state: one lock-free bucket per authorisation, shared by every worker thread. It lives
 * outside the immutable policy and is bound to the policy it was made for. */
struct policy_rate;

/* Makes rate state for p. If carry is given (the state of the policy p replaces), buckets of
 * authorisations with the same id and rate keep their position, so a reload grants no burst. */
int policy_rate_new(const struct policy *p, const struct policy_rate *carry,
                    struct policy_rate **out);
void policy_rate_free(struct policy_rate *rate);

/* The decision for one bot and one command. Pure and total: its result depends only on the
 * arguments (and the default id policy_check_env bound to p); the one side effect is taking a
 * token from rate when the verdict is send or dry-run. Only authorisations allowing `command`
 * take part: a bot covered only by an uninstall authorisation is not-authorised for collect, and
 * the other way round. "Would send" below means: mode = enforce AND enforce_flag AND, for
 * uninstall, a command id (the authorisation's or the bound default). Rule, in this order (file
 * order = the order of the [authorisation] sections):
 *   1. M = authorisations allowing `command` whose scope holds the bot: every key given among
 *      countries, asns and prefixes matches (a list matches if any entry does). M empty:
 *      not-authorised.
 *   2. Any authorisation in M excludes the bot (exclude_tags / exclude_prefixes): excluded,
 *      naming the first such; exclusions win over everything, in or out of the window.
 *   3. W = members of M with not_before <= now_us < not_after. W empty: outside-window (first
 *      of M).
 *   4. E = members of W that may decide for this bot again: once_per_bot = false, or else its
 *      bit clear in bot->sent and, when it would not send, clear in bot->rehearsed. So a
 *      rehearsed bot (rehearsed bit, no sent bit) is decided afresh once it would send, and a
 *      dry run is never repeated. E empty: the first of W, with already-sent if its sent bit is
 *      set (a command was really sent), else already-rehearsed (a dry run would repeat one).
 *   5. The first member of E, in file order, whose bucket has a token takes it. None has:
 *      rate-limited (first of E). rate NULL or made for another policy: rate-limited.
 *   6. send if that authorisation would send, else dry-run. dry-run takes the token too, so a
 *      dry run shows what enforce would do at that rate.
 * p or bot NULL, or command not an enum policy_command: not-authorised. Returns out->verdict. */
int policy_decide(const struct policy *p, uint8_t command, const struct policy_bot *bot,
                  uint64_t now_us, struct policy_rate *rate, bool enforce_flag,
                  struct policy_verdict *out);

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
    uint32_t command_id; /* uninstall: written as command_id when not 0 (see policy_parse) */
    uint8_t mode;        /* enum policy_mode */
    const char *comment; /* one ';' line above the section; may be NULL */
};

/* Appends `a` as a section in this module's file format to the policy text `old` (which may be
 * empty: a [policy] section is written first) and checks the whole result with policy_parse
 * (messages name `name`). The policy module owns its format, so a later format change changes
 * this writer with it. Returns 0 and *out (malloc'd, *out_len bytes), or -1 and err. */
int policy_append_authorisation(const char *old, size_t old_len, const char *name,
                                const struct policy_authorisation_text *a, char **out,
                                size_t *out_len, char *err, size_t errlen);

/* "uninstall", "collect"; "none" for anything else */
const char *policy_command_name(uint8_t command);
/* "dry-run" / "enforce" */
const char *policy_mode_name(uint8_t mode);

#endif
