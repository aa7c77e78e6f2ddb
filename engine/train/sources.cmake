set(MWB_TRAIN_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/backward_ops.cpp
  ${CMAKE_CURRENT_LIST_DIR}/dataset.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lora_adapter.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lora_model.cpp
  ${CMAKE_CURRENT_LIST_DIR}/merge.cpp
  ${CMAKE_CURRENT_LIST_DIR}/optimizer.cpp
  ${CMAKE_CURRENT_LIST_DIR}/trainer.cpp)
