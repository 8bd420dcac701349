# The UDP impairment proxy that integration tests put between a client and a real
# server (loss, duplication, reordering, delay), and the test that proves it works.
prism_add_gtest(impairment_proxy_test SOURCES integration/impairment_proxy_test.cpp integration/impairment_proxy.cpp LIBS Threads::Threads)

# The secure transport end to end through the proxy: login, NAT rebinding, 10 000 ordered
# requests over a lossy path, floods from many ports.
prism_add_gtest(transport_test
  SOURCES integration/transport_test.cpp integration/prismd_process.cpp
          integration/impairment_proxy.cpp
  LIBS prism-client prism-host Threads::Threads)
add_dependencies(transport_test prismd prismctl prism-plugin-default)
