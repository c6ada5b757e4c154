/* Entry points of the advect subcommands (one per file host/cli/cmd_<name>.c). Each takes the
 * arguments after the subcommand name and returns the exit code: 0 success, 2 bad usage or
 * input (one-line reason on stderr), 1 internal failure, 128 + N stopped by signal N. */
#ifndef ADVECT_CLI_COMMANDS_H
#define ADVECT_CLI_COMMANDS_H

int advect_cmd_sample(int argc, char **argv);
int advect_cmd_poisson(int argc, char **argv);
int advect_cmd_bbot(int argc, char **argv);

#endif
