#include "src/api/server_config.h"

#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/testing/temp_dir.h"

namespace ocx::api {
namespace {

using base::testing::TempDir;

ServerConfig ParseOrDie(std::string_view text) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(text, "test.toml");
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : ServerConfig{};
}

// The error message of a parse that must fail with InvalidArgument.
std::string ParseError(std::string_view text) {
  absl::StatusOr<ServerConfig> config = ParseServerConfig(text, "test.toml");
  EXPECT_FALSE(config.ok());
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
  return std::string(config.status().message());
}

std::string ValidationError(const ServerConfig& config) {
  absl::Status status = ValidateServerConfig(config);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  return std::string(status.message());
}

TEST(ServerConfigTest, EmptyFileGivesDefaults) {
  EXPECT_EQ(ParseOrDie(""), ServerConfig{});
  EXPECT_TRUE(ValidateServerConfig(ServerConfig{}).ok());
}

TEST(ServerConfigTest, ExampleParsesToTheDefaultsAndNamesEveryKey) {
  const std::string example = ExampleServerConfigToml();
  EXPECT_EQ(ParseOrDie(example), ServerConfig{});
  const std::vector<std::string> keys = {"listen_address",
                                         "port",
                                         "data_dir",
                                         "io_threads",
                                         "idle_timeout_s",
                                         "connections_max",
                                         "cert_file",
                                         "key_file",
                                         "header_bytes_max",
                                         "body_bytes_max",
                                         "blob_bytes_max",
                                         "ws_message_bytes_max",
                                         "ws_outbound_messages_max",
                                         "rate_per_second",
                                         "rate_burst",
                                         "signup_rate_per_second",
                                         "signup_rate_burst",
                                         "allow_signup",
                                         "snapshot_every",
                                         "tick_interval_ms",
                                         "level",
                                         "file"};
  for (const std::string& key : keys) {
    EXPECT_NE(example.find("\n" + std::string(key) + " = "), std::string::npos) << key;
  }
}

TEST(ServerConfigTest, EveryKeyIsRead) {
  const ServerConfig config = ParseOrDie(R"(
[server]
listen_address = "0.0.0.0"
port = 0
data_dir = "/var/lib/ocx"
io_threads = 8
idle_timeout_s = 30
connections_max = 500

[tls]
cert_file = "cert.pem"
key_file = "key.pem"

[limits]
header_bytes_max = 8192
body_bytes_max = 2097152
blob_bytes_max = 1048576
ws_message_bytes_max = 4096
ws_outbound_messages_max = 100
rate_per_second = 10
rate_burst = 20.5
signup_rate_per_second = 0.5
signup_rate_burst = 3

[accounts]
allow_signup = false

[core]
snapshot_every = 1000
tick_interval_ms = 250

[log]
level = "debug"
file = "/var/log/ocx.log"

[web]
dir = "/srv/ocx/web"
)");
  ServerConfig expected;
  expected.listen_address = "0.0.0.0";
  expected.port = 0;
  expected.data_dir = "/var/lib/ocx";
  expected.io_threads = 8;
  expected.idle_timeout_s = 30;
  expected.connections_max = 500;
  expected.tls_cert_file = "cert.pem";
  expected.tls_key_file = "key.pem";
  expected.header_bytes_max = 8192;
  expected.body_bytes_max = 2097152;
  expected.blob_bytes_max = 1048576;
  expected.ws_message_bytes_max = 4096;
  expected.ws_outbound_messages_max = 100;
  expected.rate_per_second = 10;
  expected.rate_burst = 20.5;
  expected.signup_rate_per_second = 0.5;
  expected.signup_rate_burst = 3;
  expected.allow_signup = false;
  expected.snapshot_every = 1000;
  expected.tick_interval_ms = 250;
  expected.log_level = "debug";
  expected.log_file = "/var/log/ocx.log";
  expected.web_dir = "/srv/ocx/web";
  EXPECT_EQ(config, expected);
  EXPECT_TRUE(ValidateServerConfig(config).ok());
}

TEST(ServerConfigTest, MissingKeysKeepDefaults) {
  const ServerConfig config = ParseOrDie("[server]\nport = 9000\n");
  ServerConfig expected;
  expected.port = 9000;
  EXPECT_EQ(config, expected);
}

TEST(ServerConfigTest, UnknownKeyIsNamedWithItsPosition) {
  EXPECT_EQ(ParseError("[server]\nprot = 9000\n"), "test.toml:2:1: unknown key server.prot");
  EXPECT_EQ(ParseError("[srever]\nport = 9000\n"), "test.toml:1:2: unknown key srever");
  EXPECT_EQ(ParseError("port = 9000\n"), "test.toml:1:1: unknown key port");
  EXPECT_EQ(ParseError("[server.extra]\nx = 1\n"), "test.toml:1:9: unknown key server.extra");
}

TEST(ServerConfigTest, WrongTypeIsNamed) {
  EXPECT_EQ(ParseError("[server]\nport = \"8080\"\n"),
            "test.toml:2:8: server.port must be an integer, not a string");
  EXPECT_EQ(ParseError("[accounts]\nallow_signup = 1\n"),
            "test.toml:2:16: accounts.allow_signup must be a boolean, not an integer");
  EXPECT_EQ(ParseError("[limits]\nrate_burst = \"x\"\n"),
            "test.toml:2:14: limits.rate_burst must be a number, not a string");
  EXPECT_EQ(ParseError("[log]\nlevel = 3.5\n"),
            "test.toml:2:9: log.level must be a string, not a float");
  EXPECT_EQ(ParseError("server = 1\n"), "test.toml:1:10: server must be a table, not an integer");
  EXPECT_EQ(ParseError("[core]\nsnapshot_every = 1.0\n"),
            "test.toml:2:18: core.snapshot_every must be an integer, not a float");
}

TEST(ServerConfigTest, IntegerThatDoesNotFitItsFieldIsRefused) {
  EXPECT_EQ(ParseError("[server]\nport = 65536\n"),
            "test.toml:2:8: server.port is out of range: 65536 is not in 0..65535");
  EXPECT_EQ(ParseError("[limits]\nbody_bytes_max = -1\n"),
            "test.toml:2:18: limits.body_bytes_max is out of range: -1 is not in "
            "0..18446744073709551615");
  EXPECT_EQ(ParseError("[server]\nio_threads = 4294967296\n"),
            "test.toml:2:14: server.io_threads is out of range: 4294967296 is not in "
            "-2147483648..2147483647");
}

TEST(ServerConfigTest, SyntaxErrorHasFileLineAndColumn) {
  const std::string message = ParseError("[server]\nport = = 1\n");
  EXPECT_TRUE(message.starts_with("test.toml:2:")) << message;
  const std::string duplicate = ParseError("[server]\nport = 1\nport = 2\n");
  EXPECT_TRUE(duplicate.starts_with("test.toml:3:")) << duplicate;
}

TEST(ServerConfigTest, LoadsAFile) {
  TempDir dir;
  const std::string path = dir.File("ocx.toml");
  std::ofstream(path) << "[server]\nport = 1234\n[log]\nlevel = \"warn\"\n";
  absl::StatusOr<ServerConfig> config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->port, 1234);
  EXPECT_EQ(config->log_level, "warn");
}

TEST(ServerConfigTest, LoadErrorsNameTheFile) {
  TempDir dir;
  absl::StatusOr<ServerConfig> missing = LoadServerConfig(dir.File("absent.toml"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("absent.toml"), std::string::npos);

  const std::string path = dir.File("bad.toml");
  std::ofstream(path) << "[server]\nbogus = 1\n";
  absl::StatusOr<ServerConfig> bad = LoadServerConfig(path);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), path + ":2:1: unknown key server.bogus");

  EXPECT_EQ(LoadServerConfig(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ServerConfigTest, ValidationChecksRangesAndNamesTheKey) {
  ServerConfig config;
  config.io_threads = 0;
  EXPECT_EQ(ValidationError(config), "server.io_threads must be in 1..64, not 0");
  config = ServerConfig{};
  config.io_threads = 65;
  EXPECT_EQ(ValidationError(config), "server.io_threads must be in 1..64, not 65");
  config = ServerConfig{};
  config.body_bytes_max = 10;
  EXPECT_EQ(ValidationError(config), "limits.body_bytes_max must be in 1024..67108864, not 10");
  config = ServerConfig{};
  config.rate_per_second = 0;
  EXPECT_EQ(ValidationError(config),
            "limits.rate_per_second must be a number in 0.001..1e+09, not 0");
  config = ServerConfig{};
  config.signup_rate_burst = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(ValidationError(config).find("limits.signup_rate_burst"), std::string::npos);
  config = ServerConfig{};
  config.data_dir = "";
  EXPECT_EQ(ValidationError(config), "server.data_dir must not be empty");
  config = ServerConfig{};
  config.tick_interval_ms = 0;
  EXPECT_NE(ValidationError(config).find("core.tick_interval_ms"), std::string::npos);
  config = ServerConfig{};
  config.snapshot_every = 0;
  EXPECT_NE(ValidationError(config).find("core.snapshot_every"), std::string::npos);
  config = ServerConfig{};
  config.ws_outbound_messages_max = 0;
  EXPECT_NE(ValidationError(config).find("limits.ws_outbound_messages_max"), std::string::npos);
  config = ServerConfig{};
  config.port = 0;  // The OS picks one: fine.
  EXPECT_TRUE(ValidateServerConfig(config).ok());
}

TEST(ServerConfigTest, TlsNeedsBothFilesOrNeither) {
  ServerConfig config;
  config.tls_cert_file = "cert.pem";
  EXPECT_EQ(ValidationError(config),
            "tls.cert_file and tls.key_file must be given both or neither");
  config.tls_cert_file = "";
  config.tls_key_file = "key.pem";
  EXPECT_EQ(ValidationError(config),
            "tls.cert_file and tls.key_file must be given both or neither");
  config.tls_cert_file = "cert.pem";
  EXPECT_TRUE(ValidateServerConfig(config).ok());
}

TEST(ServerConfigTest, LogLevelMustBeKnown) {
  ServerConfig config;
  for (const char* level : {"trace", "debug", "info", "warn", "error", "off"}) {
    config.log_level = level;
    EXPECT_TRUE(ValidateServerConfig(config).ok()) << level;
  }
  config.log_level = "verbose";
  EXPECT_EQ(ValidationError(config),
            "log.level must be one of trace, debug, info, warn, error, off, not \"verbose\"");
  config.log_level = "INFO";
  EXPECT_FALSE(ValidateServerConfig(config).ok());
}

}  // namespace
}  // namespace ocx::api
