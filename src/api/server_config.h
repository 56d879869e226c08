// The exchange server's configuration: a TOML file (docs/formats/config.md) read into
// ServerConfig, and the checks that keep its values in range.
//
// Loading and validating are separate steps so that command-line overrides can be applied
// in between: Load/Parse check syntax, key names and types (and that integers fit their
// fields); ValidateServerConfig checks ranges and combinations. The server must call
// ValidateServerConfig on the final config before using it.
//
// toml++ reports syntax errors by throwing; the exception is caught here and becomes an
// InvalidArgument with file:line:column, so nothing is thrown past this module.
// Thread-safe: free functions with no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace ocx::api {

struct ServerConfig {
  // Fields in the order of the original interface (designated initializers depend on it);
  // the TOML table each comes from is in docs/formats/config.md.
  std::string listen_address = "127.0.0.1";  // [server]
  uint16_t port = 8080;                      // [server] 0: the OS picks one.
  std::string data_dir = "ocx-data";         // [server]
  int io_threads = 2;                        // [server] 1..64
  std::string tls_cert_file;                 // [tls] cert_file. Both or neither.
  std::string tls_key_file;                  // [tls] key_file.
  size_t header_bytes_max = 16 * 1024;       // [limits]
  size_t body_bytes_max = 1 << 20;           // [limits]
  size_t blob_bytes_max = 64 << 20;          // [limits]
  size_t ws_message_bytes_max = 64 * 1024;   // [limits]
  size_t ws_outbound_messages_max = 4096;    // [limits] Per connection; then dropped.
  size_t connections_max = 10'000;           // [server]
  double rate_per_second = 2000;             // [limits] Per account.
  double rate_burst = 4000;                  // [limits]
  double signup_rate_per_second = 5;         // [limits] Per IP, unauthenticated calls.
  double signup_rate_burst = 20;             // [limits]
  bool allow_signup = true;                  // [accounts]
  uint64_t snapshot_every = 100'000;         // [core] Commands between snapshots.
  int64_t tick_interval_ms = 1000;           // [core]
  int64_t idle_timeout_s = 60;               // [server] HTTP keep-alive idle.
  std::string log_level = "info";            // [log] level: trace debug info warn error off
  std::string log_file;                      // [log] file. Empty: stderr.
  // [web] dir: the built dashboard (web/dist). Empty: this checkout's web/dist.
  std::string web_dir;
  // Added by the boundary work (docs/formats/config.md says what each bounds).
  size_t connections_per_ip_max = 256;        // [server] Open connections from one address.
  size_t agent_connections_reserved = 1000;   // [server] Past connections_max, for /v1/agent.
  double anonymous_rate_per_second = 200;     // [limits] Per IP: requests without a token,
  double anonymous_rate_burst = 400;          // [limits] anonymous stream messages.
  size_t ws_outbound_bytes_max = 8 << 20;     // [limits] Per connection; then dropped.
  int64_t stream_idle_s = 60;                 // [limits] Anonymous stream without channels.
  uint64_t blob_quota_bytes = uint64_t{1} << 30;  // [blobs] Per account.
  uint64_t blob_disk_free_min_bytes = 128 << 20;  // [blobs] Uploads stop below this.
  int64_t blob_grace_s = 86'400;              // [blobs] Unreferenced blobs kept this long.
  int64_t blob_gc_interval_s = 600;           // [blobs] Between garbage collections.

  bool operator==(const ServerConfig&) const = default;
};

// Named bound on the size of a configuration file that LoadServerConfig reads.
inline constexpr size_t kServerConfigFileBytesMax = 1 << 20;

// Reads and parses the file at `path`. Missing keys keep their defaults; unknown tables or
// keys, and values of the wrong type, are InvalidArgument naming the key
// ("ocx.toml:3:1: unknown key server.prot"). A file that cannot be read: the errno's status
// (NotFound, PermissionDenied, ...). Does not validate ranges: see ValidateServerConfig.
absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path);
// The same for TOML text; `source_name` (a file name) starts error messages.
absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view toml_text,
                                               std::string_view source_name);
// Ranges, TLS files both or neither, log level names. InvalidArgument whose message names
// the key as in the file, e.g. "server.io_threads must be in 1..64, not 0".
absl::Status ValidateServerConfig(const ServerConfig& config);

// A complete configuration file with every key at its default, with comments: what
// `ocx exchange --print-config` would show, and the example in docs/formats/config.md.
std::string ExampleServerConfigToml();

}  // namespace ocx::api
