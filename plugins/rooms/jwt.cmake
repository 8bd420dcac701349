# rooms-jwt: JWT verification for rooms.auth (jwt.hpp), a static library apart from the
# plugin so unit tests can link it. Crypto++ and nlohmann-json only: no host target.

# The host's PkgConfig::CRYPTOPP (host/base) is GLOBAL and would do, but a plugin must build
# without the host's CMake, so look Crypto++ up here when nothing has yet.
if(NOT TARGET PkgConfig::CRYPTOPP)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(CRYPTOPP REQUIRED IMPORTED_TARGET GLOBAL libcrypto++)
endif()
if(NOT TARGET nlohmann_json::nlohmann_json)
  find_package(nlohmann_json REQUIRED)
endif()

add_library(rooms-jwt STATIC ${CMAKE_CURRENT_LIST_DIR}/jwt.cpp)
target_include_directories(rooms-jwt PUBLIC ${CMAKE_CURRENT_LIST_DIR})
# Crypto++ and nlohmann stay out of jwt.hpp, so only this library's own code needs them.
target_link_libraries(rooms-jwt PRIVATE PkgConfig::CRYPTOPP nlohmann_json::nlohmann_json)
# Linked into the plugin's .so: position-independent, and none of its symbols exported.
set_target_properties(rooms-jwt PROPERTIES
  POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
