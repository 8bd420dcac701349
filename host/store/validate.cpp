// Shared argument checks for the storage backends (validate.hpp).
#include "store/validate.hpp"

#include <string>

namespace prism::store {
namespace {

Status invalid(std::string message) { return {Code::kInvalidArgument, std::move(message)}; }

Status check_text(std::string_view what, std::string_view text, size_t max, bool may_be_empty) {
  if (text.empty() && !may_be_empty) return invalid(std::string(what) + " is empty");
  if (text.size() > max) {
    return invalid(std::string(what) + " is " + std::to_string(text.size()) +
                   " bytes, more than " + std::to_string(max));
  }
  if (text.find('\0') != std::string_view::npos) {
    return invalid(std::string(what) + " contains a NUL byte");
  }
  return {};
}

Status check_size(std::string_view what, std::string_view bytes, size_t max) {
  if (bytes.size() > max) {
    return invalid(std::string(what) + " is " + std::to_string(bytes.size()) +
                   " bytes, more than " + std::to_string(max));
  }
  return {};
}

}  // namespace

Status check_name(std::string_view what, std::string_view name) {
  return check_text(what, name, kMaxNameSize, false);
}

Status check_prefix(std::string_view what, std::string_view prefix) {
  return check_text(what, prefix, kMaxNameSize, true);
}

Status check_value(std::string_view value) { return check_size("value", value, kMaxValueSize); }

Status check_metadata(std::string_view metadata) {
  return check_size("metadata", metadata, kMaxMetadataSize);
}

Status check_status(std::string_view status) {
  return check_size("status", status, kMaxStatusSize);
}

Status check_limit(uint32_t limit) {
  if (limit == 0 || limit > kMaxListLimit) {
    return invalid("limit " + std::to_string(limit) + " is outside 1.." +
                   std::to_string(kMaxListLimit));
  }
  return {};
}

Status check_ttl(std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) return invalid("ttl " + std::to_string(ttl.count()) + "ms is not positive");
  return {};
}

Status check_spec(const BoardSpec& spec) {
  if (Status s = check_name("board", spec.board); !s.ok()) return s;
  if (spec.order != SortOrder::kDescending && spec.order != SortOrder::kAscending) {
    return invalid("unknown sort order " + std::to_string(static_cast<int>(spec.order)));
  }
  if (spec.op != Operator::kBest && spec.op != Operator::kSet && spec.op != Operator::kIncrement) {
    return invalid("unknown operator " + std::to_string(static_cast<int>(spec.op)));
  }
  return {};
}

Status check_entry(const Entry& entry) {
  if (Status s = check_name("owner", entry.owner); !s.ok()) return s;
  return check_metadata(entry.metadata);
}

Status check_write(const Write& write) {
  switch (write.kind) {
    case Write::Kind::kPut:
      if (Status s = check_name("collection", write.collection); !s.ok()) return s;
      if (Status s = check_name("key", write.key); !s.ok()) return s;
      return check_value(write.value);
    case Write::Kind::kDelete:
      if (Status s = check_name("collection", write.collection); !s.ok()) return s;
      return check_name("key", write.key);
    case Write::Kind::kCounterAdd:
      return check_name("counter", write.counter);
    case Write::Kind::kSubmit:
      if (Status s = check_name("board", write.board); !s.ok()) return s;
      return check_entry(write.entry);
  }
  return invalid("unknown write kind " + std::to_string(static_cast<int>(write.kind)));
}

Status check_batch(const std::vector<Write>& writes) {
  for (size_t i = 0; i < writes.size(); ++i) {
    if (Status s = check_write(writes[i]); !s.ok()) return batch_error(i, std::move(s));
  }
  return {};
}

Status batch_error(size_t index, Status status) {
  status.message = "write " + std::to_string(index) + ": " + status.message;
  return status;
}

}  // namespace prism::store
