# The CPU emulator of CUDA (tests only) and the CUDA backend built against it: mwb_cuda_emulated runs the real
# sources of kernels/ (the .cu files compiled as C++), so the GPU suites also run in CI, without a GPU.
# Both are built with ASan and UBSan: an out-of-bounds access of a kernel, or a misaligned vector load, fails the
# test that made it, as compute-sanitizer's memcheck would on a GPU.
set(emulator_dir ${CMAKE_CURRENT_LIST_DIR})
set(emulator_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
add_library(mwb_cuda_emulator STATIC
  ${emulator_dir}/device.cpp ${emulator_dir}/runtime.cpp ${emulator_dir}/cublas.cpp ${emulator_dir}/number_formats.cpp)
target_include_directories(mwb_cuda_emulator BEFORE PUBLIC ${emulator_dir}/include)
target_include_directories(mwb_cuda_emulator PRIVATE ${PROJECT_SOURCE_DIR})
target_compile_options(mwb_cuda_emulator PRIVATE ${MWB_WARNINGS} ${emulator_sanitizers})
target_link_options(mwb_cuda_emulator PUBLIC -fsanitize=address,undefined)
target_link_libraries(mwb_cuda_emulator PUBLIC mwb_engine)

# Each .cu through a generated .cpp that includes it: the sources stay CUDA for nvcc and are C++ here.
set(emulated_sources)
foreach(source IN LISTS MWB_CUDA_SOURCES)
  if(source MATCHES "\\.cu$")
    get_filename_component(name ${source} NAME_WE)
    set(wrapper ${CMAKE_CURRENT_BINARY_DIR}/cuda_emulated/${name}.cpp)
    file(CONFIGURE OUTPUT ${wrapper} CONTENT "#include \"${source}\"\n")
    list(APPEND emulated_sources ${wrapper})
  else()
    list(APPEND emulated_sources ${source})
  endif()
endforeach()
add_library(mwb_cuda_emulated STATIC ${emulated_sources})
# -fno-strict-aliasing: kernels pun registers (uint4 ↔ bf16 pairs) as device code may; a host compiler must be told.
target_compile_options(mwb_cuda_emulated PRIVATE ${MWB_WARNINGS} ${emulator_sanitizers} -Wno-unknown-pragmas -fno-strict-aliasing)
target_link_libraries(mwb_cuda_emulated PUBLIC mwb_cuda_emulator mwb_cuda_planning mwb_engine)
