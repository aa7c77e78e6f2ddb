# engine/vision: image preprocessing, the SigLIP tower and aligner of DeepSeek-VL, prompts with images.
set(MWB_VISION_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/resample.cpp
  ${CMAKE_CURRENT_LIST_DIR}/image_processor.cpp
  ${CMAKE_CURRENT_LIST_DIR}/siglip.cpp
  ${CMAKE_CURRENT_LIST_DIR}/vision_encoder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/image_prompt.cpp)
