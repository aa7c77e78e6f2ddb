# The Inspector page driven by a live generation (offscreen, with screenshots).
if(TARGET mwb_ui)
  mwb_add_qtest(test_inspector SOURCES inspector/test_inspector.cpp LIBS mwb_ui mwb_app)
endif()
