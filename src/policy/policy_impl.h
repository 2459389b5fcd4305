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
    uint8_t command;    /* enum policy_command */
    uint8_t mode;       /* enum policy_mode */
    uint32_t keys_seen; /* bit per key, for duplicate and missing-key checks */
};

struct policy {
    char name[POLICY_TEXT_MAX + 1];
    char version[POLICY_TEXT_MAX + 1];
    uint8_t sha256[32];
    size_t n_auth;
    struct policy_authorisation *auth[POLICY_MAX_AUTHORISATIONS];
};

/* ISO 3166-1 alpha-2: true for an officially assigned code ("NG"), upper case only. */
bool policy_country_assigned(const char *code);

#endif
