# Tests of the CLI's file formats (host/io): unit suite, the command-line helpers
# (host/cli/cli_util.c), and the .npy fuzz target replayed over its seed corpus.
advect_add_test(unit_io LABEL cpu SOURCES unit/io.c)
target_link_libraries(unit_io PRIVATE advect_io)

advect_add_test(unit_cli_util LABEL cpu SOURCES unit/cli_util.c ${PROJECT_SOURCE_DIR}/host/cli/cli_util.c)
target_include_directories(unit_cli_util PRIVATE ${PROJECT_SOURCE_DIR}/host/cli)
target_link_libraries(unit_cli_util PRIVATE advect_io)

# The fuzz target: built as a corpus replayer with any compiler (a ctest over the committed
# seeds, each named ok_* or bad_* for the outcome it must have), and as a libFuzzer binary
# (not run by ctest) when the compiler is clang.
add_executable(npy_fuzz_replay fuzz/npy_fuzz.c)
target_compile_definitions(npy_fuzz_replay PRIVATE ADVECT_FUZZ_REPLAY=1)
target_link_libraries(npy_fuzz_replay PRIVATE advect_io)
target_compile_options(npy_fuzz_replay PRIVATE ${ADVECT_WARNINGS})
add_test(NAME npy_fuzz_corpus
         COMMAND npy_fuzz_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/corpus/npy)
set_tests_properties(npy_fuzz_corpus PROPERTIES LABELS cpu TIMEOUT 120)
if(CMAKE_C_COMPILER_ID MATCHES "Clang")
  add_executable(npy_fuzz fuzz/npy_fuzz.c ${PROJECT_SOURCE_DIR}/host/io/common.c
                 ${PROJECT_SOURCE_DIR}/host/io/npy.c ${PROJECT_SOURCE_DIR}/host/io/csv.c
                 ${PROJECT_SOURCE_DIR}/host/io/image.c ${PROJECT_SOURCE_DIR}/host/io/plot.c)
  target_include_directories(npy_fuzz PRIVATE ${PROJECT_SOURCE_DIR}/host/io ${PROJECT_SOURCE_DIR}/include)
  target_compile_options(npy_fuzz PRIVATE -fsanitize=fuzzer,address,undefined -g)
  target_link_options(npy_fuzz PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(npy_fuzz PRIVATE PkgConfig::PNG m)
endif()
