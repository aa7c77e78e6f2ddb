set(MWB_OBSERVE_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/routing_trace.cpp
  ${CMAKE_CURRENT_LIST_DIR}/routing_stats.cpp
  ${CMAKE_CURRENT_LIST_DIR}/forward_capture.cpp)
