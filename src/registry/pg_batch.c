/* pg_batch.c -- the PostgreSQL write path's model: the records of a batch applied in log order to
 * the rows they touch, held in memory, by the rules registry.c's per-record statements follow on
 * SQLite (each rule below names the statement it stands for). pg_batch_io.c reads those rows
 * before and writes the changed ones after, set-wise. */
#include "registry/pg_batch.h"
#include "registry/db_driver.h"
#include "registry/internal.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_DAY 86400000000ULL
#define AFTER_1H_US 3600000000LL
#define AFTER_24H_US 86400000000LL

/* ---- vectors and indexes ------------------------------------------------------------------ */

/* Makes room for `need` elements of `size` bytes. Returns 0 or -1. */
static int vec_reserve(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        n *= 2;
    }
    void *q = realloc(*p, n * size);
    if (q == NULL) {
        return -1;
    }
    *p = q;
    *cap = n;
    return 0;
}

#define VEC_PUSH(b, name)                                                                          \
    (vec_reserve((void **)&(b)->name, &(b)->name##_cap, (b)->name##_n + 1, sizeof(*(b)->name)) ==  \
             0                                                                                     \
         ? (uint32_t)(b)->name##_n++                                                               \
         : PGB_NONE)

/* FNV-1a over the bytes, then a final mix: keys are SHA-256 prefixes or addresses. */
static uint64_t hash_bytes(const void *p, size_t n, uint64_t h)
{
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ s[i]) * 1099511628211ULL;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    return h ^ (h >> 32);
}

static void index_clear(struct pgb_index *ix)
{
    if (ix->n > 0) {
        memset(ix->slot, 0, ix->cap * sizeof(*ix->slot));
    }
    ix->n = 0;
}

static void index_free(struct pgb_index *ix)
{
    free(ix->slot);
    free(ix->hash);
    memset(ix, 0, sizeof(*ix));
}

/* Puts element `idx` under hash h (replacing nothing: the caller found no equal element, or
 * `replace` is the slot of the element to replace). Keeps the load at most one half. */
static int index_put(struct pgb_index *ix, uint64_t h, uint32_t idx)
{
    if ((ix->n + 1) * 2 > ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 1024;
        uint32_t *slot = calloc(cap, sizeof(*slot));
        uint64_t *hash = calloc(cap, sizeof(*hash));
        if (slot == NULL || hash == NULL) {
            free(slot);
            free(hash);
            return -1;
        }
        for (size_t i = 0; i < ix->cap; i++) {
            if (ix->slot[i] != 0) {
                size_t j = ix->hash[i] & (cap - 1);
                while (slot[j] != 0) {
                    j = (j + 1) & (cap - 1);
                }
                slot[j] = ix->slot[i];
                hash[j] = ix->hash[i];
            }
        }
        free(ix->slot);
        free(ix->hash);
        ix->slot = slot;
        ix->hash = hash;
        ix->cap = cap;
    }
    size_t j = h & (ix->cap - 1);
    while (ix->slot[j] != 0) {
        j = (j + 1) & (ix->cap - 1);
    }
    ix->slot[j] = idx + 1;
    ix->hash[j] = h;
    ix->n++;
    return 0;
}

/* Walks the elements filed under hash h: *pos starts at SIZE_MAX; returns the next candidate's
 * index or PGB_NONE. */
static uint32_t index_next(const struct pgb_index *ix, uint64_t h, size_t *pos)
{
    if (ix->cap == 0) {
        return PGB_NONE;
    }
    size_t j = *pos == SIZE_MAX ? h & (ix->cap - 1) : (*pos + 1) & (ix->cap - 1);
    for (; ix->slot[j] != 0; j = (j + 1) & (ix->cap - 1)) {
        if (ix->hash[j] == h) {
            *pos = j;
            return ix->slot[j] - 1;
        }
    }
    return PGB_NONE;
}

/* ---- rows by key -------------------------------------------------------------------------- */

static uint64_t bot_hash(const uint8_t key[16])
{
    return hash_bytes(key, 16, 14695981039346656037ULL);
}

uint32_t pgb_bot_find(struct pg_batch *b, const uint8_t key[16])
{
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->bot_index, bot_hash(key), &pos)) != PGB_NONE) {
        if (memcmp(b->bots[i].key, key, 16) == 0) {
            return i;
        }
    }
    return PGB_NONE;
}

uint32_t pgb_bot_add(struct pg_batch *b, const uint8_t key[16])
{
    /* A key folded away (GONE) and made again: the index then names the new row. */
    size_t pos = SIZE_MAX;
    uint32_t old;
    while ((old = index_next(&b->bot_index, bot_hash(key), &pos)) != PGB_NONE &&
           memcmp(b->bots[old].key, key, 16) != 0) {
    }
    uint32_t i = VEC_PUSH(b, bots);
    if (i == PGB_NONE) {
        return PGB_NONE;
    }
    struct pgb_bot *bot = &b->bots[i];
    memset(bot, 0, sizeof(*bot));
    memcpy(bot->key, key, 16);
    bot->rem = PGB_NONE;
    bot->days = PGB_NONE;
    if (old != PGB_NONE) {
        b->bot_index.slot[pos] = i + 1;
    } else if (index_put(&b->bot_index, bot_hash(key), i) < 0) {
        b->bots_n--;
        return PGB_NONE;
    }
    return i;
}

static uint64_t ip_hash(const uint8_t *key, int len)
{
    return hash_bytes(key, (size_t)len, 14695981039346656037ULL ^ (uint64_t)len);
}

uint32_t pgb_ip_find(struct pg_batch *b, const uint8_t *key, int len)
{
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->ip_index, ip_hash(key, len), &pos)) != PGB_NONE) {
        if (b->ips[i].len == len && memcmp(b->ips[i].key, key, (size_t)len) == 0) {
            return i;
        }
    }
    return PGB_NONE;
}

uint32_t pgb_ip_add(struct pg_batch *b, const uint8_t *key, int len)
{
    uint32_t i = VEC_PUSH(b, ips);
    if (i == PGB_NONE) {
        return PGB_NONE;
    }
    struct pgb_ip *ip = &b->ips[i];
    memset(ip, 0, sizeof(*ip));
    memcpy(ip->key, key, (size_t)len);
    ip->len = (uint8_t)len;
    if (index_put(&b->ip_index, ip_hash(key, len), i) < 0) {
        b->ips_n--;
        return PGB_NONE;
    }
    return i;
}

static uint64_t rem_hash(uint32_t bot, const char *authorisation)
{
    return hash_bytes(authorisation, strlen(authorisation), 14695981039346656037ULL ^ bot);
}

static uint32_t rem_find(struct pg_batch *b, uint32_t bot, const char *authorisation)
{
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->rem_index, rem_hash(bot, authorisation), &pos)) != PGB_NONE) {
        if (b->rems[i].bot == bot && strcmp(b->rems[i].authorisation, authorisation) == 0) {
            return i;
        }
    }
    return PGB_NONE;
}

uint32_t pgb_rem_add(struct pg_batch *b, uint32_t bot, const char *authorisation)
{
    uint32_t i = VEC_PUSH(b, rems);
    if (i == PGB_NONE) {
        return PGB_NONE;
    }
    struct pgb_rem *r = &b->rems[i];
    memset(r, 0, sizeof(*r));
    r->bot = bot;
    snprintf(r->authorisation, sizeof(r->authorisation), "%s", authorisation);
    if (index_put(&b->rem_index, rem_hash(bot, r->authorisation), i) < 0) {
        b->rems_n--;
        return PGB_NONE;
    }
    r->next = b->bots[bot].rem;
    b->bots[bot].rem = i;
    return i;
}

static uint64_t pair_hash(enum pgb_set s, int64_t day, uint32_t member)
{
    uint64_t k[2] = {(uint64_t)day, (uint64_t)member << 2 | (uint64_t)s};
    return hash_bytes(k, sizeof(k), 14695981039346656037ULL);
}

uint32_t pgb_pair_find(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member)
{
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->set[s].index, pair_hash(s, day, member), &pos)) != PGB_NONE) {
        const struct pgb_pair *p = &b->set[s].pairs[i];
        if (p->day == day && p->member == member) {
            return i;
        }
    }
    return PGB_NONE;
}

uint32_t pgb_pair_put(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member,
                      uint8_t state)
{
    uint32_t i = VEC_PUSH(&b->set[s], pairs);
    if (i == PGB_NONE) {
        return PGB_NONE;
    }
    struct pgb_pair *p = &b->set[s].pairs[i];
    p->day = day;
    p->member = member;
    p->state = state;
    p->next = PGB_NONE;
    if (index_put(&b->set[s].index, pair_hash(s, day, member), i) < 0) {
        b->set[s].pairs_n--;
        return PGB_NONE;
    }
    if (s == SET_DAY_BOT) {
        p->next = b->bots[member].days;
        b->bots[member].days = i;
    }
    return i;
}

void pgb_anon_key(const struct contact *c, uint8_t key[16])
{
    struct contact anon = *c;
    char hex[33];
    memset(&anon.bot, 0, sizeof(anon.bot));
    anon.bot_key[0] = '\0';
    event_bot_key(&anon, hex);
    registry_internal_key_from_hex(hex, key);
}

/* ---- counters ----------------------------------------------------------------------------- */

static int daycc_add(struct pg_batch *b, int64_t day, const char *cc, int bots, int ips,
                     int contacts)
{
    uint64_t h = hash_bytes(cc, strlen(cc), 14695981039346656037ULL ^ (uint64_t)day);
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->daycc_index, h, &pos)) != PGB_NONE) {
        if (b->daycc[i].day == day && strcmp(b->daycc[i].cc, cc) == 0) {
            break;
        }
    }
    if (i == PGB_NONE) {
        i = VEC_PUSH(b, daycc);
        if (i == PGB_NONE || index_put(&b->daycc_index, h, i) < 0) {
            return -1;
        }
        memset(&b->daycc[i], 0, sizeof(b->daycc[i]));
        b->daycc[i].day = day;
        snprintf(b->daycc[i].cc, sizeof(b->daycc[i].cc), "%s", cc);
    }
    b->daycc[i].bots += bots;
    b->daycc[i].ips += ips;
    b->daycc[i].contacts += contacts;
    return 0;
}

/* ST_DAY_REM: the per-day remediation counts. */
static int dayrem_add(struct pg_batch *b, int64_t day, int sent, int failed, int seen)
{
    uint64_t h = hash_bytes(&day, sizeof(day), 14695981039346656037ULL);
    size_t pos = SIZE_MAX;
    uint32_t i;
    while ((i = index_next(&b->dayrem_index, h, &pos)) != PGB_NONE) {
        if (b->dayrem[i].day == day) {
            break;
        }
    }
    if (i == PGB_NONE) {
        i = VEC_PUSH(b, dayrem);
        if (i == PGB_NONE || index_put(&b->dayrem_index, h, i) < 0) {
            return -1;
        }
        memset(&b->dayrem[i], 0, sizeof(b->dayrem[i]));
        b->dayrem[i].day = day;
    }
    b->dayrem[i].sent += sent;
    b->dayrem[i].failed += failed;
    b->dayrem[i].seen += seen;
    return 0;
}

/* ---- the rules ---------------------------------------------------------------------------- */

static int oom(char *err, size_t errlen)
{
    return err_set(err, errlen, "registry: out of memory applying a batch");
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b; /* SQL_MIN(a, b): CASE WHEN a < b THEN a ELSE b END */
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b; /* SQL_MAX(a, b) */
}

static int64_t day_of(int64_t t)
{
    return (int64_t)((uint64_t)t / US_PER_DAY);
}

/* Copies a NUL-terminated value into a column buffer, cut to fit (snprintf's "%s" without its
 * cost: this runs for every column of every contact). */
static void set_col(char *col, size_t cap, const char *v)
{
    size_t n = strnlen(v, cap - 1);
    memcpy(col, v, n);
    col[n] = '\0';
}

#define SET(col, v) set_col(col, sizeof(col), v)

/* KEEP(col): an empty value never overwrites a known one. */
static void keep(char *col, size_t cap, const char *v)
{
    if (v[0] != '\0') {
        set_col(col, cap, v);
    }
}

/* ST_BOT_INSERT. */
static void bot_insert(struct pg_batch *b, uint32_t bi, const struct contact *c, const char *src,
                       const char *dst)
{
    struct pgb_bot *bot = &b->bots[bi];
    int64_t t = (int64_t)c->time_us;
    bot->state = PGB_LIVE;
    bot->dirty = true;
    bot->made = b->made++;
    SET(bot->family, c->family);
    SET(bot->host, c->bot.host);
    SET(bot->user, c->bot.user);
    SET(bot->os, c->bot.os);
    SET(bot->local_ip, c->bot.local_ip);
    SET(bot->campaign, c->bot.campaign);
    SET(bot->version, c->bot.version);
    bot->first_seen_us = bot->last_seen_us = t;
    SET(bot->src_ip, src);
    bot->src_port = c->src.port;
    SET(bot->dst_ip, dst);
    bot->dst_port = c->dst.port;
    bot->transport = c->transport;
    SET(bot->node, c->node);
    SET(bot->cc, c->cc);
    bot->asn = c->asn;
    SET(bot->tags, c->tags);
    bot->contacts = 1;
    bot->commanded_at_us = bot->last_verdict = bot->last_decision_us = 0;
    bot->seen_after_command = bot->last_seen_after_command_us = 0;
    bot->authorisation[0] = '\0';
}

/* ST_BOT_UPDATE_HOT, and ST_BOT_UPDATE_MOVED when this contact is the latest and its country or
 * AS differs. Every right-hand side reads the row's old values. */
static void bot_update(struct pgb_bot *bot, const struct contact *c, const char *src,
                       const char *dst)
{
    int64_t t = (int64_t)c->time_us;
    int64_t last = bot->last_seen_us;
    bool latest = t >= last;
    bool after = bot->commanded_at_us > 0 && t > bot->commanded_at_us;
    bot->contacts++;
    bot->first_seen_us = min64(bot->first_seen_us, t);
    bot->last_seen_us = max64(last, t);
    keep(bot->family, sizeof(bot->family), c->family);
    keep(bot->host, sizeof(bot->host), c->bot.host);
    keep(bot->user, sizeof(bot->user), c->bot.user);
    keep(bot->os, sizeof(bot->os), c->bot.os);
    keep(bot->local_ip, sizeof(bot->local_ip), c->bot.local_ip);
    keep(bot->campaign, sizeof(bot->campaign), c->bot.campaign);
    keep(bot->version, sizeof(bot->version), c->bot.version);
    if (latest) { /* LATEST(col) */
        SET(bot->src_ip, src);
        bot->src_port = c->src.port;
        SET(bot->dst_ip, dst);
        bot->dst_port = c->dst.port;
        bot->transport = c->transport;
        SET(bot->node, c->node);
        SET(bot->tags, c->tags);
        SET(bot->cc, c->cc); /* MOVED: the same values when unchanged */
        bot->asn = c->asn;
    }
    if (after) {
        bot->seen_after_command++;
        bot->last_seen_after_command_us = max64(bot->last_seen_after_command_us, t);
    }
    bot->dirty = true;
}

/* ST_IP_INSERT, ST_IP_UPDATE_HOT / _MOVED. */
static void ip_apply(struct pgb_ip *ip, const struct contact *c, bool identified)
{
    int64_t t = (int64_t)c->time_us;
    if (ip->state != PGB_LIVE) {
        ip->state = PGB_LIVE;
        SET(ip->cc, c->cc);
        ip->asn = c->asn;
        ip->first_seen_us = ip->last_seen_us = t;
        ip->contacts = 1;
        ip->identified = identified;
    } else {
        if (t >= ip->last_seen_us) {
            SET(ip->cc, c->cc);
            ip->asn = c->asn;
        }
        ip->contacts++;
        ip->first_seen_us = min64(ip->first_seen_us, t);
        ip->last_seen_us = max64(ip->last_seen_us, t);
        ip->identified = max64(ip->identified, identified);
    }
    ip->dirty = true;
}

/* day_set_add: (day, member) into a per-day set unless the member's last contact was already on
 * that day. New for a new member or a later day without asking; for an earlier day (a log applied
 * out of time order) the stored set is asked, as the SQL path waits for the insert's outcome.
 * Returns 1 new, 0 not, -1 error. */
static int day_set_add(struct pg_batch *b, enum pgb_set s, int64_t day, bool known,
                       int64_t last_seen_us, uint32_t member, bool member_stored, char *err,
                       size_t errlen)
{
    if (known && last_seen_us >= 0 && day_of(last_seen_us) == day) {
        return 0;
    }
    uint32_t p = pgb_pair_find(b, s, day, member);
    if (!known || last_seen_us < 0 || day > day_of(last_seen_us)) {
        /* Inserted with ON CONFLICT DO NOTHING and counted as new without asking. */
        if (p == PGB_NONE && pgb_pair_put(b, s, day, member, PAIR_INSERT) == PGB_NONE) {
            return oom(err, errlen);
        }
        return 1;
    }
    if (p != PGB_NONE) {
        return 0; /* in the set already: the insert changes nothing */
    }
    int stored = 0;
    if (member_stored) {
        stored = pgb_pair_stored(b, s, day, member, err, errlen);
        if (stored < 0) {
            return -1;
        }
    }
    if (pgb_pair_put(b, s, day, member, stored ? PAIR_PRESENT : PAIR_INSERT) == PGB_NONE) {
        return oom(err, errlen);
    }
    return !stored;
}

/* after_command: a contact at t of commanded bot `bi`, later than its first command. */
static int after_command(struct pg_batch *b, uint32_t bi, int64_t t, int64_t day, char *err,
                         size_t errlen)
{
    /* ST_REM_CONTACT: every authorisation it was commanded under before t counts it. */
    for (uint32_t i = b->bots[bi].rem; i != PGB_NONE; i = b->rems[i].next) {
        int64_t *v = b->rems[i].v;
        int64_t first = v[REM_FIRST_COMMAND];
        if (first <= 0 || t <= first) {
            continue;
        }
        v[REM_SEEN_AFTER]++;
        if (v[REM_FIRST_AFTER] == 0 || t < v[REM_FIRST_AFTER]) {
            v[REM_FIRST_AFTER] = t;
        }
        v[REM_LAST_AFTER] = max64(v[REM_LAST_AFTER], t);
        if (t > first + AFTER_1H_US && (v[REM_FIRST_AFTER_1H] == 0 || t < v[REM_FIRST_AFTER_1H])) {
            v[REM_FIRST_AFTER_1H] = t;
        }
        if (t > first + AFTER_24H_US &&
            (v[REM_FIRST_AFTER_24H] == 0 || t < v[REM_FIRST_AFTER_24H])) {
            v[REM_FIRST_AFTER_24H] = t;
        }
        b->rems[i].dirty = true;
    }
    /* ST_DAY_COMMANDED, and the day's seen count when the pair is new. The stored pairs of
     * every bot commanded before the batch were read for the batch's days (pgb_load); a bot
     * first commanded in the batch has none. */
    if (pgb_pair_find(b, SET_DAY_COMMANDED, day, bi) != PGB_NONE) {
        return 0;
    }
    if (pgb_pair_put(b, SET_DAY_COMMANDED, day, bi, PAIR_INSERT) == PGB_NONE ||
        dayrem_add(b, day, 0, 0, 1) < 0) {
        return oom(err, errlen);
    }
    return 0;
}

/* absorb_anon: bot `into` identified itself from an address whose earlier contacts had no
 * identity: their address-keyed row is folded into it and leaves the per-day bot counts. */
static int absorb_anon(struct pg_batch *b, const struct contact *c, uint32_t into, char *err,
                       size_t errlen)
{
    uint8_t key[16];
    pgb_anon_key(c, key);
    uint32_t ai = pgb_bot_find(b, key);
    if (ai == PGB_NONE || b->bots[ai].state != PGB_LIVE || ai == into) {
        return 0;
    }
    struct pgb_bot *anon = &b->bots[ai];
    /* ST_DAY_BOT_DELETE over its days: its stored pairs were all read (pgb_load), its new ones
     * are the batch's. */
    int64_t from = day_of(anon->first_seen_us), to = day_of(anon->last_seen_us);
    for (uint32_t p = anon->days; p != PGB_NONE; p = b->set[SET_DAY_BOT].pairs[p].next) {
        struct pgb_pair *pair = &b->set[SET_DAY_BOT].pairs[p];
        if (pair->day < from || pair->day > to ||
            (pair->state != PAIR_INSERT && pair->state != PAIR_PRESENT)) {
            continue;
        }
        pair->state = pair->state == PAIR_INSERT ? PAIR_DROPPED : PAIR_DELETE;
        if (daycc_add(b, pair->day, anon->cc, -1, 0, 0) < 0) {
            return oom(err, errlen);
        }
    }
    /* ST_BOT_DELETE, ST_BOT_ABSORB. */
    anon->state = PGB_GONE;
    struct pgb_bot *bot = &b->bots[into];
    bot->contacts += anon->contacts;
    bot->first_seen_us = min64(bot->first_seen_us, anon->first_seen_us);
    bot->dirty = true;
    return 0;
}

static int apply_contact(struct pg_batch *b, const struct contact *c, char *err, size_t errlen)
{
    uint8_t key[16];
    bool identified = registry_internal_key_from_hex(c->bot_key, key);
    if (!identified) {
        pgb_anon_key(c, key);
    }
    char src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN];
    net_addr_format_ip(&c->src, src);
    net_addr_format_ip(&c->dst, dst);
    int64_t t = (int64_t)c->time_us;
    int64_t day = (int64_t)(c->time_us / US_PER_DAY);

    int iplen = registry_internal_ip_key_len(&c->src);
    uint32_t ii = pgb_ip_find(b, c->src.ip, iplen);
    if (ii == PGB_NONE) {
        return err_set(err, errlen, "registry: batch: an address was not read before applying");
    }
    /* What ST_IP_FIND read, before this contact changes the row. */
    bool ip_known = b->ips[ii].state == PGB_LIVE;
    int64_t ip_last = b->ips[ii].last_seen_us;
    bool ip_identified = ip_known && b->ips[ii].identified != 0;

    bool bot_row = identified || !(ip_known && ip_identified);
    uint32_t bi = PGB_NONE;
    bool known = false;
    int64_t bot_last = 0;
    if (bot_row) {
        bi = pgb_bot_find(b, key);
        if (bi == PGB_NONE) {
            return err_set(err, errlen, "registry: batch: a bot was not read before applying");
        }
        if (b->bots[bi].state == PGB_GONE) {
            /* Folded away earlier in the batch: ST_BOT_FIND finds nothing, a new row is made. */
            bi = pgb_bot_add(b, key);
            if (bi == PGB_NONE) {
                return oom(err, errlen);
            }
        }
        struct pgb_bot *bot = &b->bots[bi];
        known = bot->state == PGB_LIVE;
        if (known) {
            bot_last = bot->last_seen_us;
            int64_t commanded = bot->commanded_at_us;
            bot_update(bot, c, src, dst);
            if (commanded > 0 && t > commanded && after_command(b, bi, t, day, err, errlen) < 0) {
                return -1;
            }
        } else {
            bot_insert(b, bi, c, src, dst);
        }
    }
    ip_apply(&b->ips[ii], c, identified);
    if (identified && ip_known && !ip_identified && absorb_anon(b, c, bi, err, errlen) < 0) {
        return -1;
    }
    int new_bot = !bot_row ? 0
                           : day_set_add(b, SET_DAY_BOT, day, known, bot_last, bi,
                                         b->bots[bi].in_db && !b->bots[bi].days_read, err, errlen);
    if (new_bot < 0) {
        return -1;
    }
    int new_ip =
        day_set_add(b, SET_DAY_IP, day, ip_known, ip_last, ii, b->ips[ii].in_db, err, errlen);
    if (new_ip < 0) {
        return -1;
    }
    if (daycc_add(b, day, c->cc, new_bot, new_ip, 1) < 0) {
        return oom(err, errlen);
    }
    return 0;
}

/* A contact as apply_heartbeats() (registry.c) makes one of a heartbeats record. */
void pgb_heartbeat_contact(const struct heartbeats *hb, struct contact *c)
{
    memset(c, 0, sizeof(*c));
    memcpy(c->node, hb->node, sizeof(c->node));
    c->src = hb->src;
    c->dst = hb->dst;
    c->peer = hb->peer;
    c->transport = hb->transport;
    memcpy(c->family, hb->family, sizeof(c->family));
    c->msg_type = CONTACT_MSG_HEARTBEAT;
    memcpy(c->bot_key, hb->bot_key, sizeof(c->bot_key));
    memcpy(c->cc, hb->cc, sizeof(c->cc));
    c->asn = hb->asn;
    memcpy(c->tags, hb->tags, sizeof(c->tags));
    c->enrich_id = hb->enrich_id;
    c->time_us = hb->first_time_us != 0 ? hb->first_time_us : hb->time_us;
}

/* apply_heartbeats: a bot's rolled-up polls, its first and last applied as contacts, the polls
 * between added to the contact counts (ST_BOT_ADD_CONTACTS, ST_IP_ADD_CONTACTS). */
static int apply_heartbeats(struct pg_batch *b, const struct heartbeats *hb, char *err,
                            size_t errlen)
{
    if (hb->count == 0) {
        return 0;
    }
    if (hb->src.family == 0) {
        /* Counted before an erasure, written after it: the polls count for their day only. */
        return daycc_add(b, (int64_t)(hb->time_us / US_PER_DAY), hb->cc, 0, 0, (int)hb->count) < 0
                   ? oom(err, errlen)
                   : 0;
    }
    struct contact c;
    pgb_heartbeat_contact(hb, &c);
    if (apply_contact(b, &c, err, errlen) < 0) {
        return -1;
    }
    if (hb->count == 1) {
        return 0;
    }
    c.time_us = hb->time_us;
    if (apply_contact(b, &c, err, errlen) < 0) {
        return -1;
    }
    int64_t extra = (int64_t)hb->count - 2;
    if (extra == 0) {
        return 0;
    }
    uint8_t key[16];
    if (!registry_internal_key_from_hex(c.bot_key, key)) {
        pgb_anon_key(&c, key);
    }
    uint32_t bi = pgb_bot_find(b, key);
    if (bi != PGB_NONE && b->bots[bi].state == PGB_LIVE) {
        b->bots[bi].contacts += extra;
        b->bots[bi].dirty = true;
    }
    uint32_t ii = pgb_ip_find(b, c.src.ip, registry_internal_ip_key_len(&c.src));
    if (ii != PGB_NONE && b->ips[ii].state == PGB_LIVE) {
        b->ips[ii].contacts += extra;
        b->ips[ii].dirty = true;
    }
    return daycc_add(b, (int64_t)(hb->time_us / US_PER_DAY), c.cc, 0, 0, (int)extra) < 0
               ? oom(err, errlen)
               : 0;
}

/* The earliest non-zero of a stored time and a new one (FIRST_OF). */
static int64_t first_of(int64_t stored, int64_t v)
{
    if (v == 0) {
        return stored;
    }
    if (stored == 0) {
        return v;
    }
    return min64(stored, v);
}

/* ST_REM_DECISION / ST_REM_COMMAND (a, b: send and dry-run decisions, or commands sent and
 * failed), and ST_DAY_REM for a command. Nothing for a key without a bot row. */
static int remediation_record(struct pg_batch *b, uint32_t bi, bool command,
                              const char *authorisation, int x, int y, uint64_t time_us, char *err,
                              size_t errlen)
{
    if (bi == PGB_NONE || b->bots[bi].state != PGB_LIVE) {
        return 0;
    }
    uint32_t ri = rem_find(b, bi, authorisation);
    if (ri == PGB_NONE && (ri = pgb_rem_add(b, bi, authorisation)) == PGB_NONE) {
        return oom(err, errlen);
    }
    int64_t *v = b->rems[ri].v;
    int64_t t = (int64_t)time_us;
    int first = command ? REM_COMMANDS_SENT : REM_SEND_DECISIONS;
    v[first] += x;
    v[first + 1] = first_of(v[first + 1], x * t);
    v[first + 2] += y;
    v[first + 3] = first_of(v[first + 3], y * t);
    b->rems[ri].dirty = true;
    if (command && dayrem_add(b, (int64_t)(time_us / US_PER_DAY), x, y, 0) < 0) {
        return oom(err, errlen);
    }
    return 0;
}

static int apply_record(struct pg_batch *b, const struct record *rec, char *err, size_t errlen)
{
    uint8_t key[16];
    switch (rec->kind) {
    case RECORD_CONTACT:
        return apply_contact(b, &rec->u.contact, err, errlen);
    case RECORD_HEARTBEATS:
        return apply_heartbeats(b, &rec->u.heartbeats, err, errlen);
    case RECORD_DECISION: {
        const struct decision *d = &rec->u.decision;
        if (!registry_internal_key_from_hex(d->bot_key, key)) {
            return 0;
        }
        uint32_t bi = pgb_bot_find(b, key);
        if (bi != PGB_NONE && b->bots[bi].state == PGB_LIVE) { /* ST_DECISION */
            struct pgb_bot *bot = &b->bots[bi];
            bot->last_verdict = d->verdict;
            bot->last_decision_us = (int64_t)d->time_us;
            keep(bot->authorisation, sizeof(bot->authorisation), d->authorisation);
            bot->dirty = true;
        }
        if (d->verdict != VERDICT_SEND && d->verdict != VERDICT_DRY_RUN) {
            return 0;
        }
        return remediation_record(b, bi, false, d->authorisation, d->verdict == VERDICT_SEND,
                                  d->verdict == VERDICT_DRY_RUN, d->time_us, err, errlen);
    }
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED: {
        const struct command_record *c = &rec->u.command;
        bool sent = rec->kind == RECORD_COMMAND_SENT;
        if (!registry_internal_key_from_hex(c->bot_key, key)) {
            return 0;
        }
        uint32_t bi = pgb_bot_find(b, key);
        if (sent && bi != PGB_NONE && b->bots[bi].state == PGB_LIVE) { /* ST_COMMAND */
            struct pgb_bot *bot = &b->bots[bi];
            int64_t t = (int64_t)c->time_us;
            bot->commanded_at_us = bot->commanded_at_us == 0 ? t : min64(bot->commanded_at_us, t);
            keep(bot->authorisation, sizeof(bot->authorisation), c->authorisation);
            bot->dirty = true;
        }
        return remediation_record(b, bi, true, c->authorisation, sent, !sent, c->time_us, err,
                                  errlen);
    }
    default:
        return 0;
    }
}

/* ---- the batch ---------------------------------------------------------------------------- */

int pg_batch_new(struct pg_batch **out)
{
    *out = calloc(1, sizeof(**out));
    return *out != NULL ? 0 : -1;
}

/* Empties the batch, keeping its memory for the next one (up to a bound). */
static void batch_reset(struct pg_batch *b)
{
    b->entries_len = 0;
    b->offsets_n = 0;
    b->bots_n = b->ips_n = b->rems_n = b->daycc_n = b->dayrem_n = 0;
    b->made = 0;
    index_clear(&b->bot_index);
    index_clear(&b->ip_index);
    index_clear(&b->rem_index);
    index_clear(&b->daycc_index);
    index_clear(&b->dayrem_index);
    for (int s = 0; s < SET_COUNT; s++) {
        b->set[s].pairs_n = 0;
        index_clear(&b->set[s].index);
    }
}

void pg_batch_free(struct pg_batch *b)
{
    if (b == NULL) {
        return;
    }
    free(b->entries);
    free(b->offsets);
    free(b->bots);
    free(b->ips);
    free(b->rems);
    free(b->daycc);
    free(b->dayrem);
    index_free(&b->bot_index);
    index_free(&b->ip_index);
    index_free(&b->rem_index);
    index_free(&b->daycc_index);
    index_free(&b->dayrem_index);
    for (int s = 0; s < SET_COUNT; s++) {
        free(b->set[s].pairs);
        index_free(&b->set[s].index);
    }
    free(b);
}

int pg_batch_add(struct pg_batch *b, const uint8_t *entry, size_t len)
{
    if (vec_reserve((void **)&b->entries, &b->entries_cap, b->entries_len + len, 1) < 0) {
        return -1;
    }
    uint32_t i = VEC_PUSH(b, offsets);
    if (i == PGB_NONE) {
        return -1;
    }
    b->offsets[i] = (uint32_t)b->entries_len;
    memcpy(b->entries + b->entries_len, entry, len);
    b->entries_len += len;
    return 0;
}

size_t pg_batch_records(const struct pg_batch *b)
{
    return b->offsets_n;
}

/* Record i of the batch, decoded. Returns 0 or -1. */
int pgb_record(const struct pg_batch *b, size_t i, struct record *rec, char *err, size_t errlen)
{
    size_t end = i + 1 < b->offsets_n ? b->offsets[i + 1] : b->entries_len;
    char derr[128];
    if (event_decode(b->entries + b->offsets[i], end - b->offsets[i], rec, derr, sizeof(derr)) <
        0) {
        return err_set(err, errlen, "registry: batch: a kept record no longer decodes: %s", derr);
    }
    return 0;
}

int pg_batch_write(struct pg_batch *b, struct db *db, char *err, size_t errlen)
{
    if (b->offsets_n == 0) {
        return 0;
    }
    int rc = -1;
    b->conn = db_postgres_conn(db);
    if (b->conn == NULL) {
        err_set(err, errlen, "registry: %s", db_errmsg(db));
        goto out;
    }
    if (pgb_load(b, err, errlen) < 0) {
        goto out;
    }
    struct record rec;
    for (size_t i = 0; i < b->offsets_n; i++) {
        if (pgb_record(b, i, &rec, err, errlen) < 0 || apply_record(b, &rec, err, errlen) < 0) {
            goto out;
        }
    }
    rc = pgb_store(b, err, errlen);
out:
    batch_reset(b);
    return rc;
}

void pg_batch_clear(struct pg_batch *b)
{
    batch_reset(b);
    b->staged = false;
}
