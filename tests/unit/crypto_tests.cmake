# Unit tests for the secure transport's building blocks (host/net/crypto): the Noise NK
# handshake, packet protection, retry cookies, key files, and the replay window.
prism_add_gtest(handshake_test SOURCES unit/handshake_test.cpp LIBS prism-host)
prism_add_gtest(crypto_test SOURCES unit/crypto_test.cpp LIBS prism-host)
prism_add_gtest(replay_window_test SOURCES unit/replay_window_test.cpp LIBS prism-host)
