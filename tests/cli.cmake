# End-to-end tests of `advect sample` (the built executable, run in temporary directories;
# outputs read back with host/io).
advect_add_test(cli_sample LABEL cpu SOURCES cli/sample.c)
target_link_libraries(cli_sample PRIVATE advect_io)
target_compile_definitions(cli_sample PRIVATE ADV_TEST_ADVECT_BIN="$<TARGET_FILE:advect_cli>"
  ADV_TEST_SANITIZED=$<BOOL:${ADVECT_SANITIZE}>)
add_dependencies(cli_sample advect_cli)
# openpty (the progress-bar test): in libutil before glibc 2.34, in libc since (where libutil
# remains as an empty stub); linked when present.
find_library(ADVECT_UTIL_LIBRARY util)
if(ADVECT_UTIL_LIBRARY)
  target_link_libraries(cli_sample PRIVATE ${ADVECT_UTIL_LIBRARY})
endif()
# The tool runs many short OpenMP regions per step on tiny problems here; when ctest runs
# several programs at once on few cores, spinning OpenMP workers starve each other (seconds
# per run instead of milliseconds). Passive waiting keeps these functional tests fast; it
# does not change any result.
# Criterion's runner keeps two blocks of its own alive at exit in this program (its per-test
# timeouts): tests/lsan.supp. Its suppression matches any stack through libcriterion, which
# would hide the tests' own leaks too; here the tests' work is in the advect processes they
# start, whose stacks do not go through Criterion.
set_tests_properties(cli_sample PROPERTIES ENVIRONMENT
  "OMP_WAIT_POLICY=passive;LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/lsan.supp:print_suppressions=0")

# `advect info`: options, and the text and JSON reports of the devices (tests/cli/info.py).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME cli_info COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/cli/info.py
           $<TARGET_FILE:advect_cli>)
  set_tests_properties(cli_info PROPERTIES LABELS cpu)
endif()
