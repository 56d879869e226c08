# The exchange's HTTP/WebSocket API (docs/api.md) against the real `ocx exchange` binary,
# started as a child process on a temporary data directory, port 0, loopback only.
if(OCX_BUILD_TESTS)
  ocx_test(ocx_api_integration_test
    SOURCES
      api_test_util.cc
      api_http_test.cc
      api_auth_test.cc
      api_bad_input_test.cc
      api_boundary_test.cc
      api_hostile_http_test.cc
      api_hostile_channels_test.cc
      api_hostile_starvation_test.cc
      api_websocket_test.cc
      api_agent_test.cc
      api_crash_test.cc
      api_operations_test.cc
      api_jobs_test.cc
      api_dashboard_test.cc
    LIBS ocx_client ocx_api ocx_base ocx_bench_http ocx_build_paths)
  add_dependencies(ocx_api_integration_test ocx)

  # The provider agent (src/agent/agent.h) with the real sandbox against the real exchange.
  ocx_test(ocx_provider_integration_test
    SOURCES api_test_util.cc provider_agent_test.cc
    LIBS ocx_agent_runtime ocx_client ocx_api ocx_base ocx_build_paths)
  add_dependencies(ocx_provider_integration_test ocx)
endif()

# `ocx demo` itself, end to end (root: the providers' sandboxes; skipped with the reason
# otherwise).
add_test(NAME ocx_demo
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/demo_test.sh $<TARGET_FILE:ocx>)
set_tests_properties(ocx_demo PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300)

# The web dashboard in a real browser (Playwright driving Debian's headless Chromium) against
# `ocx demo --keep`: a real exchange with real agents on loopback (root: the providers'
# sandboxes; skipped with the reason otherwise). Screenshots land in build*/web-screenshots.
add_test(NAME ocx_web_dashboard
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/web_test.sh $<TARGET_FILE:ocx> ${PROJECT_SOURCE_DIR})
set_tests_properties(ocx_web_dashboard PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 600
  ENVIRONMENT "OCX_SCREENSHOT_DIR=${CMAKE_BINARY_DIR}/web-screenshots")
