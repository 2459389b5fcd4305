/* cli.h -- small helpers shared by the subcommands: strict number parsing, usage errors, the
 * data directory and the time-stamped stderr. */
#ifndef SINKD_CLI_CLI_H
#define SINKD_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a decimal (or 0x-prefixed hex) integer within [min, max]. On failure prints
 * "sinkd <cmd>: --<opt>: '<text>' is not ..." and returns false. */
bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out);

/* Prints the one line "sinkd <cmd>: [<where>: ]<message> (see 'sinkd <cmd> --help')" and
 * returns 2. <where> is the place set by cli_set_where(), e.g. "FILE:LINE" of a config file. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long without its prefix matching: glibc takes "--enf" for "--enforce" and "--pol" for
 * "--policy", so a typo or a truncated script line could switch enforcement on or point at
 * another file. Same signature and results as getopt_long, except that a long option written
 * other than in full ("--enf", "--enf=x") is refused: it returns '?' with optind just past the
 * offending argument, so argv[optind - 1] names it, and, when opterr is set, prints
 * "<argv[0]>: option '--enf' is not written in full (options are never abbreviated)". Every
 * subcommand parses its options with it (tests/e2e/cli_abbrev_test.sh). */
int cli_getopt_long(int argc, char *const argv[], const char *optstring,
                    const struct option *longopts, int *longindex);

/* Where the option being parsed came from ("FILE:LINE"), or NULL for the command line; it
 * prefixes the next usage errors. The text is copied. */
void cli_set_where(const char *where);

/* Every read of victims' data on the record (docs/evidence.md, "Access records"): the options
 * the commands that output it take, and the step between producing the output and handing it
 * out. */
struct cli_access {
    const char *justification; /* --justification TEXT */
    const char *operator_name; /* --operator NAME; NULL: the invoking user */
};
#define CLI_ACCESS_USAGE                                                                           \
    "  --justification TEXT  why victims' data is read (the case, the order, the request);\n"      \
    "                        required: recorded in the evidence log with who, what, the\n"         \
    "                        rows handed out and the SHA-256 of the output\n"                      \
    "  --operator NAME       who reads (default: the invoking user)\n"
/* A usage error (returns 2) naming what is wrong with --justification / --operator, else 0. */
int cli_access_check(const char *cmd, const struct cli_access *a);
/* Builds the access record (what, scope, rows, output digest) and submits it durably to the log
 * of state_dir (appended at once, or spooled for the running serve). Returns 0, or prints one
 * line and returns 1: the caller then hands nothing out. */
int cli_access_record(const char *cmd, const char *state_dir, const struct cli_access *a,
                      const char *what, const char *scope, uint64_t rows,
                      const uint8_t output_sha256[32]);

/* The data directory (docs/operations.md, "Where sinkd finds its data"): $SINKD_DATA_DIR if set;
 * else the source tree's data/ when this binary is the one in its build tree; else the install
 * prefix's share/sinkd compiled in. --data-dir, where a command has it, comes before all. */
const char *cli_data_dir(void);

/* `--config FILE` (or --config=FILE) in argv: reads FILE's [cmd] section (util/conf.h; keys
 * are longopts' names but help and config, a switch takes true/false) and sets *out_argv to
 * argv[0], the file's settings as "--key=value", then argv[1..], so that the command line
 * overrides the file; a repeatable option (names in `repeatable`, NULL-terminated) given on the
 * command line replaces the file's entries of it. Returns the new argc (argc itself, argv
 * unchanged, without --config), or -1 after printing one line naming FILE:LINE (exit 2). */
int cli_config_merge(const char *cmd, int argc, char **argv, const struct option *longopts,
                     const char *const *repeatable, char ***out_argv);

/* "FILE:LINE" of the merged argument at index i if it came from the config file, else NULL:
 * for cli_set_where() while parsing. */
const char *cli_config_where(int index);

/* Before a command writes into the state directory DIR: every file it makes there must belong to
 * DIR's owner (the service user), or the service can no longer write it (a root-owned
 * registry.db after `registry rebuild` as root). Run by that owner: nothing to do. Run as root
 * on a directory someone else owns: drops to the owner's uid and gid (no supplementary groups),
 * saying so in one line. Run by another user: refuses with one line naming the owner. A missing
 * DIR is left to the command. Returns 0 to go on, or 1 (the exit status) after the line. */
int cli_act_as_state_owner(const char *cmd, const char *dir);

/* cli_act_as_state_owner for a command that must also write a file outside DIR that only root
 * may write (portal approve: the policy file in /etc/sinkd): run as root on DIR someone else
 * owns, only the effective uid and gid become the owner's, and cli_as_invoker(true) takes root
 * back for that file (0, or -1: then the file is written as the owner), cli_as_invoker(false)
 * returns to the owner (exits 1 with a line if it cannot: files made as root would follow).
 * Nothing to do when the command did not change ids. */
int cli_act_as_state_owner_keeping_root(const char *cmd, const char *dir);
int cli_as_invoker(bool invoker);
/* Once root is needed no more: the kept root goes for good (real, effective and saved ids all
 * the owner's), so the rest of the command runs as a full drop would (and the process can be
 * traced by its own user again, as LeakSanitizer needs at exit). Exits 1 with a line if it
 * cannot. Nothing to do when root was not kept. */
void cli_drop_kept_root(void);

/* After cli_act_as_state_owner dropped to the owner: " (writing as nobody (uid 65534), the
 * owner of the state directory)", for an error about a file that user could not write (an
 * --out directory root could have written); "" when the command runs as who ran it. */
const char *cli_acting_as(void);

/* Whether DIR holds an evidence log (DIR/journal/wal is a regular file): a command that writes
 * into a state directory checks this first, so that a mistyped path is refused before anything
 * is made in it. True also when this user may not look inside DIR (EACCES), so that the
 * state-owner check refuses it naming the owner. */
bool cli_state_has_log(const char *dir);

/* mkdir -p DIR: each missing directory made with mode; 0, or -1 with err set. */
int cli_make_dirs(const char *dir, unsigned mode, char *err, size_t errlen);

/* Replaces stderr by a stream that starts every line with its UTC time,
 * "2026-01-31T12:34:56.789Z ". Called once, first thing in main(). */
void cli_stderr_timestamps(void);

#endif
