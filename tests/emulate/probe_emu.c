/* Backend selection when the CUDA probe fails, on the emulated CUDA backend (advect_emu,
 * tests/emulate.cmake): the runtime shim's switches (cuda_runtime_shim.cpp) make
 * cudaGetDeviceCount fail as it does on a machine whose driver is missing (35 with driver
 * version 0), too old for the runtime (35), or that has no device (100). core.h documents the
 * outcome: AUTO (explicit, or NULL options) selects the CPU backend, telling the log callback
 * why at level INFO; an explicit CUDA request fails with ADV_ERR_BACKEND_UNAVAILABLE, *ctx set
 * to NULL and the reason at level ERROR; adv_cuda_device_count reports 0 devices with the
 * reason and adv_cuda_device_usable refuses device 0 with it. Without the switches the same
 * calls find the emulated device, so the switch alone makes the difference. Each Criterion test
 * runs in its own process: setenv here does not leak into other tests. */
#include "test_util.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct log_record {
    int calls;
    adv_log_level level;
    char text[1024];
} log_record;

static void record(void *user, adv_log_level level, const char *message) {
    log_record *r = user;
    ++r->calls;
    r->level = level;
    snprintf(r->text, sizeof r->text, "%s", message);
}

static adv_status create(adv_backend backend, log_record *log, adv_context **ctx) {
    adv_context_opts o;
    adv_context_default_opts(&o);
    o.backend = backend;
    o.log = record;
    o.log_user = log;
    o.log_level = ADV_LOG_INFO;
    return adv_context_create(&o, ctx);
}

Test(probe_emu, without_a_switch_the_emulated_device_is_used) {
    unsetenv("ADVECT_EMU_DEVICE_COUNT_ERROR");
    unsetenv("ADVECT_EMU_DRIVER_VERSION");
    int count = -1;
    char reason[256] = "";
    cr_assert_eq(adv_cuda_device_count(&count, reason, sizeof reason), ADV_OK);
    cr_expect_eq(count, 1, "%s", reason);
    cr_expect_eq(adv_cuda_device_usable(0, reason, sizeof reason), ADV_OK, "%s", reason);
    log_record log = {0};
    adv_context *ctx = NULL;
    cr_assert_eq(create(ADV_BACKEND_AUTO, &log, &ctx), ADV_OK);
    cr_expect_eq(adv_context_backend(ctx), ADV_BACKEND_CUDA);
    cr_expect_eq(log.calls, 0, "logged: %s", log.text);
    adv_context_destroy(ctx);
    // Device ordinals past the count (and negative ones) are refused, saying why.
    const int bad_ids[3] = {1, 2, -1};
    for (int k = 0; k < 3; ++k) {
        reason[0] = '\0';
        cr_expect_eq(adv_cuda_device_usable(bad_ids[k], reason, sizeof reason), ADV_ERR_BACKEND_UNAVAILABLE,
                     "device %d", bad_ids[k]);
        char want[64];
        snprintf(want, sizeof want, "device_id %d is out of range (1 CUDA device)", bad_ids[k]);
        cr_expect(strstr(reason, want) != NULL, "device %d: reason '%s'", bad_ids[k], reason);
    }
}

typedef struct probe_case {
    const char *error, *driver; /* the switches' values (driver NULL: unset) */
    const char *why;            /* what the reason must say */
} probe_case;

static void check_probe_failure(const probe_case *c) {
    cr_assert_eq(setenv("ADVECT_EMU_DEVICE_COUNT_ERROR", c->error, 1), 0);
    if (c->driver)
        cr_assert_eq(setenv("ADVECT_EMU_DRIVER_VERSION", c->driver, 1), 0);
    else
        unsetenv("ADVECT_EMU_DRIVER_VERSION");
    int count = -1;
    char reason[256] = "";
    cr_assert_eq(adv_cuda_device_count(&count, reason, sizeof reason), ADV_OK, "error %s", c->error);
    cr_expect_eq(count, 0, "error %s: %d devices", c->error, count);
    cr_expect(strstr(reason, c->why) != NULL, "error %s: device_count reason '%s' lacks '%s'", c->error,
              reason, c->why);
    reason[0] = '\0';
    cr_expect_eq(adv_cuda_device_usable(0, reason, sizeof reason), ADV_ERR_BACKEND_UNAVAILABLE);
    cr_expect(strstr(reason, c->why) != NULL, "error %s: usable reason '%s' lacks '%s'", c->error, reason,
              c->why);
    adv_device_info info;
    cr_expect_eq(adv_cuda_device_info(0, &info), ADV_ERR_BACKEND_UNAVAILABLE);

    // AUTO: the CPU, and the log says why (level INFO).
    log_record log = {0};
    adv_context *ctx = NULL;
    cr_assert_eq(create(ADV_BACKEND_AUTO, &log, &ctx), ADV_OK, "error %s: AUTO failed", c->error);
    cr_expect_eq(adv_context_backend(ctx), ADV_BACKEND_CPU, "error %s: AUTO chose backend %d", c->error,
                 (int)adv_context_backend(ctx));
    cr_expect_eq(log.calls, 1, "error %s: %d log messages", c->error, log.calls);
    cr_expect_eq(log.level, ADV_LOG_INFO);
    cr_expect(strstr(log.text, "AUTO selected the CPU backend") && strstr(log.text, c->why),
              "error %s: log '%s'", c->error, log.text);
    // The CPU context works (a one-element interaction sum on host memory).
    adv_interaction_desc d;
    adv_interaction_default_desc(&d);
    d.precision = ADV_FLOAT64;
    d.n_queries = d.n_keys = d.dim = 1;
    const double x = 0.5, y = 1.5;
    double lse = 0.0;
    cr_expect_eq(adv_interaction_sum(ctx, &d, &x, &y, NULL, NULL, &lse, NULL), ADV_OK);
    cr_expect(lse == -1.0, "lse = %.17g, expected -|0.5 - 1.5|^2 = -1", lse);
    adv_context_destroy(ctx);
    ctx = NULL;
    cr_assert_eq(adv_context_create(NULL, &ctx), ADV_OK, "NULL options (AUTO)");
    cr_expect_eq(adv_context_backend(ctx), ADV_BACKEND_CPU);
    adv_context_destroy(ctx);

    // An explicit CUDA request: ADV_ERR_BACKEND_UNAVAILABLE, *ctx NULL, the reason logged.
    memset(&log, 0, sizeof log);
    ctx = (adv_context *)&log; // non-NULL garbage: must be cleared
    adv_status st = create(ADV_BACKEND_CUDA, &log, &ctx);
    cr_expect_eq(st, ADV_ERR_BACKEND_UNAVAILABLE, "error %s: CUDA gave %s", c->error, adv_status_name(st));
    cr_expect_null(ctx, "error %s: *ctx not cleared", c->error);
    cr_expect_eq(log.level, ADV_LOG_ERROR);
    cr_expect(log.calls == 1 && strstr(log.text, "CUDA backend unavailable") && strstr(log.text, c->why),
              "error %s: %d messages, log '%s'", c->error, log.calls, log.text);
}

/* No driver: the runtime answers 35 and the driver version reads 0. */
Test(probe_emu, no_driver) {
    const probe_case c = {"35", "0", "no NVIDIA driver is installed (cudaErrorInsufficientDriver"};
    check_probe_failure(&c);
}

/* A driver older than the runtime (CUDA 11.4 against this build's runtime): 35, named. */
Test(probe_emu, driver_too_old) {
    const probe_case c = {"35", "11040", "cudaGetDeviceCount failed: cudaErrorInsufficientDriver (35)"};
    check_probe_failure(&c);
}

/* A driver but no device: 100. */
Test(probe_emu, no_device) {
    const probe_case c = {"100", NULL, "cudaGetDeviceCount failed: cudaErrorNoDevice (100): no CUDA-capable device"};
    check_probe_failure(&c);
}
