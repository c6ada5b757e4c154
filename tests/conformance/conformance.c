/* Context and memory helpers of the conformance suite (see conformance.h). */
#include "conformance.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void capture_log(void *user, adv_log_level level, const char *message) {
    (void)level;
    snprintf((char *)user, 512, "%s", message);
}

adv_context *conf_context(void) {
    const adv_backend backend = ADV_TEST_BACKEND;
    if (backend == ADV_BACKEND_CUDA) {
        int count = 0;
        char reason[512] = "";
        adv_status st = adv_cuda_device_count(&count, reason, sizeof reason);
        if (st != ADV_OK || count == 0)
            cr_skip_test("no usable CUDA device: %s",
                         reason[0] ? reason : adv_status_string(st));
    }
    static char log_message[512];
    log_message[0] = '\0';
    adv_context_opts opts;
    cr_assert_eq(adv_context_default_opts(&opts), ADV_OK);
    opts.backend = backend;
    opts.log = capture_log;
    opts.log_user = log_message;
    adv_context *ctx = NULL;
    adv_status st = adv_context_create(&opts, &ctx);
    /* A device was reported usable above, so failing here is a failure, not a skip. */
    cr_assert_eq(st, ADV_OK, "adv_context_create(backend %d): %s (%s)", (int)backend,
                 adv_status_name(st), log_message);
    cr_assert_not_null(ctx);
    cr_assert_eq(adv_context_backend(ctx), backend, "context runs backend %d, wanted %d",
                 (int)adv_context_backend(ctx), (int)backend);
    return ctx;
}

void conf_context_destroy(adv_context *ctx) { cr_expect_eq(adv_context_destroy(ctx), ADV_OK); }

static void *conf_alloc(adv_context *ctx, size_t bytes) {
    void *dev = NULL;
    adv_status st = adv_malloc(ctx, bytes ? bytes : 1, &dev);
    cr_assert_eq(st, ADV_OK, "adv_malloc(%zu): %s", bytes, adv_context_last_error(ctx));
    cr_assert_not_null(dev);
    return dev;
}

void *conf_upload(adv_context *ctx, adv_precision p, const double *host, size_t n) {
    const size_t bytes = n * tu_real_size(p);
    void *dev = conf_alloc(ctx, bytes);
    void *tmp = tu_to_precision(host, n, p);
    adv_status st = adv_memcpy(ctx, dev, tmp, bytes, ADV_COPY_HOST_TO_CONTEXT);
    cr_assert_eq(st, ADV_OK, "adv_memcpy to context: %s", adv_context_last_error(ctx));
    free(tmp);
    return dev;
}

void *conf_alloc_poisoned(adv_context *ctx, adv_precision p, size_t n) {
    const size_t bytes = n * tu_real_size(p);
    void *dev = conf_alloc(ctx, bytes);
    void *tmp = tu_calloc(n, tu_real_size(p));
    tu_poison(tmp, bytes);
    adv_status st = adv_memcpy(ctx, dev, tmp, bytes, ADV_COPY_HOST_TO_CONTEXT);
    cr_assert_eq(st, ADV_OK, "adv_memcpy to context: %s", adv_context_last_error(ctx));
    free(tmp);
    return dev;
}

void conf_download(adv_context *ctx, adv_precision p, const void *dev, double *host, size_t n) {
    const size_t bytes = n * tu_real_size(p);
    void *tmp = tu_calloc(n, tu_real_size(p));
    adv_status st = adv_memcpy(ctx, tmp, dev, bytes, ADV_COPY_CONTEXT_TO_HOST);
    cr_assert_eq(st, ADV_OK, "adv_memcpy to host: %s", adv_context_last_error(ctx));
    tu_from_precision(host, tmp, n, p);
    free(tmp);
}

void conf_free(adv_context *ctx, void *dev) {
    if (dev) cr_expect_eq(adv_free(ctx, dev), ADV_OK, "adv_free: %s", adv_context_last_error(ctx));
}
