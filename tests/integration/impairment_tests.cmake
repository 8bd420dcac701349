# The UDP impairment proxy that integration tests put between a client and a real
# server (loss, duplication, reordering, delay), and the test that proves it works.
prism_add_gtest(impairment_proxy_test SOURCES integration/impairment_proxy_test.cpp integration/impairment_proxy.cpp LIBS Threads::Threads)
