# Engine suites: the oracle fixtures, file-format parsers (under ASan/UBSan), sampler, CLI.
mwb_add_qtest(test_oracle SOURCES engine/test_oracle.cpp LIBS mwb_engine)
