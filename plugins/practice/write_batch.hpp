// WriteBatch: builds the prism_write_t array of one store_apply call. The C structs point
// at bytes, so the batch owns every string they point at (a deque keeps them in place).
#pragma once

#include <prism/plugin.h>

#include <deque>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prism::practice {

class WriteBatch {
 public:
  void put(std::string_view collection, std::string_view key, std::string value, int64_t expected) {
    prism_write_t w{};
    w.kind = PRISM_WRITE_PUT;
    w.collection = keep(collection);
    w.key = keep(key);
    w.value = keep(std::move(value));
    w.expected_version = expected;
    writes_.push_back(w);
  }
  void remove(std::string_view collection, std::string_view key, int64_t expected) {
    prism_write_t w{};
    w.kind = PRISM_WRITE_DELETE;
    w.collection = keep(collection);
    w.key = keep(key);
    w.expected_version = expected;
    writes_.push_back(w);
  }
  void submit(std::string_view board, std::string_view owner, int64_t score, std::string_view metadata) {
    prism_write_t w{};
    w.kind = PRISM_WRITE_SUBMIT;
    w.board = keep(board);
    w.entry.owner = keep(owner);
    w.entry.score = score;
    w.entry.metadata = keep(metadata);
    writes_.push_back(w);
  }

  std::span<const prism_write_t> writes() const { return writes_; }
  bool has_submits() const {
    for (const auto& w : writes_) {
      if (w.kind == PRISM_WRITE_SUBMIT) return true;
    }
    return false;
  }

 private:
  prism_bytes_t keep(std::string_view text) { return keep(std::string(text)); }
  prism_bytes_t keep(std::string&& text) {
    const std::string& s = strings_.emplace_back(std::move(text));
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
  }

  std::deque<std::string> strings_;  // never reallocated: the writes point into it
  std::vector<prism_write_t> writes_;
};

}  // namespace prism::practice
