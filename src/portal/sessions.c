/* sessions.c -- browser sessions (random ids, idle and absolute expiry, a CSRF token each) and
 * the per-address count of failed logins that turns into 429s. Fixed tables, no allocation. */
#include "portal/internal.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdio.h>
#include <string.h>

#define US_PER_S 1000000ULL

int portal_random_hex(char *out, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw) || RAND_bytes(raw, (int)n) != 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

static bool expired(const struct portal_session *s, uint64_t now_us)
{
    return now_us - s->last_us > PORTAL_SESSION_TTL_S * US_PER_S ||
           now_us - s->created_us > PORTAL_SESSION_MAX_S * US_PER_S || now_us < s->created_us;
}

void portal_session_end(struct portal_session *s)
{
    OPENSSL_cleanse(s, sizeof(*s));
}

struct portal_session *portal_session_new(struct portal_sessions *t, const char *authority,
                                          const char *justification, uint64_t now_us)
{
    struct portal_session *slot = NULL;
    for (size_t i = 0; i < PORTAL_SESSIONS_MAX; i++) {
        struct portal_session *s = &t->s[i];
        if (s->used && expired(s, now_us)) {
            portal_session_end(s);
        }
        if (!s->used && slot == NULL) {
            slot = s;
        }
    }
    if (slot == NULL) {
        return NULL; /* full of live sessions: refuse rather than log someone out */
    }
    if (portal_random_hex(slot->id, 32) != 0 || portal_random_hex(slot->csrf, 32) != 0) {
        portal_session_end(slot);
        return NULL;
    }
    slot->used = true;
    snprintf(slot->authority, sizeof(slot->authority), "%s", authority);
    snprintf(slot->justification, sizeof(slot->justification), "%s", justification);
    slot->created_us = slot->last_us = now_us;
    return slot;
}

struct portal_session *portal_session_find(struct portal_sessions *t, const char *id,
                                           uint64_t now_us)
{
    if (strlen(id) != PORTAL_SESSION_ID_HEX) {
        return NULL;
    }
    struct portal_session *found = NULL;
    for (size_t i = 0; i < PORTAL_SESSIONS_MAX; i++) {
        struct portal_session *s = &t->s[i];
        if (!s->used) {
            continue;
        }
        if (CRYPTO_memcmp(s->id, id, PORTAL_SESSION_ID_HEX) == 0 && found == NULL) {
            found = s;
        }
    }
    if (found != NULL && expired(found, now_us)) {
        portal_session_end(found);
        return NULL;
    }
    if (found != NULL) {
        found->last_us = now_us;
    }
    return found;
}

void portal_sessions_prune(struct portal_sessions *t, const struct portal_authorities *as)
{
    for (size_t i = 0; i < PORTAL_SESSIONS_MAX; i++) {
        if (t->s[i].used && portal_authority_by_id(as, t->s[i].authority) == NULL) {
            portal_session_end(&t->s[i]);
        }
    }
}

static struct portal_fail *fail_slot(struct portal_sessions *t, const struct net_addr *ip,
                                     uint64_t now_us, bool create)
{
    struct portal_fail *oldest = NULL;
    for (size_t i = 0; i < PORTAL_FAIL_TABLE; i++) {
        struct portal_fail *f = &t->fail[i];
        if (f->ip.family != 0 && now_us - f->window_start_us > PORTAL_FAIL_WINDOW_S * US_PER_S) {
            memset(f, 0, sizeof(*f)); /* its window has passed */
        }
        if (f->ip.family != 0 && net_addr_equal_ip(&f->ip, ip)) {
            return f;
        }
        if (oldest == NULL || f->ip.family == 0 ||
            (oldest->ip.family != 0 && f->window_start_us < oldest->window_start_us)) {
            oldest = f;
        }
    }
    if (!create || oldest == NULL) {
        return NULL;
    }
    /* The table is bounded: a flood of addresses evicts the oldest windows first. */
    memset(oldest, 0, sizeof(*oldest));
    oldest->ip = *ip;
    oldest->ip.port = 0;
    oldest->window_start_us = now_us;
    return oldest;
}

bool portal_fail_blocked(struct portal_sessions *t, const struct net_addr *ip, uint64_t now_us)
{
    const struct portal_fail *f = fail_slot(t, ip, now_us, false);
    return f != NULL && f->count >= PORTAL_FAIL_MAX;
}

void portal_fail_note(struct portal_sessions *t, const struct net_addr *ip, uint64_t now_us)
{
    struct portal_fail *f = fail_slot(t, ip, now_us, true);
    if (f != NULL && f->count < UINT32_MAX) {
        f->count++;
    }
}
