set(MWB_DEPLOY_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/weight_inventory.cpp
  ${CMAKE_CURRENT_LIST_DIR}/gpu_catalog.cpp
  ${CMAKE_CURRENT_LIST_DIR}/deployment_plan.cpp)
