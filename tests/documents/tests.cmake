# Document question answering: reading, OCR, the index, retrieval and citations; and `mwb docs` (no GUI).
if(TARGET mwb_documents)
  mwb_add_qtest(test_documents SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_documents.cpp LIBS mwb_documents)
  mwb_add_qtest(test_docs_cli SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_docs_cli.cpp LIBS mwb_documents)
  target_compile_definitions(test_docs_cli PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
  add_dependencies(test_docs_cli mwb)
endif()
