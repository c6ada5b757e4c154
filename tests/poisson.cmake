# Poisson-plan suites (included from tests/CMakeLists.txt): the CPU unit tests, and the
# Poisson conformance suite built once per backend (the CUDA instance skips visibly without
# a usable GPU). The naive stencil reference is tests/common/poisson_ref.h.
advect_add_test(unit_poisson LABEL cpu SOURCES unit/poisson.c)

set(ADVECT_POISSON_CONFORMANCE_SOURCES conformance/conformance.c conformance/poisson.c)
advect_add_test(conformance_poisson_cpu LABEL cpu SOURCES ${ADVECT_POISSON_CONFORMANCE_SOURCES})
target_compile_definitions(conformance_poisson_cpu PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CPU)
advect_add_test(conformance_poisson_cuda LABEL cuda SOURCES ${ADVECT_POISSON_CONFORMANCE_SOURCES})
target_compile_definitions(conformance_poisson_cuda PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CUDA)
set_tests_properties(conformance_poisson_cuda PROPERTIES RESOURCE_LOCK gpu)

# End-to-end runs of `advect poisson` (the built executable, in temporary directories).
advect_add_test(cli_poisson LABEL cpu SOURCES cli/poisson.c common/cli_harness.c)
target_link_libraries(cli_poisson PRIVATE advect_io)
target_compile_definitions(cli_poisson PRIVATE ADV_TEST_ADVECT_BIN="$<TARGET_FILE:advect_cli>")
add_dependencies(cli_poisson advect_cli)
