# The reliability layer's building blocks (RTO, ACK ranges, fragmentation, ordered
# delivery), compiled into prism-wire (the client shares them). Included from host/CMakeLists.txt.
target_sources(prism-wire PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/ack_ranges.cpp
  ${CMAKE_CURRENT_LIST_DIR}/fragmentation.cpp
  ${CMAKE_CURRENT_LIST_DIR}/ordered_delivery.cpp
  ${CMAKE_CURRENT_LIST_DIR}/rtt_estimator.cpp)
