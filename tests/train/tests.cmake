# Training suites: LoRA against the peft traces (tests/data/lora, copied from ../shared/fixtures/lora).
mwb_add_qtest(test_lora_training SOURCES train/test_lora_training.cpp LIBS mwb_engine)
target_compile_definitions(test_lora_training PRIVATE MWB_CLI="$<TARGET_FILE:mwb>")
add_dependencies(test_lora_training mwb)
mwb_add_qtest(test_datasets SOURCES train/test_datasets.cpp LIBS mwb_engine)
