// A checking parser of the Prometheus text exposition format (version 0.0.4), for tests
// that read prismd's /metrics or `prismctl stats`: every line must parse, a family's HELP
// and TYPE come at most once and before its samples, a family's samples are contiguous,
// and a histogram's buckets are cumulative and end in +Inf equal to its _count.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace prism::testing {

struct Sample {
  std::string name;  // as written: histogram series keep their _bucket/_sum/_count suffix
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;
  std::vector<Sample> samples;
};

struct Exposition {
  std::vector<Family> families;
  std::string error;  // "line N: why"; empty when the text is valid

  const Family* find(std::string_view name) const {
    for (const auto& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  // The value of the sample `name` whose labels include all of `labels`.
  std::optional<double> value(std::string_view name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& f : families) {
      for (const auto& s : f.samples) {
        if (s.name != name) continue;
        bool match = true;
        for (const auto& [k, v] : labels) {
          const auto it = s.labels.find(k);
          match = match && it != s.labels.end() && it->second == v;
        }
        if (match) return s.value;
      }
    }
    return std::nullopt;
  }
};

namespace detail {

inline bool metric_name_ok(std::string_view n) {
  if (n.empty()) return false;
  for (size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

inline bool label_name_ok(std::string_view n) {
  return metric_name_ok(n) && n.find(':') == std::string_view::npos;
}

inline std::optional<double> parse_value(const std::string& text) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
  return v;
}

// The family a sample name belongs to, given the families declared so far.
inline std::string family_of(const std::string& sample, const std::map<std::string, std::string>& types) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string_view s(suffix);
    if (sample.size() > s.size() && sample.ends_with(s)) {
      const std::string base = sample.substr(0, sample.size() - s.size());
      const auto it = types.find(base);
      if (it != types.end() && (it->second == "histogram" || it->second == "summary")) return base;
    }
  }
  return sample;
}

}  // namespace detail

inline Exposition parse_prometheus(std::string_view text) {
  Exposition out;
  std::map<std::string, std::string> types;
  std::set<std::string> helped, closed;
  std::string current;  // the family whose samples are being read
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  auto fail = [&](const std::string& why) {
    out.error = "line " + std::to_string(number) + ": " + why + ": " + line;
    return out;
  };
  auto family = [&](const std::string& name) -> Family& {
    for (auto& f : out.families) {
      if (f.name == name) return f;
    }
    return out.families.emplace_back(Family{name, "untyped", "", {}});
  };
  auto enter = [&](const std::string& name) {
    if (name == current) return true;
    if (closed.contains(name)) return false;  // its samples were not contiguous
    if (!current.empty()) closed.insert(current);
    current = name;
    return true;
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const bool help = line[2] == 'H';
      const std::string rest = line.substr(7);
      const size_t space = rest.find(' ');
      const std::string name = rest.substr(0, space);
      const std::string arg = space == std::string::npos ? "" : rest.substr(space + 1);
      if (!detail::metric_name_ok(name)) return fail("bad metric name");
      if (!enter(name)) return fail("family " + name + " appears twice");
      if (help) {
        if (!helped.insert(name).second) return fail("second HELP for " + name);
        family(name).help = arg;
      } else {
        static const std::set<std::string> kTypes{"counter", "gauge", "histogram", "summary", "untyped"};
        if (!kTypes.contains(arg)) return fail("unknown type");
        if (types.contains(name)) return fail("second TYPE for " + name);
        if (!family(name).samples.empty()) return fail("TYPE after samples of " + name);
        types[name] = arg;
        family(name).type = arg;
      }
      continue;
    }
    if (line[0] == '#') continue;  // any other comment
    Sample sample;
    size_t at = 0;
    while (at < line.size() && line[at] != '{' && line[at] != ' ') ++at;
    sample.name = line.substr(0, at);
    if (!detail::metric_name_ok(sample.name)) return fail("bad metric name");
    if (at < line.size() && line[at] == '{') {
      ++at;
      while (at < line.size() && line[at] != '}') {
        const size_t eq = line.find('=', at);
        if (eq == std::string::npos) return fail("label without =");
        const std::string key = line.substr(at, eq - at);
        if (!detail::label_name_ok(key)) return fail("bad label name");
        if (eq + 1 >= line.size() || line[eq + 1] != '"') return fail("label value not quoted");
        std::string value;
        size_t i = eq + 2;
        for (; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\') {
            if (++i >= line.size()) return fail("dangling escape");
            if (line[i] == 'n') value += '\n';
            else if (line[i] == '\\' || line[i] == '"') value += line[i];
            else return fail("bad escape");
          } else {
            value += line[i];
          }
        }
        if (i >= line.size()) return fail("unterminated label value");
        if (!sample.labels.emplace(key, value).second) return fail("label " + key + " twice");
        at = i + 1;
        if (at < line.size() && line[at] == ',') ++at;
      }
      if (at >= line.size()) return fail("unterminated label set");
      ++at;
    }
    if (at >= line.size() || line[at] != ' ') return fail("no value");
    const std::string rest = line.substr(at + 1);
    const std::string value_text = rest.substr(0, rest.find(' '));  // a timestamp may follow
    const auto value = detail::parse_value(value_text);
    if (!value) return fail("bad value");
    sample.value = *value;
    const std::string name = detail::family_of(sample.name, types);
    if (!enter(name)) return fail("samples of " + name + " are not together");
    family(name).samples.push_back(std::move(sample));
  }
  // Histograms: per label set (without le), buckets cumulative and +Inf == _count.
  for (const auto& f : out.families) {
    if (f.type != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::pair<double, double>> last;  // prev, +Inf
    std::map<std::map<std::string, std::string>, double> counts;
    for (const auto& s : f.samples) {
      auto key = s.labels;
      key.erase("le");
      if (s.name == f.name + "_bucket") {
        if (!s.labels.contains("le")) {
          out.error = f.name + ": bucket without le";
          return out;
        }
        auto& [prev, inf] = last.try_emplace(key, 0.0, NAN).first->second;
        if (s.value < prev) {
          out.error = f.name + ": buckets are not cumulative";
          return out;
        }
        prev = s.value;
        if (s.labels.at("le") == "+Inf") inf = s.value;
      } else if (s.name == f.name + "_count") {
        counts[key] = s.value;
      }
    }
    for (const auto& [key, c] : counts) {
      const auto it = last.find(key);
      if (it == last.end() || std::isnan(it->second.second) || it->second.second != c) {
        out.error = f.name + ": the +Inf bucket differs from _count";
        return out;
      }
    }
  }
  return out;
}

}  // namespace prism::testing
