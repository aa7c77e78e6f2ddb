set(MWB_RUNTIME_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/cpu/thread_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cpu/cpu_ops.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cpu/cpu_backend.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cpu/cpu_attention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/sampler.cpp
  ${CMAKE_CURRENT_LIST_DIR}/generation.cpp
  ${CMAKE_CURRENT_LIST_DIR}/chat_prompt.cpp)
