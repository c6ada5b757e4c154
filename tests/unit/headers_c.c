/* C-only compile test of the public headers. tests/CMakeLists.txt compiles this file and one
 * generated translation unit per header in include/advect/ (each including only that header,
 * twice, to check it is self-contained and guarded) as strict ISO C99 with -pedantic-errors
 * -Werror, so C++-only or compiler-specific constructs in a header fail the build. The
 * program then makes a few calls so the declarations are also checked against the library
 * at link time. */
#include <advect/advect.h>
#include <advect/core.h>
#include <advect/interaction.h>
#include <advect/random.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    int failed = 0;
    adv_context_opts opts;
    adv_interaction_desc desc;
    adv_build_info info;
    failed += adv_context_default_opts(&opts) != ADV_OK || opts.struct_size != sizeof opts;
    failed += adv_interaction_default_desc(&desc) != ADV_OK || desc.struct_size != sizeof desc;
    failed += adv_build_info_get(&info) != ADV_OK || info.has_cpu != 1;
    failed += strlen(adv_version()) == 0;
    failed += strcmp(adv_status_name(ADV_ERR_NONFINITE), "ADV_ERR_NONFINITE") != 0;
    printf("advect-tests: headers_c: %d passed, %d failed, 0 skipped\n", failed ? 0 : 1,
           failed ? 1 : 0);
    return failed ? 1 : 0;
}
