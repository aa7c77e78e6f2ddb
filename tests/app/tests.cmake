# QtTest suites of the desktop app: services (storage, worker, library, settings, demo model) and the GUI.
if(TARGET mwb_app)
  mwb_add_qtest(app_storage_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/storage_test.cpp ${CMAKE_CURRENT_LIST_DIR}/test_support.h
                LIBS mwb_app)
  mwb_add_qtest(app_services_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/services_test.cpp ${CMAKE_CURRENT_LIST_DIR}/test_support.h
                LIBS mwb_app)
  mwb_add_qtest(app_engine_worker_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/engine_worker_test.cpp ${CMAKE_CURRENT_LIST_DIR}/test_support.h
                LIBS mwb_app)
  # Compared with `mwb generate --chat` on the same model and seed.
  target_compile_definitions(app_engine_worker_test PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
  add_dependencies(app_engine_worker_test mwb)
  mwb_add_qtest(app_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  mwb_add_qtest(app_finetune_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/finetune_gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  mwb_add_qtest(app_export_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/export_gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  mwb_add_qtest(app_server_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/server_gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  mwb_add_qtest(app_documents_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/documents_gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  mwb_add_qtest(app_vision_gui_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vision_gui_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gui_support.h
                ${CMAKE_CURRENT_LIST_DIR}/test_support.h LIBS mwb_ui mwb_app)
  # The GUI's training and generation are compared with `mwb train` and `mwb generate` on the same settings.
  foreach(suite app_gui_test app_finetune_gui_test)
    target_compile_definitions(${suite} PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
    add_dependencies(${suite} mwb)
  endforeach()
endif()
