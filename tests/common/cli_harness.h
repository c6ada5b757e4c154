/* Helpers for end-to-end tests of the advect command-line tool: a fresh temporary working
 * directory per test, running `advect <subcommand> <args>` in it with stdout and stderr
 * captured to out.txt and err.txt, and reading files back. The executable is
 * ADV_TEST_ADVECT_BIN, defined by the test's CMake target. */
#ifndef ADVECT_TESTS_CLI_HARNESS_H
#define ADVECT_TESTS_CLI_HARNESS_H

extern char cli_dir[256]; /* the current test's working directory */

/* Creates $TMPDIR/advect-cli-<tag>-XXXXXX (default /tmp) and makes it cli_dir. */
void cli_make_dir(const char *tag);
/* Removes cli_dir and everything in it. */
void cli_remove_dir(void);
/* Runs `advect <subcommand> <args>` in cli_dir; returns its exit code. */
int cli_run(const char *subcommand, const char *args);
/* Contents of cli_dir/name as a string (static buffer, first 16383 bytes). */
char *cli_slurp(const char *name);
/* 1 when cli_dir/name exists. */
int cli_exists(const char *name);

#endif
