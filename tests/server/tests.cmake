# The OpenAI-compatible server over real HTTP on loopback (the demo model, dsv3-tiny and dsvl-tiny).
if(TARGET mwb_server)
  mwb_add_qtest(test_server SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_server.cpp LIBS mwb_server mwb_demo PkgConfig::HTTPLIB)
endif()
# Images in chat requests need Qt's image decoders (mwb_image_files, built with the documents).
if(TARGET mwb_server AND TARGET mwb_image_files)
  mwb_add_qtest(test_server_images SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_server_images.cpp
                LIBS mwb_server mwb_image_files PkgConfig::HTTPLIB)
endif()
