/* Helpers for end-to-end tests of the advect command-line tool (see cli_harness.h). */
#include "cli_harness.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ADV_TEST_ADVECT_BIN
#error "ADV_TEST_ADVECT_BIN must name the advect executable"
#endif

char cli_dir[256];

void cli_make_dir(const char *tag) {
    snprintf(cli_dir, sizeof cli_dir, "%s/advect-cli-%s-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tag);
    cr_assert_not_null(mkdtemp(cli_dir), "mkdtemp failed");
}

void cli_remove_dir(void) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cli_dir);
    cr_expect_eq(system(cmd), 0);
}

int cli_run(const char *subcommand, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s %s >out.txt 2>err.txt", cli_dir,
             ADV_TEST_ADVECT_BIN, subcommand, args);
    int st = system(cmd);
    cr_assert(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

char *cli_slurp(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int cli_exists(const char *name) {
    char path[512];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", cli_dir, name);
    return stat(path, &sb) == 0;
}
