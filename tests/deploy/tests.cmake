# The deployment planner on the configs of published checkpoints (tests/data/deploy).
mwb_add_qtest(test_deployment_plan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_deployment_plan.cpp ${CMAKE_CURRENT_LIST_DIR}/plan_requests.h LIBS mwb_engine)
# The exporters: real flags, YAML that parses back with its schema's keys, and the reviewed exports in
# tests/data/deploy/golden.
find_package(yaml-cpp REQUIRED)
mwb_add_qtest(test_exporters SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_exporters.cpp ${CMAKE_CURRENT_LIST_DIR}/plan_requests.h LIBS mwb_exporters yaml-cpp)
