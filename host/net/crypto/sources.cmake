# The secure transport's cryptographic building blocks (DESIGN.md §3), compiled into
# prism-wire so the host and the clients share them; every primitive comes from Crypto++.
# GLOBAL: the imported target must resolve for consumers outside host/ (tests, clients).
pkg_check_modules(CRYPTOPP REQUIRED IMPORTED_TARGET GLOBAL libcrypto++)
target_sources(prism-wire PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/noise_nk.cpp
  ${CMAKE_CURRENT_LIST_DIR}/packet_protection.cpp
  ${CMAKE_CURRENT_LIST_DIR}/retry_cookie.cpp
  ${CMAKE_CURRENT_LIST_DIR}/secure_random.cpp
  ${CMAKE_CURRENT_LIST_DIR}/replay_window.cpp
  ${CMAKE_CURRENT_LIST_DIR}/key_file.cpp)
target_link_libraries(prism-wire PUBLIC PkgConfig::CRYPTOPP)
