// Private plugin copies (plugin_copy.hpp): what a killed process left is swept by the
// next one on the same base, and a live process's directory never is.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "plugins/plugin_copy.hpp"
#include "temp_dir_test.hpp"

namespace prism::plugins {
namespace {

namespace fs = std::filesystem;

class PluginCopyTest : public prism::testing::TempDirTest {};

TEST_F(PluginCopyTest, ADirectoryWhoseOwnerIsGoneIsSweptByTheFirstCopy) {
  const fs::path base = dir_ / "copies";
  // As a SIGKILLed prismd leaves it: a copy in a directory nobody holds a lock on.
  fs::create_directories(base / "prism-plugins-dead01");
  std::ofstream(base / "prism-plugins-dead01" / "default-1.so") << "old bytes";
  fs::create_directories(base / "unrelated");
  const fs::path original = write("p.so", "plugin bytes");

  PrivateCopies copies(base);
  auto copy = copies.copy(original);
  ASSERT_TRUE(copy) << copy.error();
  EXPECT_EQ(copies.swept(), 1u);
  EXPECT_FALSE(fs::exists(base / "prism-plugins-dead01"));
  EXPECT_TRUE(fs::exists(base / "unrelated"));  // only prism-plugins-* is ours to remove
  EXPECT_TRUE(fs::exists(copy->path));
}

TEST_F(PluginCopyTest, ALiveOwnersDirectoryIsNotSwept) {
  const fs::path base = dir_ / "copies";
  const fs::path original = write("p.so", "plugin bytes");
  PrivateCopies first(base);
  auto a = first.copy(original);
  ASSERT_TRUE(a) << a.error();

  // A second process on the same state_dir (here: a second owner in this one; flock
  // locks belong to the open file, so it cannot take the first's lock either).
  PrivateCopies second(base);
  auto b = second.copy(original);
  ASSERT_TRUE(b) << b.error();
  EXPECT_EQ(second.swept(), 0u);
  EXPECT_TRUE(fs::exists(a->path));
  EXPECT_NE(first.dir(), second.dir());
}

TEST_F(PluginCopyTest, TheDirectoryGoesWithItsOwner) {
  const fs::path base = dir_ / "copies";
  const fs::path original = write("p.so", "plugin bytes");
  fs::path dir;
  {
    PrivateCopies copies(base);
    ASSERT_TRUE(copies.copy(original));
    dir = copies.dir();
    EXPECT_TRUE(fs::exists(dir));
  }
  EXPECT_FALSE(fs::exists(dir));
}

}  // namespace
}  // namespace prism::plugins
