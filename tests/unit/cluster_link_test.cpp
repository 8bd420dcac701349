// The envelope a topic message travels in between nodes (cluster_link.hpp, protocol.md
// §7.4): what one node encodes another decodes, the except named with its node, and
// anything else on a topic channel refused rather than delivered.
#include <gtest/gtest.h>

#include <string>

#include "cluster/cluster_link.hpp"

namespace prism::cluster {
namespace {

std::span<const uint8_t> bytes(std::string_view s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

TEST(ClusterEnvelope, AMessageRoundTripsWithItsPayloadBytesAsTheyWere) {
  const std::string payload("line one\nline two\0binary", 24);
  const std::string wire = ClusterLink::encode("inc-1", 1251, "", bytes(payload));
  ClusterLink::Decoded d;
  ASSERT_TRUE(ClusterLink::decode(wire, &d));
  EXPECT_EQ(d.incarnation, "inc-1");
  EXPECT_EQ(d.packet_id, 1251u);
  EXPECT_EQ(d.except_session, 0u);
  EXPECT_EQ(d.except_node, "");
  EXPECT_EQ(d.payload, payload);
}

TEST(ClusterEnvelope, TheExceptNamesASessionAndItsNode) {
  const std::string wire = ClusterLink::encode("inc-1", 7, "36028797018963969 node-b", bytes("delta"));
  ClusterLink::Decoded d;
  ASSERT_TRUE(ClusterLink::decode(wire, &d));
  EXPECT_EQ(d.except_session, 36028797018963969u);
  EXPECT_EQ(d.except_node, "node-b");
  EXPECT_EQ(d.payload, "delta");
}

TEST(ClusterEnvelope, WhatNoNodeWroteIsRefused) {
  ClusterLink::Decoded d;
  for (const std::string bad : {"", "no newline", "\n1\n\npayload", "inc\nx\n\npayload", "inc\n1\npayload",
                                "inc\n1\nnot-a-number node\npayload", "inc\n1\n12\npayload",
                                "inc\n1\n12 \npayload", "inc\n99999999999\n\npayload"}) {
    EXPECT_FALSE(ClusterLink::decode(bad, &d)) << bad;
  }
}

}  // namespace
}  // namespace prism::cluster
