// Checks that a file is a complete ELF shared object for this machine before dlopen:
// dlopen maps segments past the end of a truncated file and the host dies of SIGBUS.
#pragma once

#include <filesystem>

#include "base/expected.hpp"

namespace prism::plugins {

Expected<void> check_elf_shared_object(const std::filesystem::path& file);

}  // namespace prism::plugins
