/* Shared set-up of the conformance suite. The suite is written only against the public API
 * and compiled once per backend (ADV_TEST_BACKEND = ADV_BACKEND_CPU or ADV_BACKEND_CUDA, set
 * by tests/CMakeLists.txt). Test data are made on the host and moved with adv_malloc /
 * adv_memcpy into the context's memory space, so the same code runs on every backend. */
#ifndef ADVECT_TESTS_CONFORMANCE_H
#define ADVECT_TESTS_CONFORMANCE_H

#include "test_util.h"

#include <advect/advect.h>

#ifndef ADV_TEST_BACKEND
#error "compile the conformance suite with -DADV_TEST_BACKEND=ADV_BACKEND_CPU or ADV_BACKEND_CUDA"
#endif

/* Creates a context of the backend under test. For CUDA without a usable device the calling
 * test is skipped, visibly, with the reason the library gives. Any other failure fails it. */
adv_context *conf_context(void);
void conf_context_destroy(adv_context *ctx);

/* Copies n host doubles, converted to precision p, into new context memory. */
void *conf_upload(adv_context *ctx, adv_precision p, const double *host, size_t n);
/* Allocates n elements of precision p in context memory, filled with NaN. */
void *conf_alloc_poisoned(adv_context *ctx, adv_precision p, size_t n);
/* Copies n elements of precision p back from context memory into host doubles. */
void conf_download(adv_context *ctx, adv_precision p, const void *dev, double *host, size_t n);
void conf_free(adv_context *ctx, void *dev);

#endif
