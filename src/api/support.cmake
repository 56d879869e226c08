# Support modules of the exchange's HTTP server: Prometheus metrics, token-bucket rate
# limits, the TOML configuration and the content-addressed blob store. Deliberately free of
# Boost so that they (and their tests) build quickly. Included from src/api/CMakeLists.txt.

# PkgConfig::SODIUM is an imported target of src/core's directory scope; make our own here.
if(NOT TARGET PkgConfig::SODIUM)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(SODIUM REQUIRED IMPORTED_TARGET libsodium)
endif()

add_library(ocx_api_support metrics.cc rate_limiter.cc server_config.cc blob_store.cc)
target_link_libraries(ocx_api_support
  PUBLIC
    ocx_base
    absl::status
    absl::statusor
    absl::strings
    absl::flat_hash_map
    tomlplusplus::tomlplusplus
    PkgConfig::SODIUM
    Threads::Threads
  PRIVATE
    ocx_sqlite_db)

ocx_test(ocx_api_support_test
  SOURCES metrics_test.cc rate_limiter_test.cc server_config_test.cc blob_store_test.cc
  LIBS ocx_api_support)
