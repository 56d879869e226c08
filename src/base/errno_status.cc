#include "src/base/errno_status.h"

#include <string>

namespace ocx::base {

absl::Status ErrnoStatus(int error, std::string_view what) {
  return absl::ErrnoToStatus(error, absl::string_view(what.data(), what.size()));
}

absl::Status ErrnoStatus(int error, std::string_view operation, std::string_view path) {
  std::string what(operation);
  what += ' ';
  what += path;
  return ErrnoStatus(error, what);
}

}  // namespace ocx::base
