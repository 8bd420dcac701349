# `make fuzz` runs the libFuzzer targets for minutes; here a short fixed run of each
# proves they still build and find nothing quickly. The targets need clang and live in
# their own tree (PRISM_FUZZ_BUILD_DIR, made by `make build-fuzz`, which `make test`
# builds first); this test never builds them, and is skipped when that tree is missing.
set(PRISM_FUZZ_BUILD_DIR ${PROJECT_SOURCE_DIR}/build-fuzz CACHE PATH
  "The clang -DPRISM_FUZZ=ON build tree whose fuzz targets the fuzz_smoke test runs")

# The fuzz targets carry ASan and UBSan already: running them again from the sanitizer
# tree would only repeat the same inputs.
if(NOT PRISM_SANITIZE)
  add_test(NAME fuzz_smoke
    COMMAND ${CMAKE_CURRENT_LIST_DIR}/run_fuzz.sh ${PRISM_FUZZ_BUILD_DIR} SMOKE)
  set_tests_properties(fuzz_smoke PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77)
endif()
