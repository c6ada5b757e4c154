# End-to-end tests of `advect sample` (the built executable, run in temporary directories;
# outputs read back with host/io).
advect_add_test(cli_sample LABEL cpu SOURCES cli/sample.c)
target_link_libraries(cli_sample PRIVATE advect_io)
target_compile_definitions(cli_sample PRIVATE ADV_TEST_ADVECT_BIN="$<TARGET_FILE:advect_cli>"
  ADV_TEST_SANITIZED=$<BOOL:${ADVECT_SANITIZE}>)
add_dependencies(cli_sample advect_cli)
# The tool runs many short OpenMP regions per step on tiny problems here; when ctest runs
# several programs at once on few cores, spinning OpenMP workers starve each other (seconds
# per run instead of milliseconds). Passive waiting keeps these functional tests fast; it
# does not change any result.
set_tests_properties(cli_sample PROPERTIES ENVIRONMENT "OMP_WAIT_POLICY=passive")
