# The deployment planner on the configs of published checkpoints (tests/data/deploy).
mwb_add_qtest(test_deployment_plan SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_deployment_plan.cpp LIBS mwb_engine)
