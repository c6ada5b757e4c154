# CUDA kernels run on the CPU (tests/emulate): a copy of the .cu file with its launches
# rewritten by emulate_cu.py, built by the host C++ compiler against cuda_emu.h (one OS thread
# per CUDA thread). Needs the CUDA headers (not a GPU, not the CUDA backend), Python and C++20;
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
else()
  message(STATUS "advect: CUDA kernel emulation tests off (need a C++ compiler, the CUDA "
                 "headers, Python 3 and threads)")
endif()
