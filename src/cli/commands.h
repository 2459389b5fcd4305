/* commands.h -- the sinkd subcommands. Each takes the arguments after its name (argv[0] is the
 * subcommand name), prints its own usage on --help, and returns the process exit code:
 * 0 success, 1 runtime failure (one clear line on stderr), 2 usage error naming the option. */
#ifndef SINKD_CLI_COMMANDS_H
#define SINKD_CLI_COMMANDS_H

#include <stdbool.h>

int cmd_serve(int argc, char **argv);
int cmd_swarm(int argc, char **argv);
int cmd_contacts(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_verify(int argc, char **argv);
/* `sinkd verify` over several logs, or with --registry (cmd_verify_nodes.c): cmd_verify hands
 * its arguments over when cmd_verify_is_nodes() says they are of that form. */
int cmd_verify_nodes(int argc, char **argv);
bool cmd_verify_is_nodes(int argc, char **argv);
int cmd_prove(int argc, char **argv);
int cmd_verify_bundle(int argc, char **argv);
int cmd_timestamp(int argc, char **argv);
int cmd_cosign(int argc, char **argv);
int cmd_raw(int argc, char **argv);
int cmd_erase(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_registry(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_portal(int argc, char **argv);

#endif
