# Allocation fault injection (tests/unit/alloc_faults.c, included from tests/CMakeLists.txt):
# the test fails the k-th allocation the library's own code makes, for every k. It intercepts
# malloc & co. with the linker's --wrap, which only rewrites references between the objects
# of one link: calls made inside the shared libadvect are bound there and cannot be wrapped.
# So the test links the library statically: advect's own object files (already compiled for
# the shared library, so nothing is built twice and the code under test is the shipped code),
# without the CUDA backend's, and host/cuda_stub.c compiled with advect's settings (read back
# from the target, not repeated here) in their place, also in a CUDA build. Shared libraries
# (FFTW, libgomp, Criterion, libc) keep their own allocator: their allocations are neither
# counted nor failed.
add_library(advect_alloc_faults STATIC
  "$<FILTER:$<TARGET_OBJECTS:advect>,EXCLUDE,/(host/cuda/|kernels/cuda/|host/cuda_stub\\.c)>"
  ${PROJECT_SOURCE_DIR}/host/cuda_stub.c)
add_dependencies(advect_alloc_faults advect)
get_target_property(af_defs advect COMPILE_DEFINITIONS)
list(FILTER af_defs EXCLUDE REGEX "^ADVECT_CUDA_ARCHITECTURES=") # the stub has no CUDA
target_compile_definitions(advect_alloc_faults PRIVATE ${af_defs})
get_target_property(af_opts advect COMPILE_OPTIONS)
target_compile_options(advect_alloc_faults PRIVATE ${af_opts})
get_target_property(af_incs advect INCLUDE_DIRECTORIES)
target_include_directories(advect_alloc_faults PRIVATE ${af_incs})
get_target_property(af_public_incs advect INTERFACE_INCLUDE_DIRECTORIES)
target_include_directories(advect_alloc_faults INTERFACE ${af_public_incs})
get_target_property(af_libs advect LINK_LIBRARIES)
list(FILTER af_libs EXCLUDE REGEX "^CUDA::")
# PUBLIC: a static library's dependencies are linked into the test program.
target_link_libraries(advect_alloc_faults PUBLIC ${af_libs})

find_package(Threads REQUIRED)
advect_add_test(alloc_faults LABEL cpu LIB advect_alloc_faults SOURCES unit/alloc_faults.c)
target_link_libraries(alloc_faults PRIVATE Threads::Threads)
target_link_options(alloc_faults PRIVATE
  "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=posix_memalign")
# Idle OpenMP workers sleep (the suites share few cores; see tests/sampling.cmake).
set(af_env "OMP_WAIT_POLICY=PASSIVE")
if(ADVECT_SANITIZE)
  # The test asks LeakSanitizer itself after each scenario. Not with tests/lsan.supp: its
  # leak:libcriterion.so matches any allocation with Criterion's frames in its recorded
  # stack, i.e. nearly everything a test allocates. exitcode=0: a report at a process's exit
  # (Criterion's runner may keep a block, see tests/lsan.supp) does not fail the test.
  list(APPEND af_env "LSAN_OPTIONS=exitcode=0")
endif()
set_tests_properties(alloc_faults PROPERTIES ENVIRONMENT "${af_env}")
