/* policy_impl.h -- internal to src/policy/: the layout of a loaded policy, shared by the parser,
 * the decision and the description. Other modules use policy.h only. */
#ifndef SINKD_POLICY_POLICY_IMPL_H
#define SINKD_POLICY_POLICY_IMPL_H

#include "policy/policy.h"

struct policy_authorisation {
    char id[POLICY_ID_MAX + 1];
    unsigned line; /* of the section header */
    char authority[POLICY_TEXT_MAX + 1];
    char legal_reference[POLICY_TEXT_MAX + 1];
    /* Countries as given (file order, for the description) and as a 26x26 bitmap (decision). */
    char countries[POLICY_MAX_COUNTRIES][3];
    size_t n_countries;
    uint8_t country_bits[(26 * 26 + 7) / 8];
    uint32_t asns[POLICY_MAX_ASNS];
    size_t n_asns;
    struct net_cidr prefixes[POLICY_MAX_PREFIXES];
    size_t n_prefixes;
    char exclude_tags[POLICY_MAX_TAGS][POLICY_TAG_MAX + 1];
    size_t n_exclude_tags;
    struct net_cidr exclude_prefixes[POLICY_MAX_PREFIXES];
    size_t n_exclude_prefixes;
    uint64_t not_before_us; /* UTC microseconds, inclusive */
    uint64_t not_after_us;  /* exclusive */
    double rate;            /* commands per second, as written */
    uint64_t interval_ns;   /* 1e9 / rate, rounded */
    uint32_t burst;         /* tokens a quiet bucket holds */
    uint64_t tolerance_ns;  /* (burst - 1) x interval: how far ahead of time a token may go */
    bool once_per_bot;
    uint8_t command;     /* enum policy_command */
    uint32_t command_id; /* uninstall only; 0: not given */
    uint8_t mode;        /* enum policy_mode */
    uint32_t keys_seen;  /* bit per key, for duplicate and missing-key checks */
    /* Lines of the keys policy_check_env may refuse (0: not given), so its message can name
     * them like a parse error. */
    unsigned countries_line, asns_line, exclude_tags_line, command_line;
};

struct policy {
    char *source; /* the name given to policy_parse, for messages and the summary line */
    char name[POLICY_TEXT_MAX + 1];
    char version[POLICY_TEXT_MAX + 1];
    uint8_t sha256[32];
    /* Bound by policy_check_env before the policy is shared: the server's --uninstall-command
     * (0: none), used by uninstall authorisations without their own command_id. */
    uint32_t default_uninstall_id;
    size_t n_auth;
    struct policy_authorisation *auth[POLICY_MAX_AUTHORISATIONS];
};

/* The command id an uninstall verdict under authorisation a carries: its own, else the default
 * bound by policy_check_env, else 0. */
uint32_t policy_uninstall_id(const struct policy *p, const struct policy_authorisation *a);

/* ISO 3166-1 alpha-2: true for an officially assigned code ("NG"), upper case only. */
bool policy_country_assigned(const char *code);

#endif
