/* decide.c -- the pure decision for one bot and the lock-free rate buckets it draws on. */
#include "policy/policy_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* One bucket per authorisation, a cache line each so workers drawing on different
 * authorisations do not contend. The state is a single 64-bit "theoretical arrival time" (GCRA,
 * ITU-T I.371 / RFC 2698 style virtual scheduling) in nanoseconds, updated by CAS. */
struct rate_bucket {
    _Alignas(64) _Atomic uint64_t tat_ns; /* the next token is due at this time */
    uint64_t interval_ns;                 /* 1e9 / rate */
    uint64_t tolerance_ns;                /* (burst - 1) x interval */
    char id[POLICY_ID_MAX + 1];           /* for carrying state over a reload */
};

struct policy_rate {
    const struct policy *owner; /* the policy these buckets were made for */
    size_t n;
    struct rate_bucket b[POLICY_MAX_AUTHORISATIONS];
};

int policy_rate_new(const struct policy *p, const struct policy_rate *carry,
                    struct policy_rate **out)
{
    if (p == NULL || out == NULL) {
        return -1;
    }
    size_t size = (sizeof(struct policy_rate) + 63) / 64 * 64;
    struct policy_rate *r = aligned_alloc(64, size);
    if (r == NULL) {
        return -1;
    }
    memset(r, 0, size);
    r->owner = p;
    r->n = p->n_auth;
    for (size_t i = 0; i < r->n; i++) {
        const struct policy_authorisation *a = p->auth[i];
        r->b[i].interval_ns = a->interval_ns;
        r->b[i].tolerance_ns = a->tolerance_ns;
        memcpy(r->b[i].id, a->id, sizeof(r->b[i].id));
        atomic_init(&r->b[i].tat_ns, 0);
        for (size_t j = 0; carry != NULL && j < carry->n; j++) {
            if (strcmp(carry->b[j].id, a->id) == 0 && carry->b[j].interval_ns == a->interval_ns) {
                atomic_store(&r->b[i].tat_ns, atomic_load(&carry->b[j].tat_ns));
            }
        }
    }
    *out = r;
    return 0;
}

void policy_rate_free(struct policy_rate *rate)
{
    free(rate);
}

/* Takes a token if one is due: GCRA (ITU-T I.371 virtual scheduling). A token is due when
 * tat <= now + tolerance; taking it moves tat to max(tat, now) + interval. So a quiet bucket
 * holds `burst` tokens, and over any interval T at most rate x T + burst are taken; while demand
 * exceeds the rate, exactly rate per second on average. */
static bool rate_take(struct rate_bucket *b, uint64_t now_us)
{
    uint64_t now = now_us * 1000;
    uint64_t tat = atomic_load_explicit(&b->tat_ns, memory_order_relaxed);
    /* Bounded: each failed CAS means another worker took a token; after that many the bucket is
     * contended enough to call it empty. */
    for (int tries = 0; tries < 256; tries++) {
        if (tat > now + b->tolerance_ns) {
            return false;
        }
        uint64_t next = (tat > now ? tat : now) + b->interval_ns;
        if (atomic_compare_exchange_weak_explicit(&b->tat_ns, &tat, next, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

static bool in_country(const struct policy_authorisation *a, const char cc[3])
{
    if (cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' || cc[2] != '\0') {
        return false; /* unknown or malformed: not in any country list */
    }
    unsigned bit = (unsigned)(cc[0] - 'A') * 26 + (unsigned)(cc[1] - 'A');
    return (a->country_bits[bit / 8] >> (bit % 8)) & 1;
}

static bool in_asns(const struct policy_authorisation *a, uint32_t asn)
{
    for (size_t i = 0; asn != 0 && i < a->n_asns; i++) {
        if (a->asns[i] == asn) {
            return true;
        }
    }
    return false;
}

static bool in_prefixes(const struct net_cidr *list, size_t n, const struct net_addr *src)
{
    for (size_t i = 0; i < n; i++) {
        if (net_cidr_contains(&list[i], src)) {
            return true;
        }
    }
    return false;
}

/* Every scope key given must match (countries AND asns AND prefixes); a parsed policy has at
 * least one. */
static bool in_scope(const struct policy_authorisation *a, const struct policy_bot *bot)
{
    if (a->n_countries > 0 && !in_country(a, bot->cc)) {
        return false;
    }
    if (a->n_asns > 0 && !in_asns(a, bot->asn)) {
        return false;
    }
    if (a->n_prefixes > 0 && !in_prefixes(a->prefixes, a->n_prefixes, &bot->src)) {
        return false;
    }
    return a->n_countries + a->n_asns + a->n_prefixes > 0;
}

/* Tag lists are comma-separated; blanks around a tag are ignored and case is not significant
 * (a mis-cased sector tag must still exclude). */
static bool has_tag(const char *tags, const char *tag)
{
    size_t tlen = strlen(tag);
    const char *p = tags;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t')) {
            m--;
        }
        if (m == tlen && strncasecmp(p, tag, tlen) == 0) {
            return true;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return false;
}

static bool excludes(const struct policy_authorisation *a, const struct policy_bot *bot)
{
    for (size_t i = 0; bot->tags != NULL && i < a->n_exclude_tags; i++) {
        if (has_tag(bot->tags, a->exclude_tags[i])) {
            return true;
        }
    }
    return in_prefixes(a->exclude_prefixes, a->n_exclude_prefixes, &bot->src);
}

static int name(const struct policy *p, int idx, uint8_t verdict, struct policy_verdict *out)
{
    out->verdict = verdict;
    out->authorisation = idx;
    if (idx >= 0) {
        memcpy(out->authorisation_id, p->auth[idx]->id, sizeof(out->authorisation_id));
    }
    if (verdict == VERDICT_SEND || verdict == VERDICT_DRY_RUN) {
        const struct policy_authorisation *a = p->auth[idx];
        out->command = a->command;
        out->command_id = a->command == POLICY_COMMAND_UNINSTALL ? policy_uninstall_id(p, a) : 0;
    }
    return verdict;
}

/* Send needs every key: the policy's mode, the operator's --enforce and, for uninstall, an id to
 * send (policy_check_env refuses to load without one; this is the second lock on that door). */
static bool would_send(const struct policy *p, const struct policy_authorisation *a,
                       bool enforce_flag)
{
    return a->mode == POLICY_MODE_ENFORCE && enforce_flag &&
           (a->command != POLICY_COMMAND_UNINSTALL || policy_uninstall_id(p, a) != 0);
}

static int first_bit(uint64_t mask)
{
    return mask == 0 ? -1 : __builtin_ctzll(mask);
}

int policy_decide(const struct policy *p, uint8_t command, const struct policy_bot *bot,
                  uint64_t now_us, struct policy_rate *rate, bool enforce_flag,
                  struct policy_verdict *out)
{
    memset(out, 0, sizeof(*out));
    out->authorisation = -1;
    if (p == NULL || bot == NULL) {
        out->verdict = VERDICT_NOT_AUTHORISED;
        return out->verdict;
    }
    uint64_t matching = 0, window = 0;
    for (size_t i = 0; i < p->n_auth; i++) {
        const struct policy_authorisation *a = p->auth[i];
        /* An authorisation allows one command; the others' scopes say nothing about this one. */
        if (a->command == command && in_scope(a, bot)) {
            matching |= 1ull << i;
            if (a->not_before_us <= now_us && now_us < a->not_after_us) {
                window |= 1ull << i;
            }
        }
    }
    if (matching == 0) {
        return name(p, -1, VERDICT_NOT_AUTHORISED, out);
    }
    /* Exclusions of any authorisation that covers the bot win, in or out of its window. */
    for (uint64_t m = matching; m != 0; m &= m - 1) {
        int i = first_bit(m);
        if (excludes(p->auth[i], bot)) {
            return name(p, i, VERDICT_EXCLUDED, out);
        }
    }
    if (window == 0) {
        return name(p, first_bit(matching), VERDICT_OUTSIDE_WINDOW, out);
    }
    /* Once per bot: a command really sent is never repeated; a dry run is not repeated either,
     * but it sent nothing, so it does not stop the send that enforcement decides later. */
    uint64_t eligible = 0;
    for (uint64_t m = window; m != 0; m &= m - 1) {
        int i = first_bit(m);
        const struct policy_authorisation *a = p->auth[i];
        bool sent = (bot->sent >> i) & 1;
        bool rehearsed = (bot->rehearsed >> i) & 1;
        if (!a->once_per_bot || (!sent && (!rehearsed || would_send(p, a, enforce_flag)))) {
            eligible |= 1ull << i;
        }
    }
    if (eligible == 0) {
        int first = first_bit(window);
        bool sent = (bot->sent >> first) & 1;
        return name(p, first, sent ? VERDICT_ALREADY_SENT : VERDICT_ALREADY_REHEARSED, out);
    }
    bool rate_ok = rate != NULL && rate->owner == p && rate->n == p->n_auth;
    for (uint64_t m = eligible; rate_ok && m != 0; m &= m - 1) {
        int i = first_bit(m);
        if (rate_take(&rate->b[i], now_us)) {
            bool send = would_send(p, p->auth[i], enforce_flag);
            return name(p, i, send ? VERDICT_SEND : VERDICT_DRY_RUN, out);
        }
    }
    return name(p, first_bit(eligible), VERDICT_RATE_LIMITED, out);
}
