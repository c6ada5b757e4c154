# CUDA kernels run on the CPU (tests/emulate): a copy of the .cu file with its launches
# rewritten by emulate_cu.py, built by the host C++ compiler against cuda_emu.h (one OS thread
# per CUDA thread). Needs the CUDA headers (not a GPU, not the CUDA backend), Python and C++20;
# skipped at configure time without them. Label cpu: it runs wherever the CPU suites run.
include(CheckLanguage)
check_language(CXX)
find_package(CUDAToolkit QUIET)
find_package(Python3 COMPONENTS Interpreter QUIET)
find_package(Threads QUIET)
if(CMAKE_CXX_COMPILER AND CUDAToolkit_FOUND AND Python3_FOUND AND Threads_FOUND)
  enable_language(CXX)
  set(_emu_dir ${CMAKE_CURRENT_BINARY_DIR}/emulate)
  add_custom_command(
    OUTPUT ${_emu_dir}/interaction_emu_src.cpp
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_emu_dir}
    COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py
            ${PROJECT_SOURCE_DIR}/kernels/cuda/interaction.cu ${_emu_dir}/interaction_emu_src.cpp
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/emulate/emulate_cu.py
            ${PROJECT_SOURCE_DIR}/kernels/cuda/interaction.cu
    COMMENT "Rewriting interaction.cu's launches for the CPU emulation")
  add_executable(interaction_emu emulate/interaction_emu.cpp common/reference.c
                 ${_emu_dir}/interaction_emu_src.cpp)
  # The generated file is #included by interaction_emu.cpp, not compiled on its own.
  set_source_files_properties(${_emu_dir}/interaction_emu_src.cpp PROPERTIES HEADER_FILE_ONLY ON)
  set_source_files_properties(emulate/interaction_emu.cpp PROPERTIES
                              OBJECT_DEPENDS ${_emu_dir}/interaction_emu_src.cpp)
  target_compile_features(interaction_emu PRIVATE cxx_std_20)
  target_include_directories(interaction_emu PRIVATE
    ${_emu_dir} ${CMAKE_CURRENT_SOURCE_DIR}/emulate ${CMAKE_CURRENT_SOURCE_DIR}/common
    ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/host ${PROJECT_SOURCE_DIR}/kernels
    ${PROJECT_SOURCE_DIR}/kernels/cuda ${CUDAToolkit_INCLUDE_DIRS})
  target_link_libraries(interaction_emu PRIVATE Threads::Threads m)
  add_test(NAME interaction_emu COMMAND interaction_emu)
  set_tests_properties(interaction_emu PROPERTIES LABELS cpu TIMEOUT 600)
else()
  message(STATUS "advect: CUDA kernel emulation tests off (need a C++ compiler, the CUDA "
                 "headers, Python 3 and threads)")
endif()
