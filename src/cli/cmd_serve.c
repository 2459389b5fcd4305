/* cmd_serve.c -- `sinkd serve`: options to a server_config, then run until SIGTERM/SIGINT. */
#include <getopt.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "net/sandbox.h"
#include "net/server.h"
#include "proto/plugx/plugx.h"
#include "registry/registry.h"
#include "util/addr.h"
#include "util/lockfile.h"

static const char serve_usage[] =
    "usage: sinkd serve --state DIR [options]\n"
    "       sinkd serve --config FILE [options]\n"
    "\n"
    "Listens on the seized C2 address(es), answers bots in their own protocol and records every\n"
    "contact in the evidence log under DIR before acknowledging it.\n"
    "\n"
    "  --config FILE            read options from FILE's [serve] section first: each key is\n"
    "                           an option below without its --, a switch takes true or false\n"
    "                           (/etc/sinkd/sinkd.conf); the command line overrides it, and a\n"
    "                           repeatable option given there replaces the file's list\n"
    "  --state DIR              state directory (created if missing): journal, log/, keys/\n"
    "  --listen HOST:PORT       address to listen on, repeatable; IPv6 as [::1]:443\n"
    "                           (default 127.0.0.1:4443)\n"
    "  --trusted-proxy CIDR     peers that must open with a PROXY v1/v2 header, repeatable;\n"
    "                           a PROXY header from anyone else is refused\n"
    "  --workers N              event-loop threads (default: number of cores)\n"
    "  --node NAME              node name recorded in every record (default: host name)\n"
    "  --origin NAME            evidence log origin / key name (default: the name of the key\n"
    "                           in DIR/keys, made by `sinkd keygen`; with no key there, one\n"
    "                           is created named sinkd.local/NODE)\n"
    "  --max-connections N      open connections per process (default 16000)\n"
    "  --max-per-ip N           connections per source address after PROXY (default 64)\n"
    "  --conn-rate-per-ip N     new connections per second per address (default 20, 0: off)\n"
    "  --conn-burst-per-ip N    ... of which this many back to back (default 40)\n"
    "  --refuse-hold-ms MS      hold a peer refused by the two limits above, or for bad input,\n"
    "                           unread this long before resetting it, so it cannot reconnect\n"
    "                           at once (default 10000, 0: reset at once)\n"
    "  --refuse-hold-max N      ... at most N such peers (descriptors) at a time; beyond that\n"
    "                           a refusal is reset at once (default 1024)\n"
    "  --syn-ban-after N        a peer (not via a trusted proxy) refused by the rate limit\n"
    "                           N times within a second has its SYNs dropped by a filter\n"
    "                           on the listeners (default 40, 0: never)\n"
    "  --syn-ban-s S            ... for S seconds (default 60)\n"
    "  --syn-ban-max N          ... at most N addresses at once (default 1024, at most 4096)\n"
    "  --header-timeout MS      time for the PROXY header and each message (default 10000)\n"
    "  --defer-accept S         the kernel holds a new connection until its first bytes arrive,\n"
    "                           for up to S seconds (default 10, 0: accept at once)\n"
    "  --idle-timeout MS        idle time between messages (default 180000)\n"
    "  --max-message BYTES      largest message incl. HTTP headers (default 73728)\n"
    "  --max-inflight N         messages per connection awaiting durability (default 8)\n"
    "  --plugx-ciphers LIST     cipher families to detect, e.g. A,B,C,RC4 (default all)\n"
    "  --plugx-c-consts C0,C1,C2,C3  family C constants (default 0x0133543C,0xD,0x77,0x59F5)\n"
    "  --plugx-rc4-key KEY      RC4 family key string\n"
    "  --uninstall-command ID   the seized variant's self-delete command id, for uninstall\n"
    "                           authorisations that name none; no default: 0x1005 is \"install\n"
    "                           new copy\" in every public PlugX command table (docs/plugx.md)\n"
    "  --plugx-http-cipher A|B|C|RC4  cipher of replies to a header-form HTTP check-in, which\n"
    "                           carries no packet to detect one from (default A)\n"
    "  --heartbeat-interval S   roll a bot's polls after its first contact up into one\n"
    "                           heartbeats record per S seconds (default 3600; 0: a record\n"
    "                           per poll); a kill -9 loses at most one interval's counts\n"
    "  --undecoded-per-ip N     undecoded contacts recorded per source address per window\n"
    "                           (default 6, 0: no bound); more are counted, not recorded\n"
    "  --undecoded-window-s S   ... the window (default 60)\n"
    "  --checkpoint-entries N   publish a signed checkpoint every N entries (default 100000)\n"
    "  --checkpoint-ms MS       ... or every MS milliseconds with new entries (default 1000)\n"
    "  --checkpoint-keep-hours H  keep every checkpoint H hours, then only the newest of each\n"
    "                           UTC hour and those timestamped or cosigned (default 24; 0:\n"
    "                           keep every checkpoint; docs/evidence.md)\n"
    "  --journal-compact-kib N  drop entries from the journal once their entry bundles are\n"
    "                           under a checkpoint and N KiB can go (default 1024; 0: never)\n"
    "  --commit-delay-us US     when recent group commits averaged 8+ records, wait this\n"
    "                           long for more before the next (default 1000; 0: never)\n"
    "  --geoip FILE             country database, any MaxMind-format file (default: the pinned\n"
    "                           ip-location-db geo-whois-asn-country MMDB in the data dir)\n"
    "  --asn-v4 FILE, --asn-v6 FILE  ASN range CSVs (default: pinned ip-location-db asn)\n"
    "  --tags FILE              sector tag file (prefix-or-ASN,tag[,label]), repeatable\n"
    "  --no-enrich              record no country, ASN or tags\n"
    "  --data-dir DIR           where the pinned data lives (default $SINKD_DATA_DIR, else the\n"
    "                           installed share/sinkd; docs/operations.md)\n"
    "  --policy FILE            remediation policy (see docs/policy.md); without one no decision\n"
    "                           is made and nothing can be sent\n"
    "  --enforce                allow sending commands where the policy says mode = enforce;\n"
    "                           without it every would-be send is recorded as dry-run\n"
    "  --no-registry            do not run the registry follower\n"
    "  --registry TARGET        where the follower writes: DIR/registry.db by default; a\n"
    "                           postgresql:// URL is the registry several nodes share\n"
    "  --registry-cache-mib N   the follower's SQLite page cache, 1..65536 MiB (default 2)\n"
    "  --user USER              after binding, become USER (required when started as root,\n"
    "                           unless --allow-root); every capability is dropped either way\n"
    "  --allow-root             run as root anyway (tests, throwaway sandboxes)\n"
    "  --seccomp kill|log|off   system-call allow-list on every thread once started (default\n"
    "                           kill: a call off the list ends the process; log: kernel logs it)\n"
    "  --metrics-listen HOST:PORT  answer GET /metrics (Prometheus text: counts, log and\n"
    "                           registry state; no victim data), /metrics.json and a\n"
    "                           dashboard at / on this address; off by default; bind it to\n"
    "                           loopback or a management network\n"
    "  --keep-raw               keep each message's decrypted body under DIR/raw/, named by\n"
    "                           the SHA-256 its contact record holds (research captures;\n"
    "                           bodies hold victims' host and user names); off by default\n"
    "  --keep-raw-max-mib N     ... at most N MiB of new bodies per run (default 4096, 0: no\n"
    "                           limit of its own)\n"
    "  --keep-raw-reserve-mib N ... and never into the disk's last N MiB (default 1024)\n"
    "  --ready-file FILE        write the server's pid to FILE once listening (FILE.tmp is\n"
    "                           made beside it, as --user: refuses to start if it cannot)\n"
    "  --help                   this text\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain in-flight work and exit 0.\n";

struct ready_ctx {
    const char *path;
    const struct server_config *cfg;
    bool failed; /* the ready file could not be written: serve stops and exits 1 */
};

static void on_ready(void *arg)
{
    struct ready_ctx *r = arg;
    fprintf(r->cfg->log, "sinkd: serving (%u workers)\n", r->cfg->workers);
    if (r->path == NULL) {
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", r->path);
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL && fprintf(f, "pid %ld\n", (long)getpid()) > 0;
    int why = errno;
    ok = f != NULL && fclose(f) == 0 && ok;
    if (!ok || rename(tmp, r->path) != 0) {
        /* Fail closed: a script waiting for the file would wait for ever. */
        fprintf(r->cfg->log, "sinkd serve: --ready-file %s: cannot write it: %s; stopping\n",
                r->path, strerror(ok ? errno : why));
        unlink(tmp);
        r->failed = true;
        raise(SIGTERM);
    }
}

/* Before anything is bound: whether the ready file can be made as the user serve will run as
 * (--user, when root), by making PATH.tmp and removing it, in a child that drops to that user.
 * 0, or -1 with err naming the file, the user and why. */
static int check_ready_file(const char *path, const char *user, char *err, size_t errlen)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
        snprintf(err, errlen, "--ready-file %s: path too long", path);
        return -1;
    }
    bool as_user = user != NULL && geteuid() == 0;
    char who[96];
    struct passwd *pw = as_user ? getpwnam(user) : getpwuid(geteuid());
    if (pw != NULL) {
        snprintf(who, sizeof(who), "%s (uid %u)", pw->pw_name, (unsigned)pw->pw_uid);
    } else {
        snprintf(who, sizeof(who), "uid %u", (unsigned)geteuid());
    }
    fflush(NULL);
    pid_t child = as_user ? fork() : 0;
    if (child < 0) {
        snprintf(err, errlen, "--ready-file %s: cannot check it: fork: %s", path, strerror(errno));
        return -1;
    }
    if (child == 0) {
        char why[256];
        if (as_user && sandbox_drop_privileges(user, NULL, why, sizeof(why)) != 0) {
            _exit(255);
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        int code = fd < 0 ? errno : 0;
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        if (as_user) {
            _exit(code > 0 && code < 255 ? code : (code == 0 ? 0 : 254));
        }
        errno = code;
        child = code == 0 ? 0 : -1;
    } else {
        int status = 0;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
        }
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 255;
        errno = code == 255 ? EPERM : code;
        child = code == 0 ? 0 : -1;
    }
    if (child != 0) {
        snprintf(err, errlen, "--ready-file %s: %s cannot write it: %s", path, who,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static bool parse_ciphers(const char *text, uint8_t *mask)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", text);
    *mask = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strcmp(tok, "A") == 0) {
            *mask |= 1u << PLUGX_CIPHER_A;
        } else if (strcmp(tok, "B") == 0) {
            *mask |= 1u << PLUGX_CIPHER_B;
        } else if (strcmp(tok, "C") == 0) {
            *mask |= 1u << PLUGX_CIPHER_C;
        } else if (strcmp(tok, "RC4") == 0) {
            *mask |= 1u << PLUGX_CIPHER_RC4;
        } else {
            return false;
        }
    }
    return *mask != 0;
}

static bool parse_c_consts(const char *text, uint32_t out[4])
{
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", text);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *end = NULL;
        unsigned long long v = strtoull(tok, &end, 0);
        if (n == 4 || *end != '\0' || end == tok || v > 0xFFFFFFFFull) {
            return false;
        }
        out[n++] = (uint32_t)v;
    }
    return n == 4;
}

/* offsetof a field of struct server_config that must be a uint32_t: any other type does not
 * compile (no _Generic association matches; the compound literal is only looked at). */
#define U32_FIELD(f)                                                                               \
    (offsetof(struct server_config, f) + _Generic(((struct server_config){0}).f, uint32_t : 0u))

/* A numeric option that sets one uint32_t field of struct server_config, within bounds. */
struct u32_option {
    int id; /* getopt_long's value for it */
    const char *name;
    uint64_t min, max;
    size_t offset; /* of the field in struct server_config */
};

static const struct u32_option *u32_option_find(const struct u32_option *table, size_t n, int id)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].id == id) {
            return &table[i];
        }
    }
    return NULL;
}

int cmd_serve(int argc, char **argv)
{
    enum {
        OPT_STATE = 256,
        OPT_LISTEN,
        OPT_TRUSTED,
        OPT_WORKERS,
        OPT_NODE,
        OPT_ORIGIN,
        OPT_MAXCONN,
        OPT_MAXPERIP,
        OPT_HEADER_TIMEOUT,
        OPT_DEFER_ACCEPT,
        OPT_COMMIT_DELAY,
        OPT_CONN_RATE,
        OPT_CONN_BURST,
        OPT_REFUSE_HOLD_MS,
        OPT_REFUSE_HOLD_MAX,
        OPT_IDLE_TIMEOUT,
        OPT_MAX_MESSAGE,
        OPT_MAX_INFLIGHT,
        OPT_CIPHERS,
        OPT_C_CONSTS,
        OPT_RC4_KEY,
        OPT_UNINSTALL,
        OPT_HTTP_CIPHER,
        OPT_UNDECODED_PER_IP,
        OPT_HEARTBEAT_INTERVAL,
        OPT_UNDECODED_WINDOW,
        OPT_CP_ENTRIES,
        OPT_CP_MS,
        OPT_CP_KEEP_HOURS,
        OPT_COMPACT_KIB,
        OPT_READY,
        OPT_GEOIP,
        OPT_ASN4,
        OPT_ASN6,
        OPT_TAGS,
        OPT_NO_ENRICH,
        OPT_DATA_DIR,
        OPT_POLICY,
        OPT_ENFORCE,
        OPT_NO_REGISTRY,
        OPT_REGISTRY_TARGET,
        OPT_REGISTRY_CACHE,
        OPT_USER,
        OPT_SYN_BAN_AFTER,
        OPT_SYN_BAN_S,
        OPT_SYN_BAN_MAX,
        OPT_ALLOW_ROOT,
        OPT_SECCOMP,
        OPT_METRICS,
        OPT_KEEP_RAW,
        OPT_KEEP_RAW_MAX,
        OPT_KEEP_RAW_RESERVE,
        OPT_CONFIG,
        OPT_HELP,
    };
    static const struct option options[] = {
        {"state", required_argument, NULL, OPT_STATE},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"metrics-listen", required_argument, NULL, OPT_METRICS},
        {"trusted-proxy", required_argument, NULL, OPT_TRUSTED},
        {"workers", required_argument, NULL, OPT_WORKERS},
        {"node", required_argument, NULL, OPT_NODE},
        {"origin", required_argument, NULL, OPT_ORIGIN},
        {"max-connections", required_argument, NULL, OPT_MAXCONN},
        {"max-per-ip", required_argument, NULL, OPT_MAXPERIP},
        {"header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
        {"defer-accept", required_argument, NULL, OPT_DEFER_ACCEPT},
        {"commit-delay-us", required_argument, NULL, OPT_COMMIT_DELAY},
        {"conn-rate-per-ip", required_argument, NULL, OPT_CONN_RATE},
        {"conn-burst-per-ip", required_argument, NULL, OPT_CONN_BURST},
        {"refuse-hold-ms", required_argument, NULL, OPT_REFUSE_HOLD_MS},
        {"refuse-hold-max", required_argument, NULL, OPT_REFUSE_HOLD_MAX},
        {"syn-ban-after", required_argument, NULL, OPT_SYN_BAN_AFTER},
        {"syn-ban-s", required_argument, NULL, OPT_SYN_BAN_S},
        {"syn-ban-max", required_argument, NULL, OPT_SYN_BAN_MAX},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {"max-message", required_argument, NULL, OPT_MAX_MESSAGE},
        {"max-inflight", required_argument, NULL, OPT_MAX_INFLIGHT},
        {"plugx-ciphers", required_argument, NULL, OPT_CIPHERS},
        {"plugx-c-consts", required_argument, NULL, OPT_C_CONSTS},
        {"plugx-rc4-key", required_argument, NULL, OPT_RC4_KEY},
        {"uninstall-command", required_argument, NULL, OPT_UNINSTALL},
        {"plugx-http-cipher", required_argument, NULL, OPT_HTTP_CIPHER},
        {"undecoded-per-ip", required_argument, NULL, OPT_UNDECODED_PER_IP},
        {"heartbeat-interval", required_argument, NULL, OPT_HEARTBEAT_INTERVAL},
        {"undecoded-window-s", required_argument, NULL, OPT_UNDECODED_WINDOW},
        {"checkpoint-entries", required_argument, NULL, OPT_CP_ENTRIES},
        {"checkpoint-ms", required_argument, NULL, OPT_CP_MS},
        {"checkpoint-keep-hours", required_argument, NULL, OPT_CP_KEEP_HOURS},
        {"journal-compact-kib", required_argument, NULL, OPT_COMPACT_KIB},
        {"ready-file", required_argument, NULL, OPT_READY},
        {"geoip", required_argument, NULL, OPT_GEOIP},
        {"asn-v4", required_argument, NULL, OPT_ASN4},
        {"asn-v6", required_argument, NULL, OPT_ASN6},
        {"tags", required_argument, NULL, OPT_TAGS},
        {"no-enrich", no_argument, NULL, OPT_NO_ENRICH},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"enforce", no_argument, NULL, OPT_ENFORCE},
        {"no-registry", no_argument, NULL, OPT_NO_REGISTRY},
        {"registry", required_argument, NULL, OPT_REGISTRY_TARGET},
        {"registry-cache-mib", required_argument, NULL, OPT_REGISTRY_CACHE},
        {"user", required_argument, NULL, OPT_USER},
        {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
        {"seccomp", required_argument, NULL, OPT_SECCOMP},
        {"keep-raw", no_argument, NULL, OPT_KEEP_RAW},
        {"keep-raw-max-mib", required_argument, NULL, OPT_KEEP_RAW_MAX},
        {"keep-raw-reserve-mib", required_argument, NULL, OPT_KEEP_RAW_RESERVE},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Options that each set one bounded uint32_t field of the configuration. */
    static const struct u32_option u32_options[] = {
        {OPT_MAXCONN, "max-connections", 1, 10000000, U32_FIELD(limits.max_connections)},
        {OPT_MAXPERIP, "max-per-ip", 1, 10000000, U32_FIELD(limits.max_per_ip)},
        {OPT_CONN_RATE, "conn-rate-per-ip", 0, 1000000, U32_FIELD(limits.conn_rate_per_ip)},
        {OPT_CONN_BURST, "conn-burst-per-ip", 1, 1000000, U32_FIELD(limits.conn_burst_per_ip)},
        {OPT_REFUSE_HOLD_MS, "refuse-hold-ms", 0, 600000, U32_FIELD(limits.refuse_hold_ms)},
        {OPT_REFUSE_HOLD_MAX, "refuse-hold-max", 0, 1000000, U32_FIELD(limits.refuse_hold_max)},
        {OPT_SYN_BAN_AFTER, "syn-ban-after", 0, 1000000, U32_FIELD(limits.syn_ban_after)},
        {OPT_SYN_BAN_S, "syn-ban-s", 1, 86400, U32_FIELD(limits.syn_ban_s)},
        {OPT_SYN_BAN_MAX, "syn-ban-max", 1, 4096, U32_FIELD(limits.syn_ban_max)},
        {OPT_HEADER_TIMEOUT, "header-timeout", 100, 3600000, U32_FIELD(limits.header_timeout_ms)},
        {OPT_DEFER_ACCEPT, "defer-accept", 0, 3600, U32_FIELD(limits.defer_accept_s)},
        {OPT_COMMIT_DELAY, "commit-delay-us", 0, 10000, U32_FIELD(commit_delay_us)},
        {OPT_IDLE_TIMEOUT, "idle-timeout", 100, 86400000, U32_FIELD(limits.idle_timeout_ms)},
        {OPT_MAX_MESSAGE, "max-message", 64, 1 << 20, U32_FIELD(limits.max_message)},
        {OPT_MAX_INFLIGHT, "max-inflight", 3, 1024, U32_FIELD(limits.max_inflight)},
        {OPT_HEARTBEAT_INTERVAL, "heartbeat-interval", 0, 31 * 86400,
         U32_FIELD(heartbeat_interval_s)},
        {OPT_UNDECODED_PER_IP, "undecoded-per-ip", 0, 1000000, U32_FIELD(limits.undecoded_per_ip)},
        {OPT_UNDECODED_WINDOW, "undecoded-window-s", 1, 86400,
         U32_FIELD(limits.undecoded_window_s)},
        {OPT_CP_ENTRIES, "checkpoint-entries", 1, UINT32_MAX, U32_FIELD(checkpoint_every)},
        {OPT_CP_MS, "checkpoint-ms", 10, 86400000, U32_FIELD(checkpoint_interval_ms)},
        {OPT_CP_KEEP_HOURS, "checkpoint-keep-hours", 0, 24 * 366 * 10,
         U32_FIELD(checkpoint_keep_hours)},
        {OPT_COMPACT_KIB, "journal-compact-kib", 0, 4u << 20, U32_FIELD(journal_compact_kib)},
        {OPT_REGISTRY_CACHE, "registry-cache-mib", 1, REGISTRY_CACHE_MIB_MAX,
         U32_FIELD(registry_cache_mib)},
    };
    struct server_config cfg;
    server_config_default(&cfg);
    /* The one family sinkd speaks today; its options are the --plugx-* ones. */
    static struct plugx_config plugx;
    plugx_config_default(&plugx);
    plugx.uninstall_command = 0; /* the server's id comes from --uninstall-command or the policy */
    cfg.family = proto_family_find("plugx");
    cfg.family_config = &plugx;
    const char *ready_path = NULL;
    const char *data_dir = cli_data_dir();
    bool no_enrich = false;
    bool allow_root = false;
    size_t ntags = 0;
    static char hostname[32];
    static char origin[128];
    if (gethostname(hostname, sizeof(hostname)) != 0 || hostname[0] == '\0') {
        snprintf(hostname, sizeof(hostname), "sinkd");
    }
    hostname[sizeof(hostname) - 1] = '\0';
    cfg.node = hostname;
    char err[512];
    uint64_t v;
    int opt;
    static const char *const repeatable[] = {"listen", "trusted-proxy", "tags", NULL};
    argc = cli_config_merge("serve", argc, argv, options, repeatable, &argv);
    if (argc < 0) {
        return 2;
    }
    optind = 1;
    opterr = 0;
    while ((opt = cli_getopt_long(argc, argv, "", options, NULL)) != -1) {
        cli_set_where(cli_config_where(optind - 1)); /* errors name FILE:LINE of a setting */
        const struct u32_option *u =
            u32_option_find(u32_options, sizeof(u32_options) / sizeof(u32_options[0]), opt);
        if (u != NULL) {
            if (!cli_parse_u64("serve", u->name, optarg, u->min, u->max, &v)) {
                return 2;
            }
            *(uint32_t *)((char *)&cfg + u->offset) = (uint32_t)v;
            continue;
        }
        switch (opt) {
        case OPT_STATE:
            cfg.state_dir = optarg;
            break;
        case OPT_LISTEN:
            if (cfg.nlisten == SERVER_MAX_LISTEN) {
                return cli_usage_error("serve", "--listen: at most %d addresses",
                                       SERVER_MAX_LISTEN);
            }
            if (net_addr_parse_hostport(optarg, &cfg.listen[cfg.nlisten], err, sizeof(err)) != 0) {
                return cli_usage_error("serve", "--listen: %s", err);
            }
            cfg.nlisten++;
            break;
        case OPT_KEEP_RAW:
            cfg.keep_raw = true;
            break;
        case OPT_KEEP_RAW_MAX:
        case OPT_KEEP_RAW_RESERVE:
            if (!cli_parse_u64(
                    "serve", opt == OPT_KEEP_RAW_MAX ? "keep-raw-max-mib" : "keep-raw-reserve-mib",
                    optarg, 0, 1u << 30, &v)) {
                return 2;
            }
            *(opt == OPT_KEEP_RAW_MAX ? &cfg.keep_raw_max_bytes : &cfg.keep_raw_reserve_bytes) =
                v << 20;
            break;
        case OPT_METRICS:
            if (net_addr_parse_hostport(optarg, &cfg.metrics_listen, err, sizeof(err)) != 0) {
                return cli_usage_error("serve", "--metrics-listen: %s", err);
            }
            cfg.metrics = true;
            break;
        case OPT_TRUSTED:
            if (cfg.ntrusted == SERVER_MAX_TRUSTED) {
                return cli_usage_error("serve", "--trusted-proxy: at most %d prefixes",
                                       SERVER_MAX_TRUSTED);
            }
            if (net_cidr_parse(optarg, &cfg.trusted[cfg.ntrusted], err, sizeof(err)) != 0) {
                return cli_usage_error("serve", "--trusted-proxy: %s", err);
            }
            cfg.ntrusted++;
            break;
        case OPT_WORKERS:
            if (!cli_parse_u64("serve", "workers", optarg, 1, SERVER_MAX_WORKERS, &v)) {
                return 2;
            }
            cfg.workers = (unsigned)v;
            break;
        case OPT_NODE:
            if (strlen(optarg) == 0 || strlen(optarg) >= 32) {
                return cli_usage_error("serve", "--node: '%s' must be 1-31 characters", optarg);
            }
            cfg.node = optarg;
            break;
        case OPT_ORIGIN:
            cfg.origin = optarg;
            break;
        case OPT_CIPHERS:
            if (!parse_ciphers(optarg, &plugx.ciphers_enabled)) {
                return cli_usage_error("serve", "--plugx-ciphers: '%s' is not a list of A,B,C,RC4",
                                       optarg);
            }
            break;
        case OPT_C_CONSTS:
            if (!parse_c_consts(optarg, plugx.c_consts)) {
                return cli_usage_error(
                    "serve", "--plugx-c-consts: '%s' is not four 32-bit numbers C0,C1,C2,C3",
                    optarg);
            }
            break;
        case OPT_RC4_KEY:
            if (strlen(optarg) == 0 || strlen(optarg) > sizeof(plugx.rc4_key)) {
                return cli_usage_error("serve", "--plugx-rc4-key: must be 1-%zu bytes",
                                       sizeof(plugx.rc4_key));
            }
            memcpy(plugx.rc4_key, optarg, strlen(optarg));
            plugx.rc4_key_len = strlen(optarg);
            break;
        case OPT_HTTP_CIPHER: {
            uint8_t mask = 0;
            if (!parse_ciphers(optarg, &mask) || mask == 0 || (mask & (mask - 1)) != 0) {
                return cli_usage_error("serve", "--plugx-http-cipher: '%s' is not one of A,B,C,RC4",
                                       optarg);
            }
            plugx.http_reply_cipher = (uint8_t)__builtin_ctz(mask);
            break;
        }
        case OPT_UNINSTALL:
            if (!cli_parse_u64("serve", "uninstall-command", optarg, 1, 0xFFFF, &v)) {
                return 2;
            }
            cfg.uninstall_command = (uint32_t)v;
            break;
        case OPT_READY:
            ready_path = optarg;
            break;
        case OPT_GEOIP:
            cfg.geoip_path = optarg;
            break;
        case OPT_ASN4:
            cfg.asn_v4_path = optarg;
            break;
        case OPT_ASN6:
            cfg.asn_v6_path = optarg;
            break;
        case OPT_TAGS:
            if (ntags == SERVER_MAX_TAG_FILES) {
                return cli_usage_error("serve", "--tags: at most %d files", SERVER_MAX_TAG_FILES);
            }
            cfg.tag_files[ntags++] = optarg;
            break;
        case OPT_NO_ENRICH:
            no_enrich = true;
            break;
        case OPT_DATA_DIR:
            data_dir = optarg;
            break;
        case OPT_POLICY:
            cfg.policy_path = optarg;
            break;
        case OPT_ENFORCE:
            cfg.enforce = true;
            break;
        case OPT_NO_REGISTRY:
            cfg.registry = false;
            break;
        case OPT_REGISTRY_TARGET:
            cfg.registry_target = optarg;
            break;
        case OPT_USER:
            cfg.user = optarg;
            break;
        case OPT_ALLOW_ROOT:
            allow_root = true;
            break;
        case OPT_SECCOMP:
            if (strcmp(optarg, "kill") == 0) {
                cfg.seccomp = SERVER_SECCOMP_KILL;
            } else if (strcmp(optarg, "log") == 0) {
                cfg.seccomp = SERVER_SECCOMP_LOG;
            } else if (strcmp(optarg, "off") == 0) {
                cfg.seccomp = SERVER_SECCOMP_OFF;
            } else {
                return cli_usage_error("serve", "--seccomp: '%s' is not kill, log or off", optarg);
            }
            break;
        case OPT_CONFIG: /* read by cli_config_merge() */
            break;
        case OPT_HELP:
            fputs(serve_usage, stdout);
            return 0;
        default:
            return cli_usage_error("serve", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    cli_set_where(NULL);
    if (optind < argc) {
        return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
    }
    if (cfg.state_dir == NULL) {
        return cli_usage_error("serve", "--state DIR is required");
    }
    /* Fail closed: an operator who asks to enforce and gives no policy most likely forgot it;
     * starting would look like enforcement while nothing can ever be sent. */
    if (cfg.enforce && cfg.policy_path == NULL) {
        return cli_usage_error("serve", "--enforce without --policy: no authorisation to enforce");
    }
    if (cfg.nlisten == 0) {
        net_addr_parse_hostport("127.0.0.1:4443", &cfg.listen[0], NULL, 0);
        cfg.nlisten = 1;
    }
    static char geoip[4096], asn4[4096], asn6[4096];
    if (no_enrich) {
        cfg.geoip_path = cfg.asn_v4_path = cfg.asn_v6_path = NULL;
        cfg.tag_files[0] = NULL;
    } else {
        if (cfg.geoip_path == NULL) {
            snprintf(geoip, sizeof(geoip),
                     "%s/npm/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb", data_dir);
            cfg.geoip_path = geoip;
        }
        if (cfg.asn_v4_path == NULL) {
            snprintf(asn4, sizeof(asn4), "%s/npm/asn/asn-ipv4.csv", data_dir);
            cfg.asn_v4_path = asn4;
        }
        if (cfg.asn_v6_path == NULL) {
            snprintf(asn6, sizeof(asn6), "%s/npm/asn/asn-ipv6.csv", data_dir);
            cfg.asn_v6_path = asn6;
        }
    }
    /* An existing key names the log (`sinkd keygen --name`): without --origin its name is
     * taken; the default below is only for a key serve creates itself. */
    char key_path[4096];
    snprintf(key_path, sizeof(key_path), "%s/keys/log.key", cfg.state_dir);
    if (cfg.origin == NULL && access(key_path, F_OK) != 0) {
        snprintf(origin, sizeof(origin), "sinkd.local/%s", cfg.node);
        cfg.origin = origin;
    }
    /* A bad policy is refused before anything is opened, bound or logged. */
    if (server_check_policy(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
        return 1;
    }
    if (mkdir(cfg.state_dir, 0750) != 0 && access(cfg.state_dir, W_OK) != 0) {
        fprintf(stderr, "sinkd serve: state directory %s: cannot create or write\n", cfg.state_dir);
        return 1;
    }
    if (sandbox_check_user(cfg.user, allow_root, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
        return 1;
    }
    /* Fail closed: a ready file that cannot be written leaves a waiting script hanging. */
    if (ready_path != NULL && check_ready_file(ready_path, cfg.user, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
        return 1;
    }
    /* One writer per state directory (issue 19 #3): taken before anything is bound or written,
     * held until the process exits, and before the directory is handed to --user so the lock
     * file is theirs too. */
    int lock_fd = lockfile_take(cfg.state_dir, LOCKFILE_LOG, NULL, false, err, sizeof(err));
    if (lock_fd < 0) {
        fprintf(stderr, "sinkd serve: %s: one writer per state directory\n", err);
        return 1;
    }
    if (sandbox_prepare_state_dir(cfg.state_dir, cfg.user, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
        lockfile_release(lock_fd);
        return 1;
    }
    /* A bot that vanishes mid-write must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IOLBF, 0);
    char note[512];
    int fit = server_fit_fd_limit(&cfg, note, sizeof(note), err, sizeof(err));
    if (fit < 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
        lockfile_release(lock_fd);
        return 1;
    }
    if (fit > 0) {
        fprintf(stderr, "sinkd serve: %s\n", note);
    }
    struct ready_ctx ready = {ready_path, &cfg, false};
    cfg.on_ready = on_ready;
    cfg.ready_ctx = &ready;
    int rc = server_run(&cfg, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sinkd serve: %s\n", err);
    } else if (!ready.failed) {
        fprintf(stderr, "sinkd: stopped cleanly\n");
    }
    lockfile_release(lock_fd);
    return rc != 0 || ready.failed ? 1 : 0;
}
