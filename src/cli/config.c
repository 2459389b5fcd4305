/* config.c -- `--config FILE`: a subcommand's options from an INI file (util/conf.h), merged in
 * front of the command line so that the command line overrides the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/conf.h"

#define CONFIG_OPTIONS_MAX 256

/* The merged arguments stay referenced (optarg pointers end up in the command's configuration)
 * until the process exits: kept here, reachable, never freed. */
static struct conf_args config_args;
static char **merged_argv;
static int config_first, config_count; /* merged_argv[config_first ...] came from the file */
static char config_where[4200];
static const char *config_path;
static const unsigned *cli_config_lines; /* line of each setting kept, in merged order */

/* "--name" or "--name=..." for exactly this name. */
static bool is_option(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, "--", 2) == 0 && strncmp(arg + 2, name, n) == 0 &&
           (arg[2 + n] == '\0' || arg[2 + n] == '=');
}

int cli_config_merge(const char *cmd, int argc, char **argv, const struct option *longopts,
                     const char *const *repeatable, char ***out_argv)
{
    *out_argv = argv;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (!is_option(argv[i], "config")) {
            continue;
        }
        if (path != NULL) {
            return cli_usage_error(cmd, "--config: given twice"), -1;
        }
        if (argv[i][8] == '=') {
            path = argv[i] + 9;
        } else if (i + 1 < argc) {
            path = argv[++i];
        } else {
            return cli_usage_error(cmd, "--config: needs a FILE"), -1;
        }
        if (path[0] == '\0') {
            return cli_usage_error(cmd, "--config: needs a FILE"), -1;
        }
    }
    if (path == NULL) {
        return argc;
    }
    static struct conf_option opts[CONFIG_OPTIONS_MAX];
    size_t nopts = 0;
    for (const struct option *o = longopts; o->name != NULL && nopts < CONFIG_OPTIONS_MAX; o++) {
        if (strcmp(o->name, "help") == 0 || strcmp(o->name, "config") == 0) {
            continue;
        }
        bool rep = false;
        for (const char *const *r = repeatable; r != NULL && *r != NULL; r++) {
            rep = rep || strcmp(*r, o->name) == 0;
        }
        opts[nopts++] = (struct conf_option){o->name, o->has_arg != no_argument, rep};
    }
    char err[1024];
    if (conf_load_file(path, cmd, opts, nopts, &config_args, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd %s: --config: %s\n", cmd, err);
        return -1;
    }
    merged_argv = calloc((size_t)argc + config_args.n + 1, sizeof(*merged_argv));
    if (merged_argv == NULL) {
        fprintf(stderr, "sinkd %s: out of memory\n", cmd);
        return -1;
    }
    int n = 0;
    merged_argv[n++] = argv[0];
    config_first = n;
    for (size_t i = 0; i < config_args.n; i++) {
        /* A repeatable option on the command line replaces the file's list, not adds to it. */
        bool replaced = false;
        for (const char *const *r = repeatable; r != NULL && *r != NULL; r++) {
            if (strcmp(*r, config_args.v[i].name) != 0) {
                continue;
            }
            for (int j = 1; j < argc && !replaced; j++) {
                replaced = is_option(argv[j], *r);
            }
        }
        if (!replaced) {
            merged_argv[n++] = config_args.v[i].arg;
        }
    }
    config_count = n - config_first;
    config_path = path;
    /* kept in merged order for cli_config_where(): the line of each kept setting */
    static unsigned lines[CONF_MAX_ARGS];
    for (int k = 0, i = 0; k < config_count; i++) {
        if (merged_argv[config_first + k] == config_args.v[i].arg) {
            lines[k++] = config_args.v[i].line;
        }
    }
    for (int i = 1; i < argc; i++) {
        merged_argv[n++] = argv[i];
    }
    merged_argv[n] = NULL;
    *out_argv = merged_argv;
    cli_config_lines = lines;
    return n;
}

const char *cli_config_where(int index)
{
    if (config_path == NULL || index < config_first || index >= config_first + config_count) {
        return NULL;
    }
    snprintf(config_where, sizeof(config_where), "%s:%u", config_path,
             cli_config_lines[index - config_first]);
    return config_where;
}
