# CUDA kernels run on the CPU (tests/emulate): a copy of the .cu file with its launches
# rewritten by emulate_cu.py, built by the host C++ compiler against cuda_emu.h (a fiber per
# CUDA thread). Needs the CUDA headers (not a GPU, not the CUDA backend), Python and C++20;
# skipped at configure time without them. Label cpu: it runs wherever the CPU suites run.
option(ADVECT_EMULATION_TESTS "Build the CUDA kernels for the CPU emulation tests" ON)
include(CheckLanguage)
check_language(CXX)
find_package(CUDAToolkit QUIET)
find_package(Python3 COMPONENTS Interpreter QUIET)
find_package(Threads QUIET)
if(NOT ADVECT_EMULATION_TESTS)
  # bench/gpu.sh: on a machine with a GPU the real kernels run, and the time goes to them.
elseif(CMAKE_CXX_COMPILER AND CUDAToolkit_FOUND AND Python3_FOUND AND Threads_FOUND)
  enable_language(CXX)
  # advect_add_emulation(<test> <kernel file in kernels/cuda> <sources...>): the test program
  # #includes <test>_src.cpp, the rewritten copy of the kernel file.
  function(advect_add_emulation name cu)
    set(dir ${CMAKE_CURRENT_BINARY_DIR}/emulate)
    set(gen ${dir}/${name}_src.cpp)
    add_custom_command(
      OUTPUT ${gen}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
      COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py
              ${PROJECT_SOURCE_DIR}/kernels/cuda/${cu} ${gen}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py ${PROJECT_SOURCE_DIR}/kernels/cuda/${cu}
      COMMENT "Rewriting ${cu}'s launches for the CPU emulation")
    add_executable(${name} ${ARGN} ${gen})
    # The generated file is #included by the test program, not compiled on its own.
    set_source_files_properties(${gen} PROPERTIES HEADER_FILE_ONLY ON)
    set_source_files_properties(emulate/${name}.cpp PROPERTIES OBJECT_DEPENDS ${gen})
    target_compile_features(${name} PRIVATE cxx_std_20)
    # cuda_emu.h switches between fiber stacks with _longjmp, which glibc's fortified form
    # would take for a corrupt jump.
    target_compile_options(${name} PRIVATE -U_FORTIFY_SOURCE)
    target_include_directories(${name} PRIVATE
      ${dir} ${CMAKE_CURRENT_SOURCE_DIR}/emulate ${CMAKE_CURRENT_SOURCE_DIR}/common
      ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/host ${PROJECT_SOURCE_DIR}/kernels
      ${PROJECT_SOURCE_DIR}/kernels/cuda ${CUDAToolkit_INCLUDE_DIRS})
    target_link_libraries(${name} PRIVATE Threads::Threads m)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES LABELS cpu TIMEOUT 600)
  endfunction()
  advect_add_emulation(interaction_emu interaction.cu emulate/interaction_emu.cpp common/reference.c)
  advect_add_emulation(bbot_emu bbot.cu emulate/bbot_emu.cpp)
  advect_add_emulation(poisson_emu poisson.cu emulate/poisson_emu.cpp)
  target_link_libraries(poisson_emu PRIVATE advect::advect) # the CPU solve it compares with

  # The emulated CUDA backend: the library's own sources with host/cuda/*.c in place of the
  # stub, every kernel file rewritten as above, and cuda_runtime_shim.cpp in place of libcudart,
  # libcufft and libcublas; the conformance suites' CUDA instances run against it on the CPU
  # (conformance_*_emu). Not in the sanitizer build: one OS thread per CUDA thread makes it
  # slow there, and its host code is the CPU build's.
  if(NOT ADVECT_SANITIZE)
    get_target_property(lib_sources advect SOURCES)
    list(FILTER lib_sources EXCLUDE REGEX "(\\.cu$|cuda_stub\\.c$)")
    set(emu_sources)
    foreach(src ${lib_sources})
      list(APPEND emu_sources ${PROJECT_SOURCE_DIR}/${src})
    endforeach()
    file(GLOB cuda_host CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/host/cuda/*.c)
    file(GLOB cuda_kernels CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
    set(dir ${CMAKE_CURRENT_BINARY_DIR}/emulate)
    foreach(cu ${cuda_kernels})
      get_filename_component(stem ${cu} NAME_WE)
      set(gen ${dir}/backend_${stem}.cpp)
      add_custom_command(
        OUTPUT ${gen}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
        COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py ${cu} ${gen}
        DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py ${cu}
        COMMENT "Rewriting ${stem}.cu's launches for the emulated backend")
      list(APPEND emu_sources ${gen})
      # cuda_emu.h first, as the test programs include it before the rewritten file.
      set_source_files_properties(${gen} PROPERTIES COMPILE_OPTIONS
        "-include;${CMAKE_CURRENT_SOURCE_DIR}/emulate/cuda_emu.h")
    endforeach()
    add_library(advect_emu STATIC ${emu_sources} ${cuda_host} emulate/cuda_runtime_shim.cpp)
    target_compile_features(advect_emu PRIVATE cxx_std_20)
    target_compile_options(advect_emu PRIVATE -U_FORTIFY_SOURCE) # as above
    get_target_property(defs advect COMPILE_DEFINITIONS)
    list(FILTER defs EXCLUDE REGEX "^ADVECT_CUDA_ARCHITECTURES=") # (set below)
    target_compile_definitions(advect_emu PRIVATE ${defs} ADVECT_EMU_BACKEND
      ADVECT_CUDA_ARCHITECTURES="emulated")
    target_include_directories(advect_emu
      PUBLIC ${PROJECT_SOURCE_DIR}/include
      PRIVATE ${PROJECT_SOURCE_DIR}/host ${PROJECT_SOURCE_DIR}/kernels
              ${PROJECT_SOURCE_DIR}/kernels/cuda ${RANDOM123_INCLUDE_DIR} ${FFTW_INCLUDE_DIRS}
              ${CUDAToolkit_INCLUDE_DIRS})
    # The CPU engine's per-file options (top-level CMakeLists.txt) hold for its copy here too.
    foreach(src host/cpu/interaction_cpu.c host/cpu/bbot_cpu.c)
      get_source_file_property(opts ${PROJECT_SOURCE_DIR}/${src} DIRECTORY ${PROJECT_SOURCE_DIR}
                               COMPILE_OPTIONS)
      if(opts)
        set_source_files_properties(${PROJECT_SOURCE_DIR}/${src} PROPERTIES COMPILE_OPTIONS "${opts}")
      endif()
    endforeach()
    # (stdc++ by name: consumers in directories where C++ is not enabled, bench/, link with
    # the C compiler driver.)
    target_link_libraries(advect_emu PUBLIC OpenMP::OpenMP_C Threads::Threads m stdc++
      ${FFTW3_OMP_LIBRARY} ${FFTW3F_OMP_LIBRARY} ${FFTW_LINK_LIBRARIES})
    foreach(suite conformance conformance_poisson conformance_sampling conformance_bbot)
      get_target_property(srcs ${suite}_cuda SOURCES)
      list(REMOVE_ITEM srcs ${ADVECT_TEST_COMMON}) # advect_add_test adds them
      advect_add_test(${suite}_emu LABEL cpu LIB advect_emu SOURCES ${srcs})
      target_compile_definitions(${suite}_emu PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CUDA)
    endforeach()
    # Backend selection when the device probe fails (the shim's ADVECT_EMU_DEVICE_COUNT_ERROR
    # and ADVECT_EMU_DRIVER_VERSION switches): AUTO falls back to the CPU, CUDA is refused.
    advect_add_test(probe_emu LABEL cpu LIB advect_emu SOURCES emulate/probe_emu.c)
    # Every kernel launch of an operation failing in turn (the shim's advk_emu_fail_launch).
    advect_add_test(faults_emu LABEL cpu LIB advect_emu SOURCES emulate/faults_emu.c)
    # The command-line tool on the emulated device: --device cuda against --device cpu.
    get_target_property(cli_sources advect_cli SOURCES)
    list(TRANSFORM cli_sources PREPEND ${PROJECT_SOURCE_DIR}/host/cli/)
    add_executable(advect_cli_emu ${cli_sources})
    target_link_libraries(advect_cli_emu PRIVATE advect_emu advect_io m)
    add_test(NAME cli_cuda_emu COMMAND Python3::Interpreter
             ${CMAKE_CURRENT_SOURCE_DIR}/emulate/cli_cuda_emu.py $<TARGET_FILE:advect_cli_emu>)
    add_test(NAME cli_info_emu COMMAND Python3::Interpreter
             ${CMAKE_CURRENT_SOURCE_DIR}/cli/info.py $<TARGET_FILE:advect_cli_emu> 1)
    set_tests_properties(cli_info_emu PROPERTIES LABELS cpu)
    # (passive OpenMP waiting: see cli.cmake)
    set_tests_properties(cli_cuda_emu PROPERTIES LABELS cpu TIMEOUT 600
                         ENVIRONMENT "OMP_WAIT_POLICY=passive")
  endif()
else()
  message(STATUS "advect: CUDA kernel emulation tests off (need a C++ compiler, the CUDA "
                 "headers, Python 3 and threads)")
endif()
