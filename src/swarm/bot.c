/* bot.c -- a bot's stable identity, computed from (seed, index) so nothing is stored per bot. */
#include "swarm/swarm.h"

#include <stdio.h>
#include <string.h>

/* splitmix64 (Steele, Lea, Flood 2014): a bijective mixer, good enough to derive fields. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* One independent 64-bit draw per (seed, index, field). */
static uint64_t draw(uint64_t seed, uint32_t index, uint32_t field)
{
    return mix64(seed ^ mix64(((uint64_t)index << 16) ^ field));
}

static double unit(uint64_t r)
{
    return (double)(r >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) with 53 bits */
}

enum field {
    F_HOST_FORM = 1,
    F_HOST_CHARS,
    F_USER,
    F_OS,
    F_LOCAL_IP,
    F_CAMPAIGN,
    F_VERSION,
    F_HW,
    F_COUNTRY,
    F_ADDRESS,
    F_CIPHER,
    F_HTTP,
    F_GONE,
    F_UNINSTALL_FAIL,
    F_COMPRESS,
    F_START,
    /* added later: appended, so every earlier field keeps its draw for a given seed */
    F_UNKNOWN,
    F_UNKNOWN_KIND,
    F_HTTP_FORM,
    F_HEADER_NAMES,
    F_HEADER_STEM,
    F_HEADER_URI,
    F_VOLUNTEER,
};

static const char *const users[] = {
    "Administrator", "admin", "user",   "User",    "owner", "PC",    "john",  "mohammed",
    "ahmed",         "ali",   "fatima", "chinedu", "emeka", "aisha", "rahul", "priya",
    "amit",          "wang",  "li",     "zhang",   "reza",  "sara",  "budi",  "siti",
    "james",         "david", "hassan", "office",  "lab",   "it",
};

static const struct {
    uint32_t major, minor, build, sp;
} os_table[] = {
    {6, 1, 7601, 1},                      /* Windows 7 SP1: most common among USB-worm victims */
    {6, 1, 7601, 1},   {10, 0, 19045, 0}, /* Windows 10 22H2 */
    {10, 0, 19044, 0}, {10, 0, 22631, 0}, /* Windows 11 23H2 */
    {6, 3, 9600, 0},                      /* Windows 8.1 */
    {5, 1, 2600, 3},                      /* Windows XP SP3 */
    {6, 2, 9200, 0},                      /* Windows 8 */
    {10, 0, 17763, 0},                    /* Server 2019 / 1809 */
};

static const char *const campaigns[] = {"usb-worm", "usb-worm", "sogu-2019", "korplug-usb",
                                        "default"};
static const char *const versions[] = {"20190301", "20200815", "20210412", "20220110", "20230620"};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void make_host(uint64_t form, uint64_t chars, char *out, size_t cap)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const struct {
        const char *prefix;
        size_t len;
    } forms[] = {{"DESKTOP-", 7}, {"WIN-", 11}, {"LAPTOP-", 8}, {"PC-", 6}};
    size_t f = (size_t)(form % COUNT(forms));
    size_t n = strlen(forms[f].prefix);
    memcpy(out, forms[f].prefix, n);
    for (size_t i = 0; i < forms[f].len && n + 1 < cap; i++) {
        out[n++] = alphabet[chars % (sizeof(alphabet) - 1)];
        chars /= (sizeof(alphabet) - 1);
    }
    out[n] = '\0';
}

/* Transport, and for header-form bots their build's names and URI (docs/swarm.md). */
static void make_wire(const struct swarm_options *o, uint64_t s, uint32_t index,
                      struct swarm_bot *out)
{
    if (unit(draw(s, index, F_UNKNOWN)) < o->unknown_share) {
        out->kind = SWARM_KIND_UNKNOWN;
        out->unknown_kind = (uint8_t)(draw(s, index, F_UNKNOWN_KIND) & 1);
        return;
    }
    bool header = o->http_form == SWARM_HTTP_FORM_HEADER ||
                  (o->http_form == SWARM_HTTP_FORM_MIX && (draw(s, index, F_HTTP_FORM) & 1));
    out->kind = !out->http ? SWARM_KIND_RAW
                : header   ? SWARM_KIND_HTTP_HEADER
                           : SWARM_KIND_HTTP_BODY;
    if (out->kind != SWARM_KIND_HTTP_HEADER) {
        return;
    }
    struct swarm_header_style *h = &out->header;
    uint64_t names = draw(s, index, F_HEADER_NAMES);
    h->names = o->header_names == SWARM_NAMES_MIX ? (uint8_t)(names % 3) : o->header_names;
    uint64_t stem = draw(s, index, F_HEADER_STEM);
    for (int i = 0; i < 4; i++) {
        h->stem[i] = (char)('A' + stem % 26);
        stem /= 26;
    }
    h->stem[4] = '\0';
    h->first_digit = (uint8_t)(stem & 1);
    uint64_t uri = draw(s, index, F_HEADER_URI);
    h->uri = o->header_uri == SWARM_URI_MIX ? (uint8_t)(uri & 1) : o->header_uri;
}

void swarm_bot_make(const struct swarm_options *o, const struct swarm_countries *countries,
                    const struct swarm_ranges *ranges, uint32_t index, struct swarm_bot *out)
{
    uint64_t s = o->seed;
    memset(out, 0, sizeof(*out));
    out->index = index;
    struct bot_identity *id = &out->info.id;
    make_host(draw(s, index, F_HOST_FORM), draw(s, index, F_HOST_CHARS), id->host,
              sizeof(id->host));
    snprintf(id->user, sizeof(id->user), "%s", users[draw(s, index, F_USER) % COUNT(users)]);
    size_t os = (size_t)(draw(s, index, F_OS) % COUNT(os_table));
    out->info.os_major = os_table[os].major;
    out->info.os_minor = os_table[os].minor;
    out->info.os_build = os_table[os].build;
    out->info.service_pack = os_table[os].sp;
    snprintf(id->os, sizeof(id->os), "%u.%u.%u SP%u", (unsigned)os_table[os].major,
             (unsigned)os_table[os].minor, (unsigned)os_table[os].build, (unsigned)os_table[os].sp);
    uint64_t lip = draw(s, index, F_LOCAL_IP);
    if (lip & 1) { /* home routers: 192.168.0/1.x mostly */
        snprintf(id->local_ip, sizeof(id->local_ip), "192.168.%u.%u",
                 (unsigned)((lip >> 8) % 4 == 0 ? (lip >> 16) % 256 : (lip >> 8) % 2),
                 (unsigned)(2 + (lip >> 24) % 252));
    } else {
        snprintf(id->local_ip, sizeof(id->local_ip), "10.%u.%u.%u", (unsigned)((lip >> 8) % 256),
                 (unsigned)((lip >> 16) % 256), (unsigned)(2 + (lip >> 24) % 252));
    }
    snprintf(id->campaign, sizeof(id->campaign), "%s",
             campaigns[draw(s, index, F_CAMPAIGN) % COUNT(campaigns)]);
    snprintf(id->version, sizeof(id->version), "%s",
             versions[draw(s, index, F_VERSION) % COUNT(versions)]);
    uint64_t hw = draw(s, index, F_HW);
    out->info.cpu_mhz = 1600 + (uint32_t)(hw % 24) * 100;
    out->info.memory_mb = 1024u << ((hw >> 8) % 5);

    size_t c = swarm_countries_pick(countries, unit(draw(s, index, F_COUNTRY)));
    memcpy(out->cc, countries->items[c].cc, 3);
    if (swarm_ranges_pick(ranges, out->cc, draw(s, index, F_ADDRESS), &out->public_ip) != 0) {
        /* callers check every country has ranges first; TEST-NET-3 keeps it well-defined */
        out->public_ip = 0xCB007100u | (index & 0xFF);
    }
    if (o->cipher == SWARM_CIPHER_MIX) {
        out->cipher = (uint8_t)(draw(s, index, F_CIPHER) % PLUGX_CIPHER_COUNT);
    } else {
        out->cipher = (uint8_t)o->cipher;
    }
    out->http = unit(draw(s, index, F_HTTP)) < o->http_share;
    out->gone = unit(draw(s, index, F_GONE)) < o->gone_share;
    out->uninstall_fail = unit(draw(s, index, F_UNINSTALL_FAIL)) < o->uninstall_fail_share;
    out->compress = (draw(s, index, F_COMPRESS) & 1) != 0;
    out->start_ms = (uint32_t)(unit(draw(s, index, F_START)) * (double)o->duration_s * 400.0);
    out->volunteer = unit(draw(s, index, F_VOLUNTEER)) < o->volunteer_share;
    make_wire(o, s, index, out);
}
