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

static int cmd_info(int argc, char **argv) {
    int json = 0;
    for (int i = 0; i < argc; ++i) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else {
            fprintf(stderr, "advect info: unknown option '%s'\n", argv[i]);
            return 2;
        }
    }
    adv_build_info b;
    adv_build_info_get(&b);
    int count = 0;
    char reason[256] = "";
    adv_cuda_device_count(&count, reason, sizeof reason);
    if (json) {
        printf("{\"version\": \"%s\", \"cpu\": true, \"openmp\": %s, \"cuda_compiled\": %s, "
               "\"cuda_runtime_version\": %d, \"cuda_architectures\": \"%s\", \"gpus\": [",
               adv_version(), b.has_openmp ? "true" : "false", b.has_cuda ? "true" : "false",
               b.cuda_runtime_version, b.cuda_architectures);
        for (int i = 0; i < count; ++i) {
            adv_device_info d;
            if (adv_cuda_device_info(i, &d) != ADV_OK) continue;
            printf("%s{\"id\": %d, \"name\": \"%s\", \"compute\": \"%d.%d\", \"memory_bytes\": %zu}",
                   i ? ", " : "", d.id, d.name, d.compute_major, d.compute_minor, d.total_memory);
        }
        printf("], \"no_gpu_reason\": \"%s\"}\n", count ? "" : reason);
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
    if (count == 0) printf("  gpu: none usable (%s)\n", reason);
    for (int i = 0; i < count; ++i) {
        adv_device_info d;
        if (adv_cuda_device_info(i, &d) != ADV_OK) continue;
        printf("  gpu %d: %s, compute capability %d.%d, %.1f GiB, %d SMs\n", d.id, d.name,
               d.compute_major, d.compute_minor, d.total_memory / 1073741824.0,
               d.multiprocessors);
    }
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
