// SHA-256 (libsodium), the one implementation: blob digests on the exchange, input checks and
// output uploads on the agent.
#pragma once

#include <sodium.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ocx::base {

// An incremental SHA-256. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  void Update(std::string_view bytes);
  // The digest as 64 lowercase hex digits. Call once.
  std::string FinishHex();

 private:
  crypto_hash_sha256_state state_;
};

// SHA-256 of `bytes` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view bytes);
// SHA-256 of what is left to read of `fd`, as 64 lowercase hex digits.
absl::StatusOr<std::string> Sha256HexOfFd(int fd);
// Whether `text` has the shape of a SHA-256 digest: 64 lowercase hex digits.
bool IsSha256Hex(std::string_view text);

}  // namespace ocx::base
