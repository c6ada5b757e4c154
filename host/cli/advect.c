/* The advect command-line tool. Subcommands: info (version, build, usable devices).
 * Exit codes: 0 success, 2 bad usage or input (one-line reason on stderr), 1 internal failure. */
#include "advect/advect.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: advect <command> [options]\n"
            "commands:\n"
            "  info      version, build information and usable devices\n"
            "  sample    draw samples of a point cloud along its exact flow field\n"
            "  poisson   solve (c - Laplacian) u = f on a grid (FFT; periodic/Neumann/Dirichlet)\n"
            "  bbot      dynamic optimal transport between two densities (Benamou-Brenier)\n"
            "  help      this message\n");
}

/* A device the runtime reports, and whether this build can run on it (the probe AUTO makes). */
typedef struct gpu_entry {
    adv_device_info info;
    int usable;
    char reason[256];
} gpu_entry;

/* Writes s as a JSON string (quotes and backslashes escaped; control characters dropped). */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; ++s) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

static int cmd_info(int argc, char **argv) {
    int json = 0;
    for (int i = 0; i < argc; ++i) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: advect info [--json]\n"
                   "version, build information, and the CUDA devices the runtime reports with\n"
                   "whether this build can use each (and why not)\n");
            return 0;
        } else {
            fprintf(stderr, "advect info: unknown option '%s' (try 'advect info --help')\n",
                    argv[i]);
            return 2;
        }
    }
    adv_build_info b;
    adv_build_info_get(&b);
    int count = 0, usable = 0;
    char reason[256] = "";
    adv_cuda_device_count(&count, reason, sizeof reason);
    gpu_entry gpus[16];
    const int listed = count < 16 ? count : 16;
    for (int i = 0; i < listed; ++i) {
        gpu_entry *g = &gpus[i];
        memset(g, 0, sizeof *g);
        if (adv_cuda_device_info(i, &g->info) != ADV_OK) {
            g->info.id = i;
            snprintf(g->info.name, sizeof g->info.name, "(unknown)");
        }
        g->usable = adv_cuda_device_usable(i, g->reason, sizeof g->reason) == ADV_OK;
        usable += g->usable;
    }
    if (count > 0 && usable == 0)
        snprintf(reason, sizeof reason, "%d CUDA device%s found, none usable by this build",
                 count, count == 1 ? "" : "s");
    if (json) {
        printf("{\"version\": \"%s\", \"cpu\": true, \"openmp\": %s, \"cuda_compiled\": %s, "
               "\"cuda_runtime_version\": %d, \"cuda_architectures\": \"%s\", \"gpus\": [",
               adv_version(), b.has_openmp ? "true" : "false", b.has_cuda ? "true" : "false",
               b.cuda_runtime_version, b.cuda_architectures);
        for (int i = 0; i < listed; ++i) {
            const gpu_entry *g = &gpus[i];
            printf("%s{\"id\": %d, \"name\": ", i ? ", " : "", i);
            json_string(g->info.name);
            printf(", \"compute\": \"%d.%d\", \"memory_bytes\": %zu, \"usable\": %s, "
                   "\"reason\": ", g->info.compute_major, g->info.compute_minor,
                   g->info.total_memory, g->usable ? "true" : "false");
            json_string(g->usable ? "" : g->reason);
            printf("}");
        }
        printf("], \"usable_gpus\": %d, \"no_gpu_reason\": ", usable);
        json_string(usable ? "" : reason);
        printf("}\n");
        return 0;
    }
    printf("advect %s\n", adv_version());
    printf("build: CPU backend (C11%s), compiler %s\n", b.has_openmp ? " + OpenMP" : "",
           b.compiler);
    if (b.has_cuda)
        printf("       CUDA backend compiled in (CUDA runtime %d.%d, architectures %s)\n",
               b.cuda_runtime_version / 1000, (b.cuda_runtime_version % 1000) / 10,
               b.cuda_architectures);
    else
        printf("       CUDA backend not compiled in\n");
    printf("devices:\n  cpu: always available\n");
    if (usable == 0) printf("  gpu: none usable (%s)\n", reason);
    for (int i = 0; i < listed; ++i) {
        const gpu_entry *g = &gpus[i];
        printf("  gpu %d: %s, compute capability %d.%d, %.1f GiB, %d SMs", i, g->info.name,
               g->info.compute_major, g->info.compute_minor,
               g->info.total_memory / 1073741824.0, g->info.multiprocessors);
        if (g->usable)
            printf("\n");
        else
            printf(": not usable (%s)\n", g->reason);
    }
    if (count > listed) printf("  (%d more CUDA devices not listed)\n", count - listed);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "info")) return cmd_info(argc - 2, argv + 2);
    if (!strcmp(cmd, "poisson")) return advect_cmd_poisson(argc - 2, argv + 2);
    if (!strcmp(cmd, "bbot")) return advect_cmd_bbot(argc - 2, argv + 2);
    if (!strcmp(cmd, "sample")) return advect_cmd_sample(argc - 2, argv + 2);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "advect: unknown command '%s' (try 'advect help')\n", cmd);
    return 2;
}
