# The Inspector page driven by a live generation (offscreen, with screenshots).
if(MWB_BUILD_GUI)
  mwb_add_qtest(test_inspector SOURCES inspector/test_inspector.cpp LIBS mwb_inspector_ui)
endif()
