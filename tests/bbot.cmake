# Benamou-Brenier suites (included from tests/CMakeLists.txt): unit tests of the shared math
# and the public API, the oracles of spec math.md §8 (O9, O10, Bures, particles), a longer
# oracle run labelled "slow" (64x64x32, the issue's 2% check), the conformance suite built
# once per backend (the CUDA instance skips visibly without a usable GPU) and the CLI runs.
advect_add_test(unit_bbot LABEL cpu SOURCES unit/bbot.c)
advect_add_test(oracles_bbot LABEL cpu SOURCES oracles/bbot.c)
# The 64 x 64 x 32 translated bump of the issue (about a minute on one core): label "slow".
advect_add_test(oracles_bbot_slow LABEL slow SOURCES oracles/bbot_slow.c)
set(ADVECT_BBOT_CONFORMANCE conformance/conformance.c conformance/bbot.c)
advect_add_test(conformance_bbot_cpu LABEL cpu SOURCES ${ADVECT_BBOT_CONFORMANCE})
target_compile_definitions(conformance_bbot_cpu PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CPU)
advect_add_test(conformance_bbot_cuda LABEL cuda SOURCES ${ADVECT_BBOT_CONFORMANCE})
target_compile_definitions(conformance_bbot_cuda PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CUDA)
set_tests_properties(conformance_bbot_cuda PROPERTIES RESOURCE_LOCK gpu)
# End-to-end runs of `advect bbot` (the built executable, in temporary directories). Passive
# OpenMP waiting: several test programs share few cores (see tests/cli.cmake).
advect_add_test(cli_bbot LABEL cpu SOURCES cli/bbot.c common/cli_harness.c)
target_link_libraries(cli_bbot PRIVATE advect_io)
target_compile_definitions(cli_bbot PRIVATE ADV_TEST_ADVECT_BIN="$<TARGET_FILE:advect_cli>")
add_dependencies(cli_bbot advect_cli)
set_tests_properties(cli_bbot PROPERTIES ENVIRONMENT "OMP_WAIT_POLICY=passive;OMP_NUM_THREADS=1")
