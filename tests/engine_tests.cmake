# Engine suites: the oracle fixtures, the file-format parsers under ASan/UBSan, the sampler, the CLI.
mwb_add_qtest(test_oracle SOURCES engine/test_oracle.cpp LIBS mwb_engine)
mwb_add_qtest(test_sampler SOURCES engine/test_sampler.cpp LIBS mwb_engine)
mwb_add_qtest(test_cli SOURCES engine/test_cli.cpp LIBS mwb_engine)
target_compile_definitions(test_cli PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
add_dependencies(test_cli mwb)
if(MWB_SANITIZED_PARSER_TESTS)
  mwb_add_qtest(test_bad_input SOURCES engine/test_bad_input.cpp LIBS mwb_parsers_sanitized)
endif()
