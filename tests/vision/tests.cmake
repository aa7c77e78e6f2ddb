# DeepSeek-VL: image preprocessing, the SigLIP tower and aligner, prompts with images, against the dsvl-tiny
# fixture; and `mwb logits/generate --image`. Image files are decoded by Qt, as in the app and the CLI, so
# these suites need the build's image decoding (MWB_DOCUMENTS).
if(TARGET mwb_image_files)
  mwb_add_qtest(test_vision SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vision.cpp LIBS mwb_engine mwb_image_files)
  mwb_add_qtest(test_vision_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_vision_cli.cpp LIBS mwb_engine)
  target_compile_definitions(test_vision_cli PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
  add_dependencies(test_vision_cli mwb)
endif()
