#include "src/api/server_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "src/base/errno_status.h"
#include "src/base/files.h"
#include "src/base/status.h"
#include "src/base/toml_report.h"
#include "src/base/unique_fd.h"

namespace ocx::api {
namespace {

using base::AtSource;

// Reads one value into its field. `name` is the dotted key ("server.port"); returns the
// message of an error without its location (the caller adds it), or "" when it is stored.
using FieldReader = std::function<std::string(const toml::node& node, const std::string& name)>;

std::string WrongType(const toml::node& node, const std::string& name, std::string_view want) {
  return name + " must be " + std::string(want) + ", not " + std::string(base::TomlTypeName(node));
}

FieldReader StringField(std::string* out) {
  return [out](const toml::node& node, const std::string& name) -> std::string {
    const toml::value<std::string>* value = node.as_string();
    if (value == nullptr) return WrongType(node, name, "a string");
    *out = value->get();
    return "";
  };
}

FieldReader BoolField(bool* out) {
  return [out](const toml::node& node, const std::string& name) -> std::string {
    const toml::value<bool>* value = node.as_boolean();
    if (value == nullptr) return WrongType(node, name, "a boolean");
    *out = value->get();
    return "";
  };
}

// An integer that must also fit the field's type (ranges are ValidateServerConfig's job).
template <typename T>
FieldReader IntegerField(T* out) {
  return [out](const toml::node& node, const std::string& name) -> std::string {
    const toml::value<int64_t>* value = node.as_integer();
    if (value == nullptr) return WrongType(node, name, "an integer");
    const int64_t v = value->get();
    if (!std::in_range<T>(v)) {
      return name + " is out of range: " + std::to_string(v) + " is not in " +
             std::to_string(std::numeric_limits<T>::min()) + ".." +
             std::to_string(std::numeric_limits<T>::max());
    }
    *out = static_cast<T>(v);
    return "";
  };
}

// A number: TOML integers are taken too, so that `rate_per_second = 2000` works.
FieldReader NumberField(double* out) {
  return [out](const toml::node& node, const std::string& name) -> std::string {
    if (const toml::value<double>* value = node.as_floating_point()) {
      *out = value->get();
      return "";
    }
    if (const toml::value<int64_t>* value = node.as_integer()) {
      *out = static_cast<double>(value->get());
      return "";
    }
    return WrongType(node, name, "a number");
  };
}

struct Field {
  std::string_view table;
  std::string_view key;
  FieldReader read;
};

// Every key of the file format (docs/formats/config.md), bound to `config`'s fields.
std::vector<Field> FieldsOf(ServerConfig& config) {
  return {
      {"server", "listen_address", StringField(&config.listen_address)},
      {"server", "port", IntegerField(&config.port)},
      {"server", "data_dir", StringField(&config.data_dir)},
      {"server", "io_threads", IntegerField(&config.io_threads)},
      {"server", "idle_timeout_s", IntegerField(&config.idle_timeout_s)},
      {"server", "connections_max", IntegerField(&config.connections_max)},
      {"server", "connections_per_ip_max", IntegerField(&config.connections_per_ip_max)},
      {"server", "agent_connections_reserved", IntegerField(&config.agent_connections_reserved)},
      {"tls", "cert_file", StringField(&config.tls_cert_file)},
      {"tls", "key_file", StringField(&config.tls_key_file)},
      {"limits", "header_bytes_max", IntegerField(&config.header_bytes_max)},
      {"limits", "body_bytes_max", IntegerField(&config.body_bytes_max)},
      {"limits", "blob_bytes_max", IntegerField(&config.blob_bytes_max)},
      {"limits", "ws_message_bytes_max", IntegerField(&config.ws_message_bytes_max)},
      {"limits", "ws_outbound_messages_max", IntegerField(&config.ws_outbound_messages_max)},
      {"limits", "rate_per_second", NumberField(&config.rate_per_second)},
      {"limits", "rate_burst", NumberField(&config.rate_burst)},
      {"limits", "signup_rate_per_second", NumberField(&config.signup_rate_per_second)},
      {"limits", "signup_rate_burst", NumberField(&config.signup_rate_burst)},
      {"limits", "anonymous_rate_per_second", NumberField(&config.anonymous_rate_per_second)},
      {"limits", "anonymous_rate_burst", NumberField(&config.anonymous_rate_burst)},
      {"limits", "ws_outbound_bytes_max", IntegerField(&config.ws_outbound_bytes_max)},
      {"limits", "stream_idle_s", IntegerField(&config.stream_idle_s)},
      {"blobs", "quota_bytes", IntegerField(&config.blob_quota_bytes)},
      {"blobs", "disk_free_min_bytes", IntegerField(&config.blob_disk_free_min_bytes)},
      {"blobs", "grace_s", IntegerField(&config.blob_grace_s)},
      {"blobs", "gc_interval_s", IntegerField(&config.blob_gc_interval_s)},
      {"accounts", "allow_signup", BoolField(&config.allow_signup)},
      {"core", "snapshot_every", IntegerField(&config.snapshot_every)},
      {"core", "tick_interval_ms", IntegerField(&config.tick_interval_ms)},
      {"log", "level", StringField(&config.log_level)},
      {"log", "file", StringField(&config.log_file)},
      {"web", "dir", StringField(&config.web_dir)},
  };
}

absl::Status ApplyTable(const toml::table& root, std::string_view source_name,
                        ServerConfig* config) {
  const std::vector<Field> fields = FieldsOf(*config);
  // toml::table iterates in key order, so the first error reported does not vary.
  for (const auto& [table_key, table_node] : root) {
    const std::string_view table_name = table_key.str();
    bool known_table = false;
    for (const Field& field : fields) known_table = known_table || field.table == table_name;
    if (!known_table) {
      return absl::InvalidArgumentError(
          AtSource(table_key.source(), source_name, "unknown key " + std::string(table_name)));
    }
    const toml::table* table = table_node.as_table();
    if (table == nullptr) {
      return absl::InvalidArgumentError(
          AtSource(table_node.source(), source_name,
                   WrongType(table_node, std::string(table_name), "a table")));
    }
    for (const auto& [key, node] : *table) {
      const std::string name = std::string(table_name) + "." + std::string(key.str());
      const Field* match = nullptr;
      for (const Field& field : fields) {
        if (field.table == table_name && field.key == key.str()) match = &field;
      }
      if (match == nullptr) {
        return absl::InvalidArgumentError(
            AtSource(key.source(), source_name, "unknown key " + name));
      }
      const std::string error = match->read(node, name);
      if (!error.empty()) {
        return absl::InvalidArgumentError(AtSource(node.source(), source_name, error));
      }
    }
  }
  return absl::OkStatus();
}

// The checks below return OK or an InvalidArgument naming the key.
absl::Status CheckRange(std::string_view name, uint64_t value, uint64_t min, uint64_t max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(name) + " must be in " + std::to_string(min) +
                                    ".." + std::to_string(max) + ", not " + std::to_string(value));
}

absl::Status CheckSignedRange(std::string_view name, int64_t value, int64_t min, int64_t max) {
  if (value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(name) + " must be in " + std::to_string(min) +
                                    ".." + std::to_string(max) + ", not " + std::to_string(value));
}

absl::Status CheckRate(std::string_view name, double value, double min, double max) {
  if (std::isfinite(value) && value >= min && value <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(name) + " must be a number in " +
                                    base::FormatShortestDouble(min) + ".." + base::FormatShortestDouble(max) + ", not " +
                                    base::FormatShortestDouble(value));
}

absl::Status CheckNotEmpty(std::string_view name, const std::string& value) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(std::string(name) + " must not be empty");
}

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;
constexpr uint64_t kGiB = 1024 * kMiB;

}  // namespace

absl::StatusOr<ServerConfig> ParseServerConfig(std::string_view toml_text,
                                               std::string_view source_name) {
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(
        AtSource(error.source(), source_name, std::string(error.description())));
  }
  ServerConfig config;
  OCX_RETURN_IF_ERROR(ApplyTable(root, source_name, &config));
  return config;
}

absl::StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0) return base::ErrnoStatus(errno, "stat", path);
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(path + " is not a regular file");
  }
  absl::StatusOr<std::string> text = base::ReadFileBounded(path, kServerConfigFileBytesMax);
  if (!text.ok()) {
    if (text.status().code() == absl::StatusCode::kOutOfRange) {
      return absl::InvalidArgumentError(path + " is larger than " +
                                        std::to_string(kServerConfigFileBytesMax) +
                                        " bytes: not a configuration file");
    }
    return text.status();
  }
  return ParseServerConfig(*text, path);
}

absl::Status ValidateServerConfig(const ServerConfig& c) {
  // In the order of docs/formats/config.md; the first error is returned.
  const absl::Status checks[] = {
      CheckNotEmpty("server.listen_address", c.listen_address),
      CheckNotEmpty("server.data_dir", c.data_dir),
      CheckSignedRange("server.io_threads", c.io_threads, 1, 64),
      CheckSignedRange("server.idle_timeout_s", c.idle_timeout_s, 1, 86'400),
      CheckRange("server.connections_max", c.connections_max, 1, 1'000'000),
      CheckRange("server.connections_per_ip_max", c.connections_per_ip_max, 1, 1'000'000),
      CheckRange("server.agent_connections_reserved", c.agent_connections_reserved, 0,
                 1'000'000),
      CheckRange("limits.header_bytes_max", c.header_bytes_max, 1 * kKiB, 1 * kMiB),
      CheckRange("limits.body_bytes_max", c.body_bytes_max, 1 * kKiB, 64 * kMiB),
      CheckRange("limits.blob_bytes_max", c.blob_bytes_max, 1 * kKiB, 1 * kGiB),
      CheckRange("limits.ws_message_bytes_max", c.ws_message_bytes_max, 1 * kKiB, 16 * kMiB),
      CheckRange("limits.ws_outbound_messages_max", c.ws_outbound_messages_max, 1, 1'000'000),
      CheckRate("limits.rate_per_second", c.rate_per_second, 0.001, 1e9),
      CheckRate("limits.rate_burst", c.rate_burst, 1, 1e9),
      CheckRate("limits.signup_rate_per_second", c.signup_rate_per_second, 0.001, 1e9),
      CheckRate("limits.signup_rate_burst", c.signup_rate_burst, 1, 1e9),
      CheckRate("limits.anonymous_rate_per_second", c.anonymous_rate_per_second, 0.001, 1e9),
      CheckRate("limits.anonymous_rate_burst", c.anonymous_rate_burst, 1, 1e9),
      CheckRange("limits.ws_outbound_bytes_max", c.ws_outbound_bytes_max, 64 * kKiB, 1 * kGiB),
      CheckSignedRange("limits.stream_idle_s", c.stream_idle_s, 1, 86'400),
      CheckRange("blobs.quota_bytes", c.blob_quota_bytes, 1 * kKiB, uint64_t{1} << 50),
      CheckRange("blobs.disk_free_min_bytes", c.blob_disk_free_min_bytes, 0, uint64_t{1} << 50),
      CheckSignedRange("blobs.grace_s", c.blob_grace_s, 1, 365LL * 86'400),
      CheckSignedRange("blobs.gc_interval_s", c.blob_gc_interval_s, 1, 86'400),
      CheckRange("core.snapshot_every", c.snapshot_every, 1, uint64_t{1} << 40),
      CheckSignedRange("core.tick_interval_ms", c.tick_interval_ms, 1, 60'000),
  };
  for (const absl::Status& status : checks) {
    if (!status.ok()) return status;
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        "tls.cert_file and tls.key_file must be given both or neither");
  }
  for (std::string_view level : {"trace", "debug", "info", "warn", "error", "off"}) {
    if (c.log_level == level) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      std::string("log.level must be one of trace, debug, info, warn, error, off, not \"") +
      c.log_level + "\"");
}

std::string ExampleServerConfigToml() {
  return R"(# ocx exchange configuration (docs/formats/config.md). Every key is optional; the
# values below are the defaults.

[server]
# Address to listen on; "0.0.0.0" or "::" for all interfaces.
listen_address = "127.0.0.1"
# TCP port; 0 lets the OS pick one (the server logs which).
port = 8080
# Journal, snapshots, query store, blobs and operator.token live here.
data_dir = "ocx-data"
# Threads serving HTTP and WebSocket connections (1..64).
io_threads = 2
# Seconds an idle keep-alive connection stays open (1..86400).
idle_timeout_s = 60
# Open connections at most; more are refused (1..1000000).
connections_max = 10000
# Open connections from one address at most (1..1000000).
connections_per_ip_max = 256
# Connections kept past connections_max for provider agents (/v1/agent), so that a flood of
# other clients never pushes machines offline (0..1000000).
agent_connections_reserved = 1000

[tls]
# PEM certificate chain and private key; both or neither. Empty: plain HTTP.
cert_file = ""
key_file = ""

[limits]
# Request headers, JSON bodies, blobs and WebSocket messages, in bytes.
header_bytes_max = 16384
body_bytes_max = 1048576
blob_bytes_max = 67108864
ws_message_bytes_max = 65536
# Messages queued for one WebSocket client; a client further behind is disconnected.
ws_outbound_messages_max = 4096
# Token bucket per account: requests per second and burst.
rate_per_second = 2000.0
rate_burst = 4000.0
# Token bucket per client IP for account sign-up (POST /v1/accounts, unless an operator asks).
signup_rate_per_second = 5.0
signup_rate_burst = 20.0
# Token bucket per client IP for everything sent without a token: requests and anonymous
# WebSocket messages (/healthz is free).
anonymous_rate_per_second = 200.0
anonymous_rate_burst = 400.0
# Bytes queued for one WebSocket client; a client further behind is disconnected.
ws_outbound_bytes_max = 8388608
# Seconds an anonymous stream that follows no channel may stay silent before it is closed.
stream_idle_s = 60

[blobs]
# Bytes of blobs one account may have uploaded (a blob two accounts uploaded counts for both).
quota_bytes = 1073741824
# Uploads are refused while the data directory's file system has less free than this.
disk_free_min_bytes = 134217728
# A blob no task needs any more is deleted after this many seconds without use.
grace_s = 86400
# Seconds between two garbage collections of blobs.
gc_interval_s = 600

[accounts]
# Whether anyone may create a consumer or provider account (POST /v1/accounts).
allow_signup = true

[core]
# Commands between snapshots of the exchange state.
snapshot_every = 100000
# Milliseconds between the clock ticks the server sends the core (expiries happen on them).
tick_interval_ms = 1000

[log]
# trace, debug, info, warn, error or off.
level = "info"
# Log file; empty: standard error.
file = ""

[web]
# The built dashboard (scripts/build-web.sh writes web/dist), served at "/".
# Empty: the web/dist of the checkout this exchange was built from.
dir = ""
)";
}

}  // namespace ocx::api
