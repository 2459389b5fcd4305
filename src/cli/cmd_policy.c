/* cmd_policy.c -- `sinkd policy check FILE [server options]`: validate a remediation policy, check
 * it against the server that will apply it, and say in plain words what it would do. */
#include "cli/cli.h"
#include "cli/commands.h"
#include "enrich/enrich.h"
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(
        f, "usage: sinkd policy check FILE [--tags FILE]... [--no-tags] [--no-enrich]\n"
           "                               [--enforce] [--uninstall-command ID]\n"
           "\n"
           "Validates the remediation policy FILE and prints what it would do: each\n"
           "authorisation's command (uninstall or collect) and command id, which bots it covers,\n"
           "its exclusions, its window in UTC, its rate, whether a bot is commanded once or\n"
           "repeatedly, its mode, authority, legal reference and the file's SHA-256; then the\n"
           "line serve prints when it puts the policy in force.\n"
           "\n"
           "Give the server options serve will run with, and the policy is checked against\n"
           "them exactly as serve checks it at start and on SIGHUP:\n"
           "  --tags FILE              a sector tag file serve loads (repeatable; each is read\n"
           "                           and a tag no rule assigns is pointed out)\n"
           "  --no-tags                serve runs without --tags: exclude_tags is refused\n"
           "  --no-enrich              serve runs with --no-enrich: no country, ASN or tag table\n"
           "  --enforce                serve runs with --enforce\n"
           "  --uninstall-command ID   serve's default self-delete id (1..0xFFFF)\n"
           "Without --tags or --no-tags the tag table is not assumed either way: a policy that\n"
           "excludes by tag is described, and the output says serve needs a tag table for it.\n"
           "\n"
           "Exit status: 0 valid, 1 invalid or refused for the given server (one line names file,\n"
           "line, authorisation and why), 2 usage error. See docs/policy.md.\n");
}

/* Counts, for each tag a policy excludes, the rules of the tag files that assign it; the files
 * are first loaded by the loader serve uses, so a file serve would refuse is refused here. */
static int read_tag_files(const char *const *paths, size_t npaths, char *err, size_t errlen)
{
    struct enrich_config cfg = {.tag_paths = paths};
    struct enrich_tables *t = NULL;
    if (npaths == 0) {
        return 0;
    }
    if (enrich_load(&t, &cfg, err, errlen) != 0) {
        return -1;
    }
    enrich_free(t);
    return 0;
}

/* Rules in the tag files that assign `tag` (0 when none does). */
static long rules_assigning(const char *const *paths, size_t npaths, const char *tag)
{
    long count = 0;
    char *line = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < npaths; i++) {
        FILE *f = fopen(paths[i], "r");
        if (f == NULL) {
            continue; /* read_tag_files() already opened it; a vanished file counts nothing */
        }
        ssize_t n;
        while ((n = getline(&line, &cap, f)) >= 0) {
            size_t len = (size_t)n;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
                len--;
            }
            struct enrich_tag_rule r;
            char msg[192];
            if (enrich_tag_parse_line(line, len, &r, msg, sizeof(msg)) == 1 &&
                strcmp(r.tag, tag) == 0) {
                count++;
            }
        }
        fclose(f);
    }
    free(line);
    return count;
}

/* The tag table as the policy meets it: unstated (serve needs one), or per excluded tag how many
 * rules of the given files assign it (none: that exclusion excludes no bot). */
static void note_tags(const struct policy *p, const char *const *paths, size_t npaths,
                      bool tags_known)
{
    bool excludes_tags = false;
    for (size_t i = 0; i < policy_authorisation_count(p); i++) {
        excludes_tags |= policy_authorisation_exclude_tag(p, i, 0) != NULL;
    }
    if (!excludes_tags) {
        printf("  tag table:        not needed (no authorisation excludes by tag)\n");
        return;
    }
    if (!tags_known) {
        printf("  tag table:        not stated (give --tags FILE as serve will, or --no-tags).\n"
               "                    This policy excludes by tag: serve refuses it without a tag "
               "table.\n");
        return;
    }
    printf("  tag table:        %zu file%s (--tags)\n", npaths, npaths == 1 ? "" : "s");
    for (size_t i = 0; i < policy_authorisation_count(p); i++) {
        const char *tag;
        for (size_t k = 0; (tag = policy_authorisation_exclude_tag(p, i, k)) != NULL; k++) {
            long n = rules_assigning(paths, npaths, tag);
            if (n == 0) {
                printf("  note:             no rule in the tag files assigns '%s', so '%s' "
                       "excludes no bot by it\n",
                       tag, policy_authorisation_id(p, i));
            } else {
                printf("  excluded tag:     '%s' (%s): %ld rule%s in the tag files\n", tag,
                       policy_authorisation_id(p, i), n, n == 1 ? "" : "s");
            }
        }
    }
}

int cmd_policy(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        return cli_usage_error("policy", "missing subcommand (try 'sinkd policy check FILE')");
    }
    if (strcmp(argv[1], "check") != 0) {
        return cli_usage_error("policy", "unknown subcommand '%s'", argv[1]);
    }
    enum { OPT_TAGS = 1, OPT_NO_TAGS, OPT_NO_ENRICH, OPT_ENFORCE, OPT_UNINSTALL, OPT_HELP };
    static const struct option options[] = {
        {"tags", required_argument, NULL, OPT_TAGS},
        {"no-tags", no_argument, NULL, OPT_NO_TAGS},
        {"no-enrich", no_argument, NULL, OPT_NO_ENRICH},
        {"enforce", no_argument, NULL, OPT_ENFORCE},
        {"uninstall-command", required_argument, NULL, OPT_UNINSTALL},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *tag_paths[ENRICH_TAG_FILES_MAX + 1] = {NULL};
    size_t ntags = 0;
    bool no_tags = false, no_enrich = false;
    struct policy_env env = {0};
    uint64_t v = 0;
    int opt;
    argc--;
    argv++;
    optind = 1;
    opterr = 0;
    while ((opt = cli_getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_TAGS:
            if (ntags == ENRICH_TAG_FILES_MAX) {
                return cli_usage_error("policy check", "more than %d --tags files",
                                       ENRICH_TAG_FILES_MAX);
            }
            tag_paths[ntags++] = optarg;
            break;
        case OPT_NO_TAGS:
            no_tags = true;
            break;
        case OPT_NO_ENRICH:
            no_enrich = true;
            break;
        case OPT_ENFORCE:
            env.enforce_flag = true;
            break;
        case OPT_UNINSTALL:
            if (!cli_parse_u64("policy check", "uninstall-command", optarg, 1,
                               POLICY_COMMAND_ID_MAX, &v)) {
                return 2;
            }
            env.default_uninstall_id = (uint32_t)v;
            break;
        case 'h':
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            return cli_usage_error("policy check", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (ntags > 0 && (no_tags || no_enrich)) {
        return cli_usage_error("policy check", "--tags contradicts %s",
                               no_tags ? "--no-tags" : "--no-enrich");
    }
    if (optind >= argc) {
        return cli_usage_error("policy check", "missing FILE");
    }
    if (optind + 1 < argc) {
        return cli_usage_error("policy check", "more than one FILE ('%s')", argv[optind + 1]);
    }
    const char *path = argv[optind];
    env.country_table = env.asn_table = !no_enrich;
    bool tags_known = ntags > 0 || no_tags || no_enrich;
    /* An unstated tag table is assumed present for the check, and said so in the output. */
    env.tag_table = ntags > 0 || !tags_known;

    char err[1024];
    if (read_tag_files(tag_paths, ntags, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd policy check: %s\n", err);
        return 1;
    }
    struct policy *p = NULL;
    if (policy_load_file(path, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd policy check: invalid policy: %s\n", err);
        return 1;
    }
    if (policy_check_env(p, &env, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd policy check: refused for this server: %s\n", err);
        policy_free(p);
        return 1;
    }
    char *text = policy_describe(p);
    char *summary = policy_summary_line(p, &env);
    if (text == NULL || summary == NULL) {
        free(text);
        free(summary);
        policy_free(p);
        fprintf(stderr, "sinkd policy check: out of memory\n");
        return 1;
    }
    printf("%s: valid.\n%s", path, text);
    printf("\nWith this server:\n");
    printf("  tables:           %s\n",
           no_enrich ? "none (--no-enrich)" : "country and ASN (serve's defaults)");
    note_tags(p, tag_paths, ntags, tags_known);
    printf("  --enforce:        %s\n", env.enforce_flag ? "given" : "not given: nothing is sent");
    if (env.default_uninstall_id != 0) {
        printf("  --uninstall-command: 0x%04X (for uninstall authorisations without command_id)\n",
               env.default_uninstall_id);
    } else {
        printf("  --uninstall-command: not given (there is no default id)\n");
    }
    printf("  in force:         %s\n", summary);
    free(text);
    free(summary);
    policy_free(p);
    return fflush(stdout) == 0 ? 0 : 1;
}
