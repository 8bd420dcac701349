// ELF completeness check: header, program headers and every loadable segment lie
// inside the file (a partially written or truncated .so is refused, not mapped).
#include "plugins/elf_check.hpp"

#include <elf.h>

#include <cstring>
#include <fstream>
#include <vector>

namespace prism::plugins {
namespace {

// The machine this host was built for: a plugin must match it.
#if defined(__x86_64__)
constexpr uint16_t kHostMachine = EM_X86_64;
constexpr const char* kHostMachineName = "x86-64";
#elif defined(__aarch64__)
constexpr uint16_t kHostMachine = EM_AARCH64;
constexpr const char* kHostMachineName = "aarch64";
#else
#error "add this machine's ELF e_machine value"
#endif

}  // namespace

Expected<void> check_elf_shared_object(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return make_error(std::string("cannot open: ") + std::strerror(errno));
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(file, ec);
  if (ec) return make_error("cannot stat: " + ec.message());

  Elf64_Ehdr eh{};
  if (size < sizeof eh || !in.read(reinterpret_cast<char*>(&eh), sizeof eh)) {
    return make_error("not an ELF file (shorter than an ELF header)");
  }
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return make_error("not an ELF file");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != kHostMachine) {
    return make_error(std::string("ELF file is not a 64-bit ") + kHostMachineName + " object");
  }
  if (eh.e_type != ET_DYN) return make_error("ELF file is not a shared object");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
      eh.e_phoff + uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr) > size) {
    return make_error("truncated ELF file (program headers past the end)");
  }
  if (eh.e_shoff + uint64_t{eh.e_shnum} * eh.e_shentsize > size) {
    return make_error("truncated ELF file (section headers past the end)");
  }
  std::vector<Elf64_Phdr> ph(eh.e_phnum);
  in.seekg(static_cast<std::streamoff>(eh.e_phoff));
  if (!in.read(reinterpret_cast<char*>(ph.data()),
               static_cast<std::streamsize>(ph.size() * sizeof(Elf64_Phdr)))) {
    return make_error("truncated ELF file (program headers unreadable)");
  }
  for (const auto& p : ph) {
    if (p.p_type == PT_LOAD && (p.p_offset > size || p.p_filesz > size - p.p_offset)) {
      return make_error("truncated ELF file (a loadable segment ends past the end)");
    }
  }
  return {};
}

}  // namespace prism::plugins
