# CUDA backend suites, included when MWB_HAVE_CUDA. Those labelled gpu need a device (ctest -L gpu on the GPU
# machine; CI builds them without running them); test_cuda_planning checks the host-side planning anywhere.
mwb_add_qtest(test_cuda_planning SOURCES gpu/test_cuda_planning.cpp LIBS mwb_cuda_planning)
mwb_add_qtest(test_cuda_kernels SOURCES gpu/test_cuda_kernels.cpp LIBS mwb_cuda LABELS gpu)
mwb_add_qtest(test_cuda_fixtures SOURCES gpu/test_cuda_fixtures.cpp LIBS mwb_cuda LABELS gpu)
mwb_add_qtest(test_cuda_reference_layer SOURCES gpu/test_cuda_reference_layer.cpp LIBS mwb_cuda LABELS gpu)
mwb_add_qtest(test_cuda_memory SOURCES gpu/test_cuda_memory.cpp LIBS mwb_cuda LABELS gpu)
