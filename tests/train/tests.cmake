# Training suites: LoRA against the peft traces (tests/data/lora, copied from ../shared/fixtures/lora).
mwb_add_qtest(test_lora_training SOURCES train/test_lora_training.cpp LIBS mwb_engine)
