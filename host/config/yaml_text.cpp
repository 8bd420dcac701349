// Shared helpers of the YAML loaders.
#include "config/yaml_text.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <system_error>

namespace prism::config {

std::string where(std::string_view source, const YAML::Mark& mark) {
  std::string out(source);
  if (!mark.is_null()) {
    out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
  }
  return out + ": ";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      // yaml-cpp tags quoted scalars "!" and plain ones "?".
      return (node.Tag() == "!" ? "the string \"" : "\"") + node.Scalar() + "\"";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a map";
    default: return "nothing";
  }
}

namespace {
struct FileCloser {
  void operator()(std::FILE* file) const { std::fclose(file); }
};
}  // namespace

Expected<std::string> read_text_file(const std::filesystem::path& path, std::string_view what) {
  const auto fail = [&](int error) {
    return make_error(path.string() + ": cannot read " + std::string(what) + ": " +
                      std::generic_category().message(error));
  };
  std::unique_ptr<std::FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (!file) return fail(errno);
  std::string text;
  char buffer[8192];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  if (std::ferror(file.get())) return fail(errno);  // e.g. EISDIR for a directory
  return text;
}

}  // namespace prism::config
