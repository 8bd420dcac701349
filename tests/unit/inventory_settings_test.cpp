// The inventory service's settings parser (plugins/inventory/settings.hpp): defaults,
// both YAML styles the host may emit, and every refusal naming its key.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "settings.hpp"

namespace prism::inventory {
namespace {

std::string refusal_of(std::string_view yaml) {
  try {
    parse_settings(yaml);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(InventorySettings, EmptyTextGivesDefaultsThatFitOneDocument) {
  const Settings s = parse_settings("");
  EXPECT_EQ(s.max_items_per_player, 1000u);
  EXPECT_EQ(s.max_metadata_bytes, 512u);
  EXPECT_EQ(s.op_retention, 1000u);
  EXPECT_LE(s.worst_case_record_bytes(), kMaxDocumentBytes);
}

TEST(InventorySettings, BlockStyleIsRead) {
  const Settings s = parse_settings("max_items_per_player: 20\nmax_metadata_bytes: 64\nop_retention: 5\n");
  EXPECT_EQ(s.max_items_per_player, 20u);
  EXPECT_EQ(s.max_metadata_bytes, 64u);
  EXPECT_EQ(s.op_retention, 5u);
}

TEST(InventorySettings, FlowStyleAndQuotedValuesAreRead) {
  const Settings s = parse_settings("{max_items_per_player: 7, op_retention: \"3\"}");
  EXPECT_EQ(s.max_items_per_player, 7u);
  EXPECT_EQ(s.op_retention, 3u);
  EXPECT_EQ(s.max_metadata_bytes, 512u);
  EXPECT_EQ(parse_settings("{}").max_items_per_player, 1000u);
}

TEST(InventorySettings, UnknownKeyIsRefusedListingTheKnownOnes) {
  const std::string why = refusal_of("max_items: 5");
  EXPECT_NE(why.find("max_items: unknown key"), std::string::npos) << why;
  EXPECT_NE(why.find("max_items_per_player"), std::string::npos) << why;
}

TEST(InventorySettings, NonIntegerAndOutOfRangeValuesAreRefused) {
  EXPECT_NE(refusal_of("op_retention: lots").find("op_retention: expected a non-negative integer"),
            std::string::npos);
  EXPECT_NE(refusal_of("op_retention: -1").find("op_retention"), std::string::npos);
  EXPECT_NE(refusal_of("max_items_per_player: 0").find("max_items_per_player: 0 is outside 1..100000"),
            std::string::npos);
  EXPECT_NE(refusal_of("max_metadata_bytes: {a: 1}").find("max_metadata_bytes"), std::string::npos);
  EXPECT_NE(refusal_of("op_retention: 5\nop_retention: 6").find("given twice"), std::string::npos);
}

TEST(InventorySettings, SettingsThatCouldOverflowAPlayerDocumentAreRefused) {
  const std::string why = refusal_of("max_items_per_player: 1000\nmax_metadata_bytes: 4096");
  EXPECT_NE(why.find("document limit"), std::string::npos) << why;
}

}  // namespace
}  // namespace prism::inventory
