# Unit suites for the reliability layer (host/net/reliability): RTO, ACK ranges and
# loss detection, fragmentation, ordered delivery, and a lossy-channel simulation.
prism_add_gtest(reliability_test
  SOURCES
    unit/reliability_test.cpp
    unit/reliability_fragmentation_test.cpp
    unit/reliability_channel_test.cpp
  LIBS prism-host)
