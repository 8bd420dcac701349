# Unit tests for service login: token hashes, plugins.d/*.yaml settings and the LOGIN guard.
prism_add_gtest(login_test SOURCES unit/login_test.cpp LIBS prism-host)
