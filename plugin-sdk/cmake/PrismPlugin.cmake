# prism_add_plugin(<target> <output-name> [OUTPUT_DIRECTORY <dir>] SOURCES <src>...)
#
# Builds a plugin: a MODULE library named <output-name>.so (no "lib" prefix) that links
# only prism-plugin-sdk, exports nothing but prism_plugin_entry (hidden visibility plus
# the version script prism-plugin.map beside this file), and lands in
# ${PRISM_PLUGIN_OUTPUT_DIR} (or OUTPUT_DIRECTORY) so prismd can be pointed at one
# directory. Add header-only dependencies with target_link_libraries afterwards.

function(prism_add_plugin target output_name)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "OUTPUT_DIRECTORY" "SOURCES")
  if(NOT arg_SOURCES)
    message(FATAL_ERROR "prism_add_plugin(${target}): SOURCES is required")
  endif()
  if(arg_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "prism_add_plugin(${target}): unexpected arguments ${arg_UNPARSED_ARGUMENTS}")
  endif()
  set(output_dir ${arg_OUTPUT_DIRECTORY})
  if(NOT output_dir)
    set(output_dir ${PRISM_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT output_dir)
    set(output_dir ${CMAKE_BINARY_DIR}/plugins)
  endif()

  set(exports_map ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/prism-plugin.map)
  add_library(${target} MODULE ${arg_SOURCES})
  target_link_libraries(${target} PRIVATE prism-plugin-sdk)
  set_target_properties(${target} PROPERTIES
    OUTPUT_NAME ${output_name}
    PREFIX ""
    SUFFIX ".so"
    LIBRARY_OUTPUT_DIRECTORY ${output_dir}
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS ${exports_map})
  target_link_options(${target} PRIVATE -Wl,--version-script=${exports_map})
  # A plugin resolves nothing from prismd by symbol (it only calls through the host
  # table), so any undefined symbol is a bug worth failing the link for. Sanitizer
  # runtimes are resolved from the executable at load time, so skip the check there.
  if(NOT PRISM_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
