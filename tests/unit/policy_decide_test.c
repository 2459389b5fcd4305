/* policy_decide_test.c -- the remediation safety rules, checked on thousands of random policies and
 * bots against a small independent model of the rule in docs/policy.md (two commands, sent and
 * rehearsed bots, command ids), plus named cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

/* 2024-01-01T00:00:00Z */
#define T0_US 1704067200000000ull
#define SEC 1000000ull

/* ---- a tiny deterministic generator (xorshift64*), fixed seed ---- */
static uint64_t rng_state = 0x5eed5eed1234ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static unsigned pick(unsigned n)
{
    return (unsigned)(rnd() % n);
}

/* ---- the reference model: plain data and the rule written out naively ---- */
static const char *const CCS[] = {"NG", "IN", "FR", "DE", "US", "MT"};
static const uint32_t ASNS[] = {100, 200, 300, 64500};
static const char *const TAGS[] = {"hospital", "school", "bank", "power"};

struct ref_prefix {
    uint8_t ip[4];
    unsigned len; /* 16 or 24 */
};

struct ref_auth {
    char id[16];
    int ncc, nasn, npfx, ntag, nxpfx;
    const char *cc[4];
    uint32_t asn[3];
    struct ref_prefix pfx[3];
    const char *tag[2];
    struct ref_prefix xpfx[2];
    uint64_t nb, na; /* window, microseconds */
    unsigned rate;   /* whole commands per second, so 1e9/rate is exact */
    unsigned burst;  /* 0: not written, the default applies */
    int once, enforce;
    uint8_t cmd;     /* enum policy_command */
    uint32_t cid;    /* command_id written, 0: none (uninstall only) */
    uint64_t tat_ns; /* reference rate state */
};

struct ref_bot {
    uint8_t ip[4];
    char cc[3];
    uint32_t asn;
    char tags[64];
    uint64_t sent, rehearsed;
};

static int ref_in_prefix(const struct ref_prefix *p, const uint8_t ip[4])
{
    uint32_t a = (uint32_t)ip[0] << 24 | (uint32_t)ip[1] << 16 | (uint32_t)ip[2] << 8 | ip[3];
    uint32_t b =
        (uint32_t)p->ip[0] << 24 | (uint32_t)p->ip[1] << 16 | (uint32_t)p->ip[2] << 8 | p->ip[3];
    uint32_t mask = p->len == 0 ? 0 : 0xffffffffu << (32 - p->len);
    return (a & mask) == (b & mask);
}

static int ref_has_tag(const char *tags, const char *tag)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", tags);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, tag) == 0) {
            return 1;
        }
    }
    return 0;
}

static int ref_covers(const struct ref_auth *a, const struct ref_bot *b)
{
    int ok = 1;
    if (a->ncc) {
        int m = 0;
        for (int i = 0; i < a->ncc; i++) {
            m |= strcmp(a->cc[i], b->cc) == 0;
        }
        ok &= m;
    }
    if (a->nasn) {
        int m = 0;
        for (int i = 0; i < a->nasn; i++) {
            m |= a->asn[i] == b->asn;
        }
        ok &= m;
    }
    if (a->npfx) {
        int m = 0;
        for (int i = 0; i < a->npfx; i++) {
            m |= ref_in_prefix(&a->pfx[i], b->ip);
        }
        ok &= m;
    }
    return ok;
}

static int ref_excludes(const struct ref_auth *a, const struct ref_bot *b)
{
    for (int i = 0; i < a->ntag; i++) {
        if (ref_has_tag(b->tags, a->tag[i])) {
            return 1;
        }
    }
    for (int i = 0; i < a->nxpfx; i++) {
        if (ref_in_prefix(&a->xpfx[i], b->ip)) {
            return 1;
        }
    }
    return 0;
}

/* GCRA as docs/policy.md states it: a quiet bucket holds `burst` tokens (default a tenth of a
 * second's worth, at least 1), one more every 1/rate seconds. */
static int ref_take(struct ref_auth *a, uint64_t now_us)
{
    uint64_t now = now_us * 1000, iv = 1000000000ull / a->rate;
    uint64_t burst = a->burst ? a->burst : a->rate <= 10 ? 1 : (a->rate + 9) / 10;
    if (a->tat_ns > now + (burst - 1) * iv) {
        return 0;
    }
    a->tat_ns = (a->tat_ns > now ? a->tat_ns : now) + iv;
    return 1;
}

/* The id an uninstall under a carries: its own, else the server's default (def). */
static uint32_t ref_id(const struct ref_auth *a, uint32_t def)
{
    return a->cmd != POLICY_COMMAND_UNINSTALL ? 0 : a->cid ? a->cid : def;
}

/* Send needs every key: mode = enforce, --enforce and, for uninstall, an id. */
static int ref_would_send(const struct ref_auth *a, int enforce_flag, uint32_t def)
{
    return a->enforce && enforce_flag && (a->cmd != POLICY_COMMAND_UNINSTALL || ref_id(a, def));
}

/* The rule of docs/policy.md, step by step, for one command. Returns the verdict and the
 * authorisation index. */
static int ref_decide(struct ref_auth *auth, int n, uint8_t cmd, const struct ref_bot *b,
                      uint64_t now, int enforce_flag, uint32_t def, int *idx)
{
    int first_cov = -1, first_win = -1, first_elig = -1;
    for (int i = 0; i < n; i++) {
        if (auth[i].cmd == cmd && ref_covers(&auth[i], b) && ref_excludes(&auth[i], b)) {
            *idx = i;
            return VERDICT_EXCLUDED;
        }
    }
    for (int i = 0; i < n; i++) {
        if (auth[i].cmd != cmd || !ref_covers(&auth[i], b)) {
            continue;
        }
        if (first_cov < 0) {
            first_cov = i;
        }
        if (now < auth[i].nb || now >= auth[i].na) {
            continue;
        }
        if (first_win < 0) {
            first_win = i;
        }
        /* really sent: never again; rehearsed: again only if it would now send */
        if (auth[i].once && (b->sent >> i & 1)) {
            continue;
        }
        if (auth[i].once && (b->rehearsed >> i & 1) &&
            !ref_would_send(&auth[i], enforce_flag, def)) {
            continue;
        }
        if (first_elig < 0) {
            first_elig = i;
        }
        if (ref_take(&auth[i], now)) {
            *idx = i;
            return ref_would_send(&auth[i], enforce_flag, def) ? VERDICT_SEND : VERDICT_DRY_RUN;
        }
    }
    *idx = first_elig >= 0 ? first_elig : first_win >= 0 ? first_win : first_cov;
    if (first_elig < 0 && first_win >= 0) {
        return b->sent >> first_win & 1 ? VERDICT_ALREADY_SENT : VERDICT_ALREADY_REHEARSED;
    }
    return first_elig >= 0  ? VERDICT_RATE_LIMITED
           : first_cov >= 0 ? VERDICT_OUTSIDE_WINDOW
                            : VERDICT_NOT_AUTHORISED;
}

/* ---- random policies, written as INI text so the parser is exercised too ---- */
static void fmt_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / SEC);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void random_prefix(struct ref_prefix *p)
{
    p->len = pick(2) ? 16 : 24;
    p->ip[0] = 10;
    p->ip[1] = (uint8_t)pick(4);
    p->ip[2] = p->len == 24 ? (uint8_t)pick(4) : 0;
    p->ip[3] = 0;
}

static void random_auth(struct ref_auth *a, int i)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "auth-%d", i);
    do {
        a->ncc = pick(2) ? 1 + (int)pick(3) : 0;
        a->nasn = pick(3) == 0 ? 1 + (int)pick(2) : 0;
        a->npfx = pick(3) == 0 ? 1 + (int)pick(2) : 0;
    } while (a->ncc + a->nasn + a->npfx == 0);
    /* distinct entries: the parser refuses repeats */
    unsigned off = pick(6);
    for (int k = 0; k < a->ncc; k++) {
        a->cc[k] = CCS[(off + (unsigned)k) % 6];
    }
    off = pick(4);
    for (int k = 0; k < a->nasn; k++) {
        a->asn[k] = ASNS[(off + (unsigned)k) % 4];
    }
    for (int k = 0; k < a->npfx; k++) {
        random_prefix(&a->pfx[k]);
        if (k > 0) { /* 10.x.(4+k).0/24 never equals another entry */
            a->pfx[k].len = 24;
            a->pfx[k].ip[2] = (uint8_t)(4 + k);
        }
    }
    a->ntag = pick(3) == 0 ? 1 + (int)pick(2) : 0;
    off = pick(4);
    for (int k = 0; k < a->ntag; k++) {
        a->tag[k] = TAGS[(off + (unsigned)k) % 4];
    }
    a->nxpfx = pick(4) == 0 ? 1 : 0;
    if (a->nxpfx) {
        random_prefix(&a->xpfx[0]);
        a->xpfx[0].len = 24;
    }
    /* windows in whole seconds within the first minute; decisions land on them exactly */
    a->nb = T0_US + pick(30) * SEC;
    a->na = a->nb + (1 + pick(30)) * SEC;
    static const unsigned rates[] = {1, 2, 5, 10, 100, 1000};
    a->rate = rates[pick(6)];
    a->burst = pick(3) == 0 ? 1 + pick(3) : 0;
    a->once = pick(4) != 0;
    a->enforce = (int)pick(2);
    a->cmd = pick(3) ? POLICY_COMMAND_UNINSTALL : POLICY_COMMAND_COLLECT;
    static const uint32_t ids[] = {0xFD01, 0x1004, 0x2A, 0xFFFF};
    a->cid = a->cmd == POLICY_COMMAND_UNINSTALL && pick(3) ? ids[pick(4)] : 0;
}

static void put_prefix(FILE *f, const struct ref_prefix *p, int first)
{
    fprintf(f, "%s%u.%u.%u.%u/%u", first ? "" : ", ", p->ip[0], p->ip[1], p->ip[2], p->ip[3],
            p->len);
}

static char *policy_text(const struct ref_auth *auth, int n, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    fprintf(f, "[policy]\nname = random\n");
    for (int i = 0; i < n; i++) {
        const struct ref_auth *a = &auth[i];
        char nb[32], na[32];
        fmt_time(a->nb, nb);
        fmt_time(a->na, na);
        fprintf(f, "\n[authorisation %s]\nauthority = A%d\nlegal_reference = L%d\n", a->id, i, i);
        if (a->ncc) {
            fprintf(f, "countries = ");
            for (int k = 0; k < a->ncc; k++) {
                fprintf(f, "%s%s", k ? ", " : "", a->cc[k]);
            }
            fprintf(f, "\n");
        }
        if (a->nasn) {
            fprintf(f, "asns = ");
            for (int k = 0; k < a->nasn; k++) {
                fprintf(f, "%s%s%u", k ? ", " : "", k % 2 ? "" : "AS", a->asn[k]);
            }
            fprintf(f, "\n");
        }
        if (a->npfx) {
            fprintf(f, "prefixes = ");
            for (int k = 0; k < a->npfx; k++) {
                put_prefix(f, &a->pfx[k], k == 0);
            }
            fprintf(f, "\n");
        }
        if (a->ntag) {
            fprintf(f, "exclude_tags = ");
            for (int k = 0; k < a->ntag; k++) {
                fprintf(f, "%s%s", k ? ", " : "", a->tag[k]);
            }
            fprintf(f, "\n");
        }
        if (a->nxpfx) {
            fprintf(f, "exclude_prefixes = ");
            put_prefix(f, &a->xpfx[0], 1);
            fprintf(f, "\n");
        }
        fprintf(f, "not_before = %s\nnot_after = %s\nrate = %u\ncommand = %s\n", nb, na, a->rate,
                a->cmd == POLICY_COMMAND_COLLECT ? "collect" : "uninstall");
        if (a->cid) { /* hex or decimal, both are accepted */
            fprintf(f, pick(2) ? "command_id = 0x%X\n" : "command_id = %u\n", a->cid);
        }
        if (a->burst) {
            fprintf(f, "burst = %u\n", a->burst);
        }
        if (a->once == 0 || pick(2)) {
            fprintf(f, "once_per_bot = %s\n", a->once ? "true" : "false");
        }
        if (a->enforce || pick(2)) {
            fprintf(f, "mode = %s\n", a->enforce ? "enforce" : "dry-run");
        }
    }
    fclose(f);
    return text;
}

static void random_bot(struct ref_bot *b)
{
    memset(b, 0, sizeof(*b));
    b->ip[0] = pick(10) ? 10 : 192;
    b->ip[1] = (uint8_t)pick(6);
    b->ip[2] = (uint8_t)pick(7);
    b->ip[3] = (uint8_t)pick(256);
    if (pick(8)) {
        memcpy(b->cc, CCS[pick(6)], 3);
    } else if (pick(2)) {
        memcpy(b->cc, "GB", 3);
    } /* else unknown: "" */
    b->asn = pick(8) ? ASNS[pick(4)] : 0;
    int nt = pick(3) == 0 ? 1 + (int)pick(2) : 0;
    for (int k = 0; k < nt; k++) {
        size_t l = strlen(b->tags);
        snprintf(b->tags + l, sizeof(b->tags) - l, "%s%s", k ? "," : "", TAGS[pick(4)]);
    }
}

static void to_policy_bot(const struct ref_bot *rb, struct policy_bot *pb)
{
    memset(pb, 0, sizeof(*pb));
    pb->src.family = AF_INET;
    memcpy(pb->src.ip, rb->ip, 4);
    memcpy(pb->cc, rb->cc, 3);
    pb->asn = rb->asn;
    pb->tags = rb->tags;
    pb->sent = rb->sent;
    pb->rehearsed = rb->rehearsed;
}

#define POLICIES 1000
#define DECISIONS 250
#define BOTS 40

static void test_random_policies_match_reference(void **state)
{
    (void)state;
    unsigned counts[VERDICT_ALREADY_REHEARSED + 1] = {0};
    unsigned sends_by_default = 0, collects = 0, rehearsed_then_sent = 0;
    for (int pi = 0; pi < POLICIES; pi++) {
        int n = 1 + (int)pick(4);
        struct ref_auth auth[4];
        for (int i = 0; i < n; i++) {
            random_auth(&auth[i], i);
        }
        size_t len = 0;
        char *text = policy_text(auth, n, &len);
        struct policy *p = NULL;
        char err[512] = "";
        if (policy_parse(text, len, "random.ini", &p, err, sizeof(err)) != 0) {
            fail_msg("random policy %d did not load: %s\n%s", pi, err, text);
        }
        free(text);
        struct policy_rate *rate = NULL;
        assert_int_equal(policy_rate_new(p, NULL, &rate), 0);
        struct ref_bot bots[BOTS];
        for (int i = 0; i < BOTS; i++) {
            random_bot(&bots[i]);
        }
        int enforce_flag = (int)pick(2);
        /* the server's --uninstall-command, bound by policy_check_env when it accepts */
        struct policy_env env = {true, true, true, enforce_flag != 0, pick(2) ? 0x4242 : 0};
        uint32_t def =
            policy_check_env(p, &env, err, sizeof(err)) == 0 ? env.default_uninstall_id : 0;
        /* time moves forward in steps of 0, 1 ms or 100 ms, so window edges are hit exactly */
        uint64_t now = T0_US - 2 * SEC + pick(3) * SEC;
        for (int d = 0; d < DECISIONS; d++) {
            static const uint64_t steps[] = {0, 1000, 100000, 100000, 250000};
            now += steps[pick(5)];
            /* a run of dry runs now and then turns into enforcement, as an operation does */
            if (d == DECISIONS / 2 && pick(2)) {
                enforce_flag = 1;
                env.enforce_flag = true;
                def = policy_check_env(p, &env, err, sizeof(err)) == 0 ? env.default_uninstall_id
                                                                       : def;
            }
            struct ref_bot *rb = &bots[pick(BOTS)];
            uint8_t cmd = pick(3) ? POLICY_COMMAND_UNINSTALL : POLICY_COMMAND_COLLECT;
            struct policy_bot pb;
            to_policy_bot(rb, &pb);
            struct policy_verdict v;
            int ref_idx = -1;
            int want = ref_decide(auth, n, cmd, rb, now, enforce_flag, def, &ref_idx);
            int got = policy_decide(p, cmd, &pb, now, rate, enforce_flag != 0, &v);
            if (got != want || v.authorisation != ref_idx) {
                fail_msg("policy %d decision %d: got verdict %d auth %d, reference %d auth %d", pi,
                         d, got, v.authorisation, want, ref_idx);
            }
            assert_int_equal(v.verdict, got);
            if (ref_idx >= 0) {
                assert_string_equal(v.authorisation_id, auth[ref_idx].id);
            } else {
                assert_string_equal(v.authorisation_id, "");
            }
            /* the safety properties, stated directly as well */
            if (got == VERDICT_SEND) {
                assert_true(enforce_flag && auth[v.authorisation].enforce);
                assert_true(ref_covers(&auth[v.authorisation], rb));
                assert_true(now >= auth[v.authorisation].nb && now < auth[v.authorisation].na);
                for (int i = 0; i < n; i++) {
                    assert_false(auth[i].cmd == cmd && ref_covers(&auth[i], rb) &&
                                 ref_excludes(&auth[i], rb));
                }
                assert_true(!auth[v.authorisation].once || !(rb->sent >> v.authorisation & 1));
                assert_int_equal(auth[v.authorisation].cmd, cmd);
                if (cmd == POLICY_COMMAND_UNINSTALL) {
                    assert_true(v.command_id != 0);
                }
            }
            if (got == VERDICT_SEND || got == VERDICT_DRY_RUN) {
                assert_int_equal(v.command, cmd);
                assert_int_equal(v.command_id, ref_id(&auth[v.authorisation], def));
                /* the server's records: a send is sent, a dry run only rehearsed */
                if (got == VERDICT_SEND) {
                    rehearsed_then_sent += (rb->rehearsed >> v.authorisation) & 1;
                    sends_by_default +=
                        cmd == POLICY_COMMAND_UNINSTALL && auth[v.authorisation].cid == 0;
                    collects += cmd == POLICY_COMMAND_COLLECT;
                    rb->sent |= 1ull << v.authorisation;
                } else {
                    rb->rehearsed |= 1ull << v.authorisation;
                }
            } else {
                assert_int_equal(v.command, 0);
                assert_int_equal(v.command_id, 0);
            }
            counts[got]++;
        }
        policy_rate_free(rate);
        policy_free(p);
    }
    /* every verdict must have been exercised, or the comparison proves little */
    for (int vv = VERDICT_SEND; vv <= VERDICT_ALREADY_REHEARSED; vv++) {
        print_message("verdict %d: %u\n", vv, counts[vv]);
        assert_true(counts[vv] > 100);
    }
    print_message("sends: %u of rehearsed bots, %u with the default id, %u collect\n",
                  rehearsed_then_sent, sends_by_default, collects);
    assert_true(rehearsed_then_sent > 100 && sends_by_default > 100 && collects > 100);
}

/* ---- named cases: the overlap rule and the two keys for send ---- */
static const char overlap[] =
    "[authorisation wide]\n"
    "authority = A\nlegal_reference = L\n"
    "countries = NG, IN\n"
    "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
    "rate = 1\ncommand = uninstall\ncommand_id = 0xFD01\nmode = enforce\n"
    "[authorisation careful]\n"
    "authority = B\nlegal_reference = M\n"
    "countries = NG\nexclude_tags = hospital\n"
    "not_before = 2025-01-01T00:00:00Z\nnot_after = 2025-02-01T00:00:00Z\n"
    "rate = 1\ncommand = uninstall\n"
    "[authorisation late]\n"
    "authority = C\nlegal_reference = N\n"
    "countries = IN\n"
    "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-03-01T00:00:00Z\n"
    "rate = 1\ncommand = uninstall\n";

static struct policy *load(const char *text)
{
    struct policy *p = NULL;
    char err[512] = "";
    if (policy_parse(text, strlen(text), "t.ini", &p, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    return p;
}

static struct policy_bot bot(const char *cc, const char *tags)
{
    struct policy_bot b;
    memset(&b, 0, sizeof(b));
    b.src.family = AF_INET;
    inet_pton(AF_INET, "192.0.2.7", b.src.ip);
    snprintf(b.cc, sizeof(b.cc), "%s", cc);
    b.tags = tags;
    return b;
}

static void test_overlap_rule(void **state)
{
    (void)state;
    struct policy *p = load(overlap);
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    struct policy_verdict v;
    uint64_t jan = T0_US + 86400 * SEC;
    /* exclusion of 'careful' wins although 'careful' is outside its window and 'wide' is in */
    struct policy_bot b = bot("NG", "school,Hospital");
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_EXCLUDED);
    assert_string_equal(v.authorisation_id, "careful");
    /* no exclusion: the first in file order in its window applies */
    b = bot("NG", "school");
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "wide");
    /* IN: 'wide' first; its token is gone for this second, so 'late' applies */
    b = bot("IN", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_DRY_RUN);
    assert_string_equal(v.authorisation_id, "late");
    /* both buckets empty now: rate-limited, naming the first eligible */
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan + 1, r, true, &v),
                     VERDICT_RATE_LIMITED);
    assert_string_equal(v.authorisation_id, "wide");
    /* already sent under 'wide' (bit 0): 'late' is next; then both sent */
    b.sent = 1;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan + 2 * SEC, r, true, &v),
                     VERDICT_DRY_RUN);
    assert_string_equal(v.authorisation_id, "late");
    b.sent = 1 | 4;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan + 4 * SEC, r, true, &v),
                     VERDICT_ALREADY_SENT);
    assert_string_equal(v.authorisation_id, "wide");
    /* February: only 'late' in window for IN; NG has nothing in window */
    uint64_t feb = T0_US + 40 * 86400 * SEC;
    b.sent = 0;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, feb, r, true, &v),
                     VERDICT_DRY_RUN);
    assert_string_equal(v.authorisation_id, "late");
    b = bot("NG", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, feb, r, true, &v),
                     VERDICT_OUTSIDE_WINDOW);
    assert_string_equal(v.authorisation_id, "wide");
    /* not covered at all, unknown country, malformed country */
    b = bot("FR", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    assert_int_equal(v.authorisation, -1);
    assert_string_equal(v.authorisation_id, "");
    b = bot("", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    b = bot("ng", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    /* total: NULL arguments give a verdict, never a crash; no rate state means no token */
    assert_int_equal(policy_decide(NULL, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, NULL, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    b = bot("NG", NULL);
    assert_int_equal(
        policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan + 100 * SEC, NULL, true, &v),
        VERDICT_RATE_LIMITED);
    policy_rate_free(r);
    policy_free(p);
}

static void test_send_needs_both_keys(void **state)
{
    (void)state;
    static const char *const modes[] = {"", "mode = dry-run\n", "mode = enforce\n"};
    for (int m = 0; m < 3; m++) {
        for (int flag = 0; flag < 2; flag++) {
            char text[512];
            snprintf(text, sizeof(text),
                     "[authorisation x]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
                     "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
                     "rate = 1000\ncommand = uninstall\ncommand_id = 0xFD01\n%s",
                     modes[m]);
            struct policy *p = load(text);
            struct policy_rate *r = NULL;
            assert_int_equal(policy_rate_new(p, NULL, &r), 0);
            struct policy_bot b = bot("NG", "");
            struct policy_verdict v;
            int got = policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, T0_US + SEC, r, flag != 0, &v);
            assert_int_equal(got, m == 2 && flag ? VERDICT_SEND : VERDICT_DRY_RUN);
            assert_int_equal(v.command, POLICY_COMMAND_UNINSTALL);
            assert_int_equal(v.command_id, 0xFD01);
            policy_rate_free(r);
            policy_free(p);
        }
    }
}

static void test_rate_bound_and_reload_carry(void **state)
{
    (void)state;
    const char *text = "[authorisation x]\nauthority = A\nlegal_reference = L\nasns = 100\n"
                       "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
                       "rate = 10\nonce_per_bot = false\ncommand = uninstall\n";
    struct policy *p = load(text);
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    struct policy_bot b = bot("", NULL);
    b.asn = 100;
    struct policy_verdict v;
    /* a decision every 1 ms for 10 s: at most 10 x 10 + 2 tokens, at least 10 x 10 - 1 */
    unsigned taken = 0;
    uint64_t start = T0_US + 5 * SEC;
    for (uint64_t t = 0; t < 10 * SEC; t += 1000) {
        taken += policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, start + t, r, false, &v) ==
                 VERDICT_DRY_RUN;
    }
    assert_in_range(taken, 99, 102);
    /* a reload with the same id and rate keeps the bucket: no fresh token at the same instant */
    struct policy *p2 = load(text);
    struct policy_rate *r2 = NULL;
    assert_int_equal(policy_rate_new(p2, r, &r2), 0);
    uint64_t last = start + 10 * SEC - 1000;
    assert_int_equal(policy_decide(p2, POLICY_COMMAND_UNINSTALL, &b, last, r2, false, &v),
                     VERDICT_RATE_LIMITED);
    /* rate state made for another policy is refused (fail safe) */
    assert_int_equal(policy_decide(p2, POLICY_COMMAND_UNINSTALL, &b, last + 5 * SEC, r, false, &v),
                     VERDICT_RATE_LIMITED);
    assert_int_equal(policy_decide(p2, POLICY_COMMAND_UNINSTALL, &b, last + 5 * SEC, r2, false, &v),
                     VERDICT_DRY_RUN);
    policy_rate_free(r2);
    policy_free(p2);
    policy_rate_free(r);
    policy_free(p);
}

/* ---- the window's edges: not_before included, not_after not ---- */
static void test_window_edges(void **state)
{
    (void)state;
    struct policy *p = load("[authorisation x]\nauthority = A\nlegal_reference = L\n"
                            "countries = NG\nnot_before = 2024-01-01T00:00:00Z\n"
                            "not_after = 2024-01-02T00:00:00Z\nrate = 1000\n"
                            "once_per_bot = false\ncommand = collect\n");
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    struct policy_bot b = bot("NG", NULL);
    struct policy_verdict v;
    uint64_t end = T0_US + 86400 * SEC;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, T0_US - 1, r, false, &v),
                     VERDICT_OUTSIDE_WINDOW);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, T0_US, r, false, &v),
                     VERDICT_DRY_RUN);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, end - 1, r, false, &v),
                     VERDICT_DRY_RUN);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, end, r, false, &v),
                     VERDICT_OUTSIDE_WINDOW);
    policy_rate_free(r);
    policy_free(p);
}

/* ---- the two commands are decided apart ---- */
static const char two_commands[] =
    "[authorisation ng-uninstall]\n"
    "authority = A\nlegal_reference = L\ncountries = NG\n"
    "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
    "rate = 1000\ncommand = uninstall\ncommand_id = 64769\nmode = enforce\n"
    "[authorisation in-collect]\n"
    "authority = B\nlegal_reference = M\ncountries = IN, NG\nexclude_tags = school\n"
    "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
    "rate = 1000\ncommand = collect\nmode = enforce\n";

static void test_commands_decided_apart(void **state)
{
    (void)state;
    struct policy *p = load(two_commands);
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    assert_int_equal(policy_authorisation_command(p, 0), POLICY_COMMAND_UNINSTALL);
    assert_int_equal(policy_authorisation_command(p, 1), POLICY_COMMAND_COLLECT);
    assert_int_equal(policy_authorisation_command(p, 2), 0);
    assert_int_equal(policy_authorisation_command_id(p, 0), 0xFD01);
    assert_int_equal(policy_authorisation_command_id(p, 1), 0);
    assert_true(policy_has_command(p, POLICY_COMMAND_UNINSTALL));
    assert_true(policy_has_command(p, POLICY_COMMAND_COLLECT));
    assert_false(policy_has_command(p, 3));
    uint64_t jan = T0_US + 86400 * SEC;
    struct policy_verdict v;
    /* IN is covered by the collect authorisation only: not authorised to uninstall */
    struct policy_bot b = bot("IN", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_NOT_AUTHORISED);
    assert_int_equal(v.command, 0);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, jan, r, true, &v), VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "in-collect");
    assert_int_equal(v.command, POLICY_COMMAND_COLLECT);
    assert_int_equal(v.command_id, 0);
    /* NG: each command under its own authorisation */
    b = bot("NG", NULL);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "ng-uninstall");
    assert_int_equal(v.command, POLICY_COMMAND_UNINSTALL);
    assert_int_equal(v.command_id, 0xFD01);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, jan, r, true, &v), VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "in-collect");
    /* sent under the collect authorisation (bit 1) says nothing about uninstall, and back */
    b.sent = 2;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_SEND);
    b.sent = 1;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, jan, r, true, &v), VERDICT_SEND);
    /* the collect authorisation's exclusion holds for collect only */
    b = bot("NG", "school");
    assert_int_equal(policy_decide(p, POLICY_COMMAND_COLLECT, &b, jan, r, true, &v),
                     VERDICT_EXCLUDED);
    assert_string_equal(v.authorisation_id, "in-collect");
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, jan, r, true, &v),
                     VERDICT_SEND);
    /* no command at all: not authorised */
    assert_int_equal(policy_decide(p, 0, &b, jan, r, true, &v), VERDICT_NOT_AUTHORISED);
    assert_int_equal(policy_decide(p, 7, &b, jan, r, true, &v), VERDICT_NOT_AUTHORISED);
    policy_rate_free(r);
    policy_free(p);
}

/* ---- issue 19 #5: a rehearsal never uses up "once per bot" ---- */
static void test_dry_run_never_counts_as_sent(void **state)
{
    (void)state;
    for (int once = 0; once < 2; once++) {
        char text[600];
        snprintf(text, sizeof(text),
                 "[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
                 "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
                 "rate = 1000\ncommand = uninstall\ncommand_id = 0xFD01\nmode = enforce\n%s",
                 once ? "" : "once_per_bot = false\n");
        struct policy *p = load(text);
        struct policy_rate *r = NULL;
        assert_int_equal(policy_rate_new(p, NULL, &r), 0);
        uint64_t t = T0_US + 86400 * SEC;
        struct policy_verdict v;
        struct policy_bot b = bot("NG", NULL);
        /* the rehearsal: without --enforce, a dry run, once (then already-rehearsed) */
        assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, false, &v),
                         VERDICT_DRY_RUN);
        assert_int_equal(v.command_id, 0xFD01);
        b.rehearsed = 1;
        assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t + SEC, r, false, &v),
                         once ? VERDICT_ALREADY_REHEARSED : VERDICT_DRY_RUN);
        assert_string_equal(v.authorisation_id, "ng");
        /* enforcement: the rehearsed bot is commanded */
        assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t + 2 * SEC, r, true, &v),
                         VERDICT_SEND);
        /* and only then is it sent, whatever the flag */
        b.sent = 1;
        for (int flag = 0; flag < 2; flag++) {
            assert_int_equal(
                policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t + 3 * SEC, r, flag != 0, &v),
                once   ? VERDICT_ALREADY_SENT
                : flag ? VERDICT_SEND
                       : VERDICT_DRY_RUN);
        }
        b.rehearsed = 0;
        assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t + 4 * SEC, r, true, &v),
                         once ? VERDICT_ALREADY_SENT : VERDICT_SEND);
        policy_rate_free(r);
        policy_free(p);
    }
    /* a rehearsed bit under a dry-run-mode authorisation stays a rehearsal under --enforce; the
     * next authorisation in file order that would send takes over */
    struct policy *p = load("[authorisation rehearse]\nauthority = A\nlegal_reference = L\n"
                            "countries = NG\nnot_before = 2024-01-01T00:00:00Z\n"
                            "not_after = 2024-02-01T00:00:00Z\nrate = 1000\n"
                            "command = uninstall\ncommand_id = 0xFD01\n"
                            "[authorisation act]\nauthority = B\nlegal_reference = M\n"
                            "countries = NG\nnot_before = 2024-01-01T00:00:00Z\n"
                            "not_after = 2024-02-01T00:00:00Z\nrate = 1000\n"
                            "command = uninstall\ncommand_id = 0xFD02\nmode = enforce\n");
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    uint64_t t = T0_US + 86400 * SEC;
    struct policy_verdict v;
    struct policy_bot b = bot("NG", NULL);
    b.rehearsed = 1;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v), VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "act");
    assert_int_equal(v.command_id, 0xFD02);
    b.rehearsed = 3;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, false, &v),
                     VERDICT_ALREADY_REHEARSED);
    assert_string_equal(v.authorisation_id, "rehearse");
    b.sent = 2;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v),
                     VERDICT_ALREADY_REHEARSED); /* first of W is 'rehearse': nothing sent there */
    b.sent = 3;
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v),
                     VERDICT_ALREADY_SENT);
    policy_rate_free(r);
    policy_free(p);
}

/* ---- issue 18 #4: no built-in self-delete id ---- */
static void test_send_needs_an_id(void **state)
{
    (void)state;
    const char *text = "[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
                       "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
                       "rate = 1000\nonce_per_bot = false\ncommand = uninstall\n"
                       "mode = enforce\n";
    struct policy *p = load(text);
    struct policy_rate *r = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    uint64_t t = T0_US + 86400 * SEC;
    struct policy_verdict v;
    struct policy_bot b = bot("NG", NULL);
    /* no id anywhere: the second lock holds even if policy_check_env was never called */
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v),
                     VERDICT_DRY_RUN);
    assert_int_equal(v.command_id, 0);
    char err[512];
    struct policy_env env = {true, true, true, true, 0};
    assert_int_not_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    /* the server's default, bound by the check, is used */
    env.default_uninstall_id = 0x4242;
    assert_int_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v), VERDICT_SEND);
    assert_int_equal(v.command_id, 0x4242);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, false, &v),
                     VERDICT_DRY_RUN);
    assert_int_equal(v.command_id, 0x4242);
    policy_rate_free(r);
    policy_free(p);
    /* an authorisation's own id wins over the default */
    p = load("[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
             "not_before = 2024-01-01T00:00:00Z\nnot_after = 2024-02-01T00:00:00Z\n"
             "rate = 1000\ncommand = uninstall\ncommand_id = 0xFD01\nmode = enforce\n");
    assert_int_equal(policy_rate_new(p, NULL, &r), 0);
    assert_int_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    assert_int_equal(policy_decide(p, POLICY_COMMAND_UNINSTALL, &b, t, r, true, &v), VERDICT_SEND);
    assert_int_equal(v.command_id, 0xFD01);
    policy_rate_free(r);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_policies_match_reference),
        cmocka_unit_test(test_overlap_rule),
        cmocka_unit_test(test_send_needs_both_keys),
        cmocka_unit_test(test_rate_bound_and_reload_carry),
        cmocka_unit_test(test_window_edges),
        cmocka_unit_test(test_commands_decided_apart),
        cmocka_unit_test(test_dry_run_never_counts_as_sent),
        cmocka_unit_test(test_send_needs_an_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
