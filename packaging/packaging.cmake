# The Debian packages (DESIGN.md §9), built by CPack from the install() rules below:
#   prism             prismd, prismctl, the bundled plugins, /etc/prism, the systemd unit
#   prism-plugin-sdk  prism/plugin.h, prism/plugin.hpp and the PrismPluginSDK CMake package
# `make deb` writes build/prism_<version>_amd64.deb and build/prism-plugin-sdk_<version>_amd64.deb;
# tests/package/deb_test.sh installs, drives and purges them. Included last by the
# top-level CMakeLists.txt, so every target it installs already exists.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(PRISM_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})
set(PRISM_PKG_OUT ${CMAKE_BINARY_DIR}/packaging)
file(MAKE_DIRECTORY ${PRISM_PKG_OUT}/prism ${PRISM_PKG_OUT}/sdk)
set(PRISM_PKG_MAINTAINER "Prism Maintainers <prism@example.org>")
string(TIMESTAMP PRISM_PKG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)  # honours SOURCE_DATE_EPOCH
string(TIMESTAMP PRISM_PKG_YEAR "%Y" UTC)
set(PRISM_PKG_VERSION ${PROJECT_VERSION})

# Directories the package creates are 0755 whatever the umask of the one who builds it.
set(prism_dir_perms OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
    WORLD_READ WORLD_EXECUTE)
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS ${prism_dir_perms})
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS ${prism_dir_perms})

# Documentation files over 4 kB are gzipped (Debian policy 12.3), with -n so the
# package does not change with the build time.
function(prism_pkg_gzip src dest)
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
  execute_process(COMMAND gzip -9 -n -c ${src} OUTPUT_FILE ${dest} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "packaging: gzip ${src} failed: ${rc}")
  endif()
endfunction()

# ---- prism: the server ----------------------------------------------------------------
install(TARGETS prismd prismctl RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT server)

# Every plugin built under plugins/ (MODULE libraries), however many are added there.
function(prism_pkg_collect_plugins dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  set(found "")
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    if(type STREQUAL "MODULE_LIBRARY")
      list(APPEND found ${t})
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    prism_pkg_collect_plugins(${sub} sub_found)
    list(APPEND found ${sub_found})
  endforeach()
  set(${out} ${found} PARENT_SCOPE)
endfunction()
prism_pkg_collect_plugins(${PROJECT_SOURCE_DIR}/plugins PRISM_BUNDLED_PLUGINS)
if(PRISM_BUNDLED_PLUGINS)
  install(TARGETS ${PRISM_BUNDLED_PLUGINS}
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/prism/plugins COMPONENT server)
endif()

# /etc/prism: etc/prism.yaml already names the installed paths (state_dir /var/lib/prism,
# plugins.dir /usr/lib/prism/plugins, plugins.config_dir /etc/prism/plugins.d); the
# package turns on its commented admin.token_file line, pointing at the token postinst
# creates, /etc/prism/admin.token (root:prism, 0640).
set(prism_src_config ${PROJECT_SOURCE_DIR}/etc/prism.yaml)
set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${prism_src_config})
file(READ ${prism_src_config} prism_config_text)
string(REPLACE "  # token_file: /etc/prism/admin.token" "  token_file: /etc/prism/admin.token"
  prism_config_text "${prism_config_text}")
if(NOT prism_config_text MATCHES "\n  token_file: /etc/prism/admin.token")
  message(FATAL_ERROR "etc/prism.yaml lost its '# token_file: /etc/prism/admin.token' line, "
                      "which the package turns on")
endif()
file(CONFIGURE OUTPUT ${PRISM_PKG_OUT}/prism/prism.yaml CONTENT "${prism_config_text}" @ONLY)
install(FILES ${PRISM_PKG_OUT}/prism/prism.yaml DESTINATION /etc/prism COMPONENT server)

file(GLOB prism_plugin_configs ${PROJECT_SOURCE_DIR}/etc/plugins.d/*.yaml)
list(SORT prism_plugin_configs)
install(FILES ${prism_plugin_configs} DESTINATION /etc/prism/plugins.d COMPONENT server)

# Every file under /etc is a conffile: dpkg keeps the administrator's edits on upgrade.
set(prism_conffiles "/etc/prism/prism.yaml\n")
foreach(f IN LISTS prism_plugin_configs)
  get_filename_component(name ${f} NAME)
  string(APPEND prism_conffiles "/etc/prism/plugins.d/${name}\n")
endforeach()
file(CONFIGURE OUTPUT ${PRISM_PKG_OUT}/prism/conffiles CONTENT "${prism_conffiles}")

install(FILES ${PRISM_PKG_DIR}/prismd.service DESTINATION /lib/systemd/system COMPONENT server)

configure_file(${PRISM_PKG_DIR}/copyright.in ${PRISM_PKG_OUT}/prism/copyright @ONLY)
configure_file(${PRISM_PKG_DIR}/changelog.in ${PRISM_PKG_OUT}/changelog @ONLY)
# A native package (version without a Debian revision): lintian wants its changelog as
# changelog.gz, not changelog.Debian.gz (tag wrong-name-for-changelog-of-native-package).
prism_pkg_gzip(${PRISM_PKG_OUT}/changelog ${PRISM_PKG_OUT}/changelog.gz)
prism_pkg_gzip(${PROJECT_SOURCE_DIR}/docs/operations.md ${PRISM_PKG_OUT}/prism/operations.md.gz)
prism_pkg_gzip(${PROJECT_SOURCE_DIR}/docs/security.md ${PRISM_PKG_OUT}/prism/security.md.gz)
prism_pkg_gzip(${PROJECT_SOURCE_DIR}/README.md ${PRISM_PKG_OUT}/prism/README.md.gz)
install(FILES
    ${PRISM_PKG_OUT}/prism/copyright ${PRISM_PKG_OUT}/changelog.gz
    ${PRISM_PKG_OUT}/prism/README.md.gz ${PRISM_PKG_OUT}/prism/operations.md.gz
    ${PRISM_PKG_OUT}/prism/security.md.gz
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/prism COMPONENT server)

# ---- prism-plugin-sdk: headers and the CMake package ------------------------------------
install(FILES
    ${PROJECT_SOURCE_DIR}/plugin-sdk/include/prism/plugin.h
    ${PROJECT_SOURCE_DIR}/plugin-sdk/include/prism/plugin.hpp
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/prism COMPONENT sdk)

# Header-only, so the package lives under share/ and fits any architecture's compiler.
set(prism_sdk_cmake_dir ${CMAKE_INSTALL_DATADIR}/cmake/PrismPluginSDK)
set_target_properties(prism-plugin-sdk PROPERTIES EXPORT_NAME sdk)
install(TARGETS prism-plugin-sdk EXPORT PrismPluginSDKTargets COMPONENT sdk)
install(EXPORT PrismPluginSDKTargets NAMESPACE PrismPluginSDK::
  DESTINATION ${prism_sdk_cmake_dir} COMPONENT sdk)
configure_package_config_file(${PRISM_PKG_DIR}/sdk/PrismPluginSDKConfig.cmake.in
  ${PRISM_PKG_OUT}/sdk/PrismPluginSDKConfig.cmake
  INSTALL_DESTINATION ${prism_sdk_cmake_dir})
write_basic_package_version_file(${PRISM_PKG_OUT}/sdk/PrismPluginSDKConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES
    ${PRISM_PKG_OUT}/sdk/PrismPluginSDKConfig.cmake
    ${PRISM_PKG_OUT}/sdk/PrismPluginSDKConfigVersion.cmake
    ${PROJECT_SOURCE_DIR}/plugin-sdk/cmake/PrismPlugin.cmake
    ${PROJECT_SOURCE_DIR}/plugin-sdk/cmake/prism-plugin.map
  DESTINATION ${prism_sdk_cmake_dir} COMPONENT sdk)

configure_file(${PRISM_PKG_DIR}/copyright.in ${PRISM_PKG_OUT}/sdk/copyright @ONLY)
prism_pkg_gzip(${PROJECT_SOURCE_DIR}/docs/plugin-api.md ${PRISM_PKG_OUT}/sdk/plugin-api.md.gz)
install(FILES ${PRISM_PKG_OUT}/sdk/copyright ${PRISM_PKG_OUT}/changelog.gz
    ${PRISM_PKG_OUT}/sdk/plugin-api.md.gz
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/prism-plugin-sdk COMPONENT sdk)
install(FILES
    ${PROJECT_SOURCE_DIR}/examples/hello-plugin/CMakeLists.txt
    ${PROJECT_SOURCE_DIR}/examples/hello-plugin/hello.cpp
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/prism-plugin-sdk/examples/hello-plugin COMPONENT sdk)

# ---- CPack -------------------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME prism)
set(CPACK_PACKAGE_VENDOR "Prism")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT ${PRISM_PKG_MAINTAINER})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL server sdk)
set(CPACK_COMPONENTS_GROUPING IGNORE)
set(CPACK_DEB_COMPONENT_INSTALL ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER ${PRISM_PKG_MAINTAINER})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

set(CPACK_DEBIAN_SERVER_PACKAGE_NAME prism)
set(CPACK_DEBIAN_SERVER_PACKAGE_SECTION net)
# adduser: postinst creates the prism system user. dpkg-shlibdeps adds the libraries.
set(CPACK_DEBIAN_SERVER_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_SERVER_PACKAGE_SUGGESTS "prism-plugin-sdk")
set(CPACK_DEBIAN_SERVER_DESCRIPTION "real-time UDP broker for game and app backends
Prism is a real-time broker: prismd owns an encrypted, reliable transport
over UDP and hands each request to a service plugin, a shared object loaded
through a stable C ABI.

This package contains prismd (run by the prismd systemd unit as the prism
user), the prismctl admin command, the bundled plugins in
/usr/lib/prism/plugins and the configuration in /etc/prism. Installing it
creates the server key in /var/lib/prism and an admin token in
/etc/prism/admin.token.")
set(CPACK_DEBIAN_SERVER_PACKAGE_CONTROL_EXTRA
  ${PRISM_PKG_OUT}/prism/conffiles
  ${PRISM_PKG_DIR}/debian/prism/postinst
  ${PRISM_PKG_DIR}/debian/prism/prerm
  ${PRISM_PKG_DIR}/debian/prism/postrm)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME prism-plugin-sdk)
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_SDK_PACKAGE_RECOMMENDS "cmake (>= 3.20), g++ (>= 4:12)")
set(CPACK_DEBIAN_SDK_DESCRIPTION "plugin SDK for the Prism real-time broker
Headers and CMake package for building Prism service plugins outside the
Prism source tree: prism/plugin.h (the C ABI, the only stable contract
between prismd and a plugin) and prism/plugin.hpp (a header-only C++20
wrapper).

find_package(PrismPluginSDK) provides the imported target
PrismPluginSDK::sdk and prism_add_plugin(), which builds a plugin .so
exporting only its entry symbol. An example is in
/usr/share/doc/prism-plugin-sdk/examples/hello-plugin.")

include(CPack)
