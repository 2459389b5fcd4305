/* cmd_swarm.c -- `sinkd swarm`: options, data files and the summary around swarm_run(). */
#include "cli/cli.h"
#include "cli/commands.h"
#include "swarm/swarm.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#define DEFAULT_CONCURRENCY 5000u
#define FD_RESERVE 64 /* descriptors kept for the loop, data files and stdio */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sinkd swarm --target HOST:PORT [options]\n"
            "Emulates PlugX bots calling a sinkhole on loopback (see docs/swarm.md).\n\n"
            "  --target HOST:PORT        server to call; 127.0.0.0/8 or [::1] only (required)\n"
            "  --bots N                  number of bots (default 100)\n"
            "  --duration SECONDS        length of the run (default 60)\n"
            "  --concurrency C           max simultaneous connections (default min(N, 5000))\n"
            "  --source-net CIDR         loopback prefix bots bind to (default 127.0.1.0/24)\n"
            "  --countries FILE          country weights (default DATA/plugx-countries.csv)\n"
            "  --ranges FILE             IPv4 ranges by country (default\n"
            "                            DATA/npm/geo-whois-asn-country/"
            "geo-whois-asn-country-ipv4.csv)\n"
            "  --data-dir DIR            DATA above (default $SINKD_DATA_DIR, else the\n"
            "                            installed share/sinkd; docs/operations.md)\n"
            "  --seed S                  identity seed (default 1)\n"
            "  --heartbeat-ms MS         mean heartbeat interval, +-50%% (default 2000)\n"
            "  --preset worm             the mix closest to the USB worm's callers: 80%% HTTP\n"
            "                            (--http-form mix), 2%% unknown variant, one cipher\n"
            "                            family; other options still apply on top of it\n"
            "  --http-share F            share of bots using HTTP POST (default 0)\n"
            "  --http-form body|header|mix  HTTP bots' form: packet in the body, or the\n"
            "                            check-in with values in four headers (default body)\n"
            "  --header-names x|hhv|numbered|mix  header-form names: X-Session..X-Sn,\n"
            "                            HHV1..HHV4, or one name plus a digit (default mix)\n"
            "  --header-uri hex24|update|mix  header-form URI: /<24 hex>, /update?id=<8 hex>\n"
            "                            (default hex24)\n"
            "  --header-values sequence|first  values after the first check-in: 4th counts\n"
            "                            requests, or 0,0,61456,1 always (default sequence)\n"
            "  --header-answer body|none  how a header-form bot sends a packet (machine\n"
            "                            information): in a request body, or never (default body)\n"
            "  --unknown-share F         share of bots of a variant no configured cipher\n"
            "                            family decodes (default 0)\n"
            "  --unknown-wait-ms MS      how long such a bot waits for a reply (default 3000)\n"
            "  --volunteer-share F       share of bots that send machine information unasked\n"
            "                            (default 0: only when the server asks with 0x1001)\n"
            "  --gone-share F            share of bots that never come back (default 0.1)\n"
            "  --uninstall-fail-share F  share of bots that ignore uninstall (default 0)\n"
            "  --uninstall-command ID|none  command id the bots obey as self-delete\n"
            "                            (default: the PlugX module's default, 0x1005)\n"
            "  --cipher A|B|C|RC4|mix    PlugX keystream family (default A)\n"
            "  --json FILE               also write the summary as JSON\n"
            "  --help                    this text\n");
}

static int bad(const char *opt, const char *value, const char *why)
{
    fprintf(stderr, "sinkd swarm: %s '%s': %s\n", opt, value, why);
    return 2;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_share(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !(v >= 0.0 && v <= 1.0)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Index of value (case-insensitive) in names[0..n), or -1. */
static int parse_choice(const char *value, const char *const *names, int n)
{
    for (int k = 0; k < n; k++) {
        if (strcasecmp(value, names[k]) == 0) {
            return k;
        }
    }
    return -1;
}

/* A command id: decimal or 0x-hex, 0..0xFFFF; "none" gives -1. */
static int parse_command(const char *s, int32_t *out)
{
    if (strcasecmp(s, "none") == 0) {
        *out = -1;
        return 0;
    }
    char *end = NULL;
    if (s[0] < '0' || s[0] > '9') {
        return -1;
    }
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno != 0 || *end != '\0' || v > 0xFFFF) {
        return -1;
    }
    *out = (int32_t)v;
    return 0;
}

/* --preset first, wherever it is, so every other option applies on top of it. Returns 0, or 2
 * after printing the usage error. */
static int apply_preset(int argc, char **argv, struct swarm_options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        if (strcmp(argv[i], "--preset") == 0 && i + 1 < argc) {
            value = argv[++i];
        } else if (strncmp(argv[i], "--preset=", 9) == 0) {
            value = argv[i] + 9;
        } else {
            continue;
        }
        if (strcmp(value, "worm") != 0) {
            fprintf(stderr, "sinkd swarm: --preset '%s': the only preset is 'worm'\n", value);
            return 2;
        }
        swarm_options_preset_worm(o);
    }
    return 0;
}

static bool loopback(const struct net_addr *a)
{
    static const uint8_t v6_loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a->family == AF_INET) {
        return a->ip[0] == 127;
    }
    return a->family == AF_INET6 && memcmp(a->ip, v6_loopback, 16) == 0;
}

/* Raises the soft open-files limit towards what the connections need (the hard limit bounds). */
static void raise_nofile(uint32_t concurrency)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t want = (rlim_t)concurrency + FD_RESERVE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = (rl.rlim_max == RLIM_INFINITY || want < rl.rlim_max) ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int cmd_swarm(int argc, char **argv)
{
    struct swarm_options o;
    swarm_options_default(&o);
    const char *countries_path = NULL, *ranges_path = NULL, *json_path = NULL;
    const char *data_dir = cli_data_dir();
    bool have_target = false, have_concurrency = false;
    char err[512];
    if (apply_preset(argc, argv, &o) != 0) {
        return 2;
    }

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strncmp(opt, "--", 2) != 0) {
            fprintf(stderr, "sinkd swarm: unexpected argument '%s'\n", opt);
            return 2;
        }
        /* every option takes a value: "--opt VALUE" or "--opt=VALUE" */
        char name[32];
        const char *value;
        const char *eq = strchr(opt, '=');
        if (eq != NULL) {
            size_t n = (size_t)(eq - opt);
            if (n >= sizeof(name)) {
                fprintf(stderr, "sinkd swarm: unknown option '%s' (see 'sinkd swarm --help')\n",
                        opt);
                return 2;
            }
            memcpy(name, opt, n);
            name[n] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", opt);
            if (i + 1 >= argc) {
                static const char *const known[] = {"--target",
                                                    "--bots",
                                                    "--duration",
                                                    "--concurrency",
                                                    "--source-net",
                                                    "--countries",
                                                    "--ranges",
                                                    "--data-dir",
                                                    "--seed",
                                                    "--heartbeat-ms",
                                                    "--http-share",
                                                    "--gone-share",
                                                    "--uninstall-fail-share",
                                                    "--cipher",
                                                    "--json",
                                                    "--preset",
                                                    "--http-form",
                                                    "--header-names",
                                                    "--header-uri",
                                                    "--header-values",
                                                    "--header-answer",
                                                    "--unknown-share",
                                                    "--unknown-wait-ms",
                                                    "--volunteer-share",
                                                    "--uninstall-command"};
                for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
                    if (strcmp(opt, known[k]) == 0) {
                        fprintf(stderr, "sinkd swarm: %s needs a value\n", opt);
                        return 2;
                    }
                }
                fprintf(stderr, "sinkd swarm: unknown option '%s' (see 'sinkd swarm --help')\n",
                        opt);
                return 2;
            }
            value = argv[++i];
        }
        uint64_t u = 0;
        if (strcmp(name, "--target") == 0) {
            if (net_addr_parse_hostport(value, &o.target, err, sizeof(err)) != 0) {
                return bad(name, value, err);
            }
            if (!loopback(&o.target)) {
                return bad(name, value, "the swarm only calls loopback (127.0.0.0/8 or [::1])");
            }
            if (o.target.port == 0) {
                return bad(name, value, "port 0 cannot be called");
            }
            have_target = true;
        } else if (strcmp(name, "--bots") == 0) {
            if (parse_u64(value, 1, SWARM_MAX_BOTS, &u) != 0) {
                return bad(name, value, "expected a whole number from 1 to 10000000");
            }
            o.bots = (uint32_t)u;
        } else if (strcmp(name, "--duration") == 0) {
            if (parse_u64(value, 1, 7 * 86400, &u) != 0) {
                return bad(name, value, "expected whole seconds from 1 to 604800");
            }
            o.duration_s = (uint32_t)u;
        } else if (strcmp(name, "--concurrency") == 0) {
            if (parse_u64(value, 1, SWARM_MAX_CONCURRENCY, &u) != 0) {
                return bad(name, value, "expected a whole number from 1 to 100000");
            }
            o.concurrency = (uint32_t)u;
            have_concurrency = true;
        } else if (strcmp(name, "--source-net") == 0) {
            if (net_cidr_parse(value, &o.source_net, err, sizeof(err)) != 0) {
                return bad(name, value, err);
            }
            struct net_addr a = {.family = o.source_net.family};
            memcpy(a.ip, o.source_net.ip, 16);
            if (!loopback(&a) || (o.source_net.family == AF_INET && o.source_net.prefix < 8)) {
                return bad(name, value, "must be inside 127.0.0.0/8 (or ::1/128)");
            }
        } else if (strcmp(name, "--countries") == 0) {
            countries_path = value;
        } else if (strcmp(name, "--ranges") == 0) {
            ranges_path = value;
        } else if (strcmp(name, "--data-dir") == 0) {
            data_dir = value;
        } else if (strcmp(name, "--seed") == 0) {
            if (parse_u64(value, 0, UINT64_MAX, &u) != 0) {
                return bad(name, value, "expected a whole number");
            }
            o.seed = u;
        } else if (strcmp(name, "--heartbeat-ms") == 0) {
            if (parse_u64(value, 10, 3600000, &u) != 0) {
                return bad(name, value, "expected milliseconds from 10 to 3600000");
            }
            o.heartbeat_ms = (uint32_t)u;
        } else if (strcmp(name, "--http-share") == 0) {
            if (parse_share(value, &o.http_share) != 0) {
                return bad(name, value, "expected a share from 0 to 1");
            }
        } else if (strcmp(name, "--gone-share") == 0) {
            if (parse_share(value, &o.gone_share) != 0) {
                return bad(name, value, "expected a share from 0 to 1");
            }
        } else if (strcmp(name, "--uninstall-fail-share") == 0) {
            if (parse_share(value, &o.uninstall_fail_share) != 0) {
                return bad(name, value, "expected a share from 0 to 1");
            }
        } else if (strcmp(name, "--cipher") == 0) {
            static const struct {
                const char *name;
                int cipher;
            } ciphers[] = {{"A", PLUGX_CIPHER_A},
                           {"B", PLUGX_CIPHER_B},
                           {"C", PLUGX_CIPHER_C},
                           {"RC4", PLUGX_CIPHER_RC4},
                           {"mix", SWARM_CIPHER_MIX}};
            size_t k = 0;
            while (k < 5 && strcasecmp(value, ciphers[k].name) != 0) {
                k++;
            }
            if (k == 5) {
                return bad(name, value, "expected A, B, C, RC4 or mix");
            }
            o.cipher = ciphers[k].cipher;
        } else if (strcmp(name, "--json") == 0) {
            json_path = value;
        } else if (strcmp(name, "--preset") == 0) {
            /* applied before the loop (apply_preset) */
        } else if (strcmp(name, "--http-form") == 0) {
            static const char *const forms[] = {"body", "header", "mix"};
            int k = parse_choice(value, forms, 3);
            if (k < 0) {
                return bad(name, value, "expected body, header or mix");
            }
            o.http_form = (uint8_t)k;
        } else if (strcmp(name, "--header-names") == 0) {
            static const char *const names[] = {"x", "hhv", "numbered", "mix"};
            int k = parse_choice(value, names, 4);
            if (k < 0) {
                return bad(name, value, "expected x, hhv, numbered or mix");
            }
            o.header_names = (uint8_t)k;
        } else if (strcmp(name, "--header-uri") == 0) {
            static const char *const uris[] = {"hex24", "update", "mix"};
            int k = parse_choice(value, uris, 3);
            if (k < 0) {
                return bad(name, value, "expected hex24, update or mix");
            }
            o.header_uri = (uint8_t)k;
        } else if (strcmp(name, "--header-values") == 0) {
            static const char *const values[] = {"sequence", "first"};
            int k = parse_choice(value, values, 2);
            if (k < 0) {
                return bad(name, value, "expected sequence or first");
            }
            o.header_values = (uint8_t)k;
        } else if (strcmp(name, "--header-answer") == 0) {
            static const char *const answers[] = {"body", "none"};
            int k = parse_choice(value, answers, 2);
            if (k < 0) {
                return bad(name, value, "expected body or none");
            }
            o.header_answer = (uint8_t)k;
        } else if (strcmp(name, "--unknown-share") == 0) {
            if (parse_share(value, &o.unknown_share) != 0) {
                return bad(name, value, "expected a share from 0 to 1");
            }
        } else if (strcmp(name, "--unknown-wait-ms") == 0) {
            if (parse_u64(value, 10, 600000, &u) != 0) {
                return bad(name, value, "expected milliseconds from 10 to 600000");
            }
            o.unknown_wait_ms = (uint32_t)u;
        } else if (strcmp(name, "--volunteer-share") == 0) {
            if (parse_share(value, &o.volunteer_share) != 0) {
                return bad(name, value, "expected a share from 0 to 1");
            }
        } else if (strcmp(name, "--uninstall-command") == 0) {
            if (parse_command(value, &o.uninstall_command) != 0) {
                return bad(name, value,
                           "expected a command id 0..0xFFFF (decimal or 0x hex) or none");
            }
        } else {
            fprintf(stderr, "sinkd swarm: unknown option '%s' (see 'sinkd swarm --help')\n", name);
            return 2;
        }
    }
    if (!have_target) {
        fprintf(stderr, "sinkd swarm: --target HOST:PORT is required\n");
        return 2;
    }
    if (!have_concurrency) {
        o.concurrency = o.bots < DEFAULT_CONCURRENCY ? o.bots : DEFAULT_CONCURRENCY;
    }
    char cpath[PATH_MAX], rpath[PATH_MAX];
    if (countries_path == NULL) {
        snprintf(cpath, sizeof(cpath), "%s/plugx-countries.csv", data_dir);
        countries_path = cpath;
    }
    if (ranges_path == NULL) {
        snprintf(rpath, sizeof(rpath),
                 "%s/npm/geo-whois-asn-country/geo-whois-asn-country-ipv4.csv", data_dir);
        ranges_path = rpath;
    }

    struct swarm_countries countries;
    struct swarm_ranges ranges;
    if (swarm_countries_load(countries_path, &countries, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd swarm: %s\n", err);
        return 1;
    }
    if (swarm_ranges_load(ranges_path, &ranges, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd swarm: %s\n", err);
        swarm_countries_free(&countries);
        return 1;
    }
    /* a peer that resets while we write must not kill the process */
    signal(SIGPIPE, SIG_IGN);
    raise_nofile(o.concurrency);

    struct swarm_summary sum;
    int rc = swarm_run(&o, &countries, &ranges, &sum, err, sizeof(err));
    swarm_ranges_free(&ranges);
    swarm_countries_free(&countries);
    if (rc != 0) {
        fprintf(stderr, "sinkd swarm: %s\n", err);
        return 1;
    }
    swarm_summary_print(&sum, stdout);
    int status = 0;
    if (json_path != NULL && swarm_summary_write_json(&sum, json_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd swarm: %s\n", err);
        status = 1;
    }
    if (sum.bots_run > 0 && sum.connected_bots == 0) {
        fprintf(stderr, "sinkd swarm: target unreachable for every bot\n");
        status = 1;
    }
    swarm_summary_free(&sum);
    return status;
}
