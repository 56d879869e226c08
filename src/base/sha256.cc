#include "src/base/sha256.h"

#include <unistd.h>

#include <cerrno>
#include <vector>

#include "src/base/assert.h"
#include "src/base/errno_status.h"
#include "src/base/hex.h"

namespace ocx::base {

Sha256::Sha256() {
  OCX_ASSERT_MSG(sodium_init() >= 0, "libsodium failed to initialize");
  crypto_hash_sha256_init(&state_);
}

void Sha256::Update(std::string_view bytes) {
  crypto_hash_sha256_update(&state_, reinterpret_cast<const unsigned char*>(bytes.data()),
                            bytes.size());
}

std::string Sha256::FinishHex() {
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&state_, digest);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

std::string Sha256Hex(std::string_view bytes) {
  Sha256 hash;
  hash.Update(bytes);
  return hash.FinishHex();
}

absl::StatusOr<std::string> Sha256HexOfFd(int fd) {
  Sha256 hash;
  std::vector<char> buffer(1 << 16);
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read");
    }
    if (n == 0) break;
    hash.Update(std::string_view(buffer.data(), static_cast<size_t>(n)));
  }
  return hash.FinishHex();
}

bool IsSha256Hex(std::string_view text) { return IsLowerHex(text, 64); }

}  // namespace ocx::base
