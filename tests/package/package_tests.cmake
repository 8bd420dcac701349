# deb_install (tests/package/deb_test.sh): builds the .deb packages from this tree,
# installs them, drives the installed prismd with prismctl, loads an out-of-tree plugin
# built against the installed SDK, then purges them. It needs root and dpkg and exits 77
# (skipped) without them. Only the plain tree is packaged, so sanitizer trees leave it
# out. RUN_SERIAL: while installed, /etc/prism/prism.yaml is the system config (prismctl's
# fallback) and prismd holds UDP port 7777.
if(NOT PRISM_SANITIZE AND NOT PRISM_FUZZ)
  add_test(NAME deb_install
    COMMAND ${PROJECT_SOURCE_DIR}/tests/package/deb_test.sh ${CMAKE_BINARY_DIR} ${PROJECT_SOURCE_DIR})
  set_tests_properties(deb_install PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 900
    RUN_SERIAL TRUE
    LABELS package)
endif()
