# CUDA backend suites. Each runs twice: on a GPU (label gpu, built when nvcc is found, run by ctest -L gpu on the
# GPU machine) and on the CPU emulator of tests/cuda_emulator (label emulated, run everywhere, CI included).
# test_cuda_planning checks the host-side planning.
include(${CMAKE_CURRENT_SOURCE_DIR}/cuda_emulator/emulator.cmake)
mwb_add_qtest(test_cuda_planning SOURCES gpu/test_cuda_planning.cpp LIBS mwb_cuda_planning)
foreach(suite test_cuda_kernels test_cuda_fixtures test_cuda_reference_layer test_cuda_memory test_cuda_serving
        test_cuda_lora test_cuda_vision test_cuda_train_ops test_cuda_training)
  mwb_add_qtest(${suite}_emulated SOURCES gpu/${suite}.cpp LIBS mwb_cuda_emulated LABELS emulated)
  if(MWB_HAVE_CUDA)
    mwb_add_qtest(${suite} SOURCES gpu/${suite}.cpp LIBS mwb_cuda LABELS gpu)
  endif()
endforeach()
