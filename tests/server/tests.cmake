# The OpenAI-compatible server over real HTTP on loopback (the demo model and dsv3-tiny).
if(TARGET mwb_server)
  mwb_add_qtest(test_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_server.cpp LIBS mwb_server mwb_demo PkgConfig::HTTPLIB)
endif()
