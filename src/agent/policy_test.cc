#include "src/agent/policy.h"

#include <stdlib.h>
#include <time.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "src/base/testing/build_paths.h"
#include "src/base/testing/temp_dir.h"

namespace ocx::agent {
namespace {

using base::testing::TempDir;

OwnerPolicy ParseOrDie(std::string_view text) {
  absl::StatusOr<OwnerPolicy> policy = ParseOwnerPolicy(text);
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *std::move(policy) : OwnerPolicy{};
}

std::string ParseError(std::string_view text) {
  absl::StatusOr<OwnerPolicy> policy = ParseOwnerPolicy(text);
  EXPECT_FALSE(policy.ok()) << text;
  if (policy.ok()) return "";
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument) << policy.status();
  return std::string(policy.status().message());
}

// The error names the file and line ("policy.toml:LINE:") and says `fragment`.
void ExpectError(std::string_view text, int line, std::string_view fragment) {
  const std::string message = ParseError(text);
  EXPECT_TRUE(message.starts_with("policy.toml:" + std::to_string(line) + ":"))
      << "want line " << line << ": " << message;
  EXPECT_NE(message.find(fragment), std::string::npos)
      << "want \"" << fragment << "\" in: " << message;
}

// ---- Parsing: good files --------------------------------------------------------------------

TEST(OwnerPolicyTest, EmptyFileIsTheDefaultPolicy) {
  const OwnerPolicy policy = ParseOrDie("");
  const OwnerPolicy defaults = DefaultOwnerPolicy();
  EXPECT_EQ(policy.share.cores_micros, 1'000'000);
  EXPECT_EQ(policy.share.mem_micros, 1'000'000);
  EXPECT_EQ(policy.share.disk_micros, 1'000'000);
  EXPECT_FALSE(policy.utc);
  EXPECT_TRUE(policy.windows.empty());
  EXPECT_EQ(policy.load, LoadPolicy{});
  EXPECT_FALSE(policy.load.pause_above.has_value());
  EXPECT_EQ(policy.pricing, defaults.pricing);
  EXPECT_EQ(policy.pricing.kind, PricingRule::Kind::kFixed);
  EXPECT_EQ(policy.pricing.price_micros, 50'000);
  EXPECT_TRUE(policy.market_pricing.empty());
  EXPECT_EQ(policy.name, "");
  EXPECT_EQ(policy.region, "");
  EXPECT_TRUE(policy.labels.empty());
  EXPECT_FALSE(policy.network);
  EXPECT_TRUE(policy.markets.empty());
}

TEST(OwnerPolicyTest, ExampleParsesWithEveryKey) {
  const std::string example = ExampleOwnerPolicyToml();
  const OwnerPolicy policy = ParseOrDie(example);
  EXPECT_EQ(policy.share.cores_micros, 500'000);
  EXPECT_EQ(policy.share.mem_micros, 500'000);
  EXPECT_EQ(policy.share.disk_micros, 250'000);
  EXPECT_FALSE(policy.utc);
  ASSERT_EQ(policy.windows.size(), 2u);
  EXPECT_EQ(policy.windows[0], (AvailabilityWindow{0x1f, 22 * 60, 7 * 60}));
  EXPECT_EQ(policy.windows[1], (AvailabilityWindow{0x60, 0, 24 * 60}));
  EXPECT_EQ(policy.load.pause_above, 0.6);
  EXPECT_EQ(policy.load.resume_below, 0.3);
  EXPECT_EQ(policy.load.sustain_s, 30);
  EXPECT_EQ(policy.load.resume_sustain_s, 300);
  EXPECT_EQ(policy.load.on_pause, PauseAction::kReclaim);
  EXPECT_EQ(policy.pricing, (PricingRule{PricingRule::Kind::kSpotMargin, 50'000, 100'000, 20'000}));
  ASSERT_EQ(policy.market_pricing.size(), 1u);
  EXPECT_EQ(policy.market_pricing.at("gpu.h100"),
            (PricingRule{PricingRule::Kind::kFixed, 2'500'000, 0, 2'000'000}));
  EXPECT_EQ(policy.name, "my-box");
  EXPECT_EQ(policy.region, "eu");
  EXPECT_EQ(policy.labels,
            (std::map<std::string, std::string>{{"owner", "alice"}, {"power", "solar"}}));
  EXPECT_FALSE(policy.network);
  EXPECT_EQ(policy.markets, (std::vector<std::string>{"cpu", "gpu.h100"}));

  for (const std::string_view key :
       {"cores", "memory", "disk", "timezone", "windows", "pause_above", "resume_below",
        "sustain_s", "resume_sustain_s", "on_pause", "rule", "margin", "price", "min_price", "name",
        "region", "labels", "network", "markets"}) {
    EXPECT_NE(example.find("\n" + std::string(key) + " = "), std::string::npos) << key;
  }
}

// The example in the format document is the one in the code, byte for byte.
TEST(OwnerPolicyTest, FormatDocumentShowsTheExample) {
  const std::filesystem::path doc =
      std::filesystem::path(base::testing::SourceDir()) / "docs/formats/provider-policy.md";
  std::ifstream in(doc);
  ASSERT_TRUE(in) << "cannot read " << doc;
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("```toml\n" + ExampleOwnerPolicyToml() + "```\n"), std::string::npos)
      << "docs/formats/provider-policy.md does not show ExampleOwnerPolicyToml()";
}

TEST(OwnerPolicyTest, ReadsEveryKey) {
  const OwnerPolicy policy = ParseOrDie(R"(
[share]
cores = 1
memory = 0.125
disk = 0.000001
[availability]
timezone = "utc"
windows = ["daily 09:00-17:00"]
[load]
pause_above = 1
resume_below = 0
sustain_s = 0
resume_sustain_s = 86400
on_pause = "drain"
[pricing]
rule = "fixed"
price = "0.055"
min_price = "0"
[pricing.markets.cpu]
rule = "spot_margin"
margin = "-0.999999"
[pricing.markets."gpu.rtx4090"]
rule = "spot_margin"
margin = "10"
price = "1000000"
min_price = "1000000"
[machine]
name = "Rack-7.node_3"
region = "us-east.2"
network = true
markets = ["cpu", "gpu.rtx4090"]
[machine.labels]
tier = "gold"
)");
  EXPECT_EQ(policy.share.cores_micros, 1'000'000);
  EXPECT_EQ(policy.share.mem_micros, 125'000);
  EXPECT_EQ(policy.share.disk_micros, 1);
  EXPECT_TRUE(policy.utc);
  EXPECT_EQ(policy.windows, (std::vector<AvailabilityWindow>{{kEveryDay, 9 * 60, 17 * 60}}));
  EXPECT_EQ(policy.load, (LoadPolicy{1.0, 0.0, 0, 86'400, PauseAction::kDrain}));
  EXPECT_EQ(policy.pricing, (PricingRule{PricingRule::Kind::kFixed, 55'000, 0, 0}));
  EXPECT_EQ(policy.market_pricing.at("cpu"),
            (PricingRule{PricingRule::Kind::kSpotMargin, 0, -999'999, 0}));
  EXPECT_EQ(policy.market_pricing.at("gpu.rtx4090"),
            (PricingRule{PricingRule::Kind::kSpotMargin, kPolicyPriceMaxMicros, 10'000'000,
                         kPolicyPriceMaxMicros}));
  EXPECT_EQ(policy.name, "Rack-7.node_3");
  EXPECT_EQ(policy.region, "us-east.2");
  EXPECT_TRUE(policy.network);
  EXPECT_EQ(policy.labels.at("tier"), "gold");
  EXPECT_EQ(policy.markets, (std::vector<std::string>{"cpu", "gpu.rtx4090"}));
}

TEST(OwnerPolicyTest, LoadDefaultsFollowPauseAbove) {
  const OwnerPolicy policy = ParseOrDie("[load]\npause_above = 0.5\nsustain_s = 10\n");
  EXPECT_EQ(policy.load.pause_above, 0.5);
  EXPECT_EQ(policy.load.resume_below, 0.25);
  EXPECT_EQ(policy.load.sustain_s, 10);
  EXPECT_EQ(policy.load.resume_sustain_s, 10);
  EXPECT_EQ(policy.load.on_pause, PauseAction::kReclaim);
}

TEST(OwnerPolicyTest, LoadWithoutPauseAboveNeverPauses) {
  const OwnerPolicy policy = ParseOrDie("[load]\nresume_below = 0.9\n");
  EXPECT_FALSE(policy.load.pause_above.has_value());
}

TEST(OwnerPolicyTest, SpotMarginNeedsNeitherPriceNorMargin) {
  const OwnerPolicy policy = ParseOrDie("[pricing]\nrule = \"spot_margin\"\n");
  EXPECT_EQ(policy.pricing, (PricingRule{PricingRule::Kind::kSpotMargin, 0, 0, 0}));
}

TEST(OwnerPolicyTest, MarketTablesAloneKeepTheDefaultRule) {
  const OwnerPolicy policy =
      ParseOrDie("[pricing.markets.\"gpu.h100\"]\nrule = \"fixed\"\nprice = \"3\"\n");
  EXPECT_EQ(policy.pricing, DefaultOwnerPolicy().pricing);
  EXPECT_EQ(PricingFor(policy, "gpu.h100").price_micros, 3'000'000);
  EXPECT_EQ(PricingFor(policy, "cpu").price_micros, kDefaultPriceMicros);
  EXPECT_TRUE(OffersMarket(policy, "gpu.h100"));
  EXPECT_TRUE(OffersMarket(policy, "anything"));
}

TEST(OwnerPolicyTest, OffersOnlyListedMarkets) {
  const OwnerPolicy policy = ParseOrDie("[machine]\nmarkets = [\"cpu\"]\n");
  EXPECT_TRUE(OffersMarket(policy, "cpu"));
  EXPECT_FALSE(OffersMarket(policy, "gpu.h100"));
}

// ---- Parsing: bad files ---------------------------------------------------------------------

TEST(OwnerPolicyErrorTest, ExactMessageForAFloatPrice) {
  EXPECT_EQ(ParseError("[pricing]\nrule = \"fixed\"\nprice = 0.05\n"),
            "policy.toml:3:9: pricing.price must be a decimal string like \"0.05\", not a float");
}

TEST(OwnerPolicyErrorTest, SyntaxErrorsHaveTheLine) {
  ExpectError("[share]\ncores = = 1\n", 2, "");
  ExpectError("[share]\ncores = 0.5\ncores = 0.5\n", 3, "");
  ExpectError("[share\n", 1, "");
}

TEST(OwnerPolicyErrorTest, UnknownTablesAndKeys) {
  ExpectError("version = 1\n", 1, "unknown key version");
  ExpectError("\n[shares]\ncores = 1\n", 2, "unknown key shares");
  ExpectError("[share]\ngpus = 1\n", 2, "unknown key share.gpus");
  ExpectError("[availability]\ntz = \"utc\"\n", 2, "unknown key availability.tz");
  ExpectError("[load]\npause = 0.5\n", 2, "unknown key load.pause");
  ExpectError("[pricing]\nrule = \"fixed\"\nprice = \"1\"\nspread = \"1\"\n", 4,
              "unknown key pricing.spread");
  ExpectError("[pricing.markets.cpu]\nprice = \"1\"\nmarkets = 1\n", 3,
              "unknown key pricing.markets.\"cpu\".markets");
  ExpectError("[machine]\nhost = \"x\"\n", 2, "unknown key machine.host");
  ExpectError("share = 1\n", 1, "share must be a table, not an integer");
  ExpectError("[pricing]\nmarkets = 1\n", 2, "pricing.markets must be a table, not an integer");
}

TEST(OwnerPolicyErrorTest, Shares) {
  ExpectError("[share]\ncores = 0\n", 2, "share.cores must be a fraction in (0, 1], not 0");
  ExpectError("[share]\n\nmemory = 1.5\n", 3, "share.memory must be a fraction in (0, 1], not 1.5");
  ExpectError("[share]\ndisk = -0.25\n", 2, "share.disk must be a fraction in (0, 1]");
  ExpectError("[share]\ndisk = nan\n", 2, "share.disk must be a fraction in (0, 1], not nan");
  ExpectError("[share]\ncores = 2\n", 2, "share.cores must be a fraction in (0, 1], not 2");
  ExpectError("[share]\ncores = 0.0000001\n", 2, "below 0.000001");
  ExpectError("[share]\ncores = \"0.5\"\n", 2, "share.cores must be a number, not a string");
}

TEST(OwnerPolicyErrorTest, Availability) {
  ExpectError("[availability]\ntimezone = \"Europe/Paris\"\n", 2,
              "availability.timezone must be \"local\" or \"utc\", not \"Europe/Paris\"");
  ExpectError("[availability]\ntimezone = 0\n", 2, "availability.timezone must be a string");
  ExpectError("[availability]\nwindows = [\"mon-fri 25:00-07:00\"]\n", 2,
              "availability.windows[0] \"mon-fri 25:00-07:00\": \"25:00\" is not a start time");
  ExpectError("[availability]\nwindows = [\"mon-fry 22:00-07:00\"]\n", 2, "\"fry\" is not a day");
  ExpectError("[availability]\nwindows = [\"funday 10:00-11:00\"]\n", 2, "\"funday\" is not a day");
  ExpectError("[availability]\nwindows = []\n", 2,
              "availability.windows must list at least one window");
  ExpectError("[availability]\nwindows = \"mon 10:00-11:00\"\n", 2,
              "availability.windows must be an array of strings, not a string");
  ExpectError("[availability]\nwindows = [1]\n", 2,
              "availability.windows[0] must be a string, not an integer");
  // The element's own line, in a multi-line array.
  ExpectError("[availability]\nwindows = [\n  \"mon 10:00-11:00\",\n  \"tue 10:00-99:00\",\n]\n", 4,
              "availability.windows[1] \"tue 10:00-99:00\": \"99:00\" is not an end time");
  std::string many = "[availability]\nwindows = [";
  for (size_t i = 0; i <= kAvailabilityWindowsMax; ++i) many += "\"10:00-11:00\",";
  many += "]\n";
  ExpectError(many, 2, "more than 64 windows");
}

TEST(OwnerPolicyErrorTest, Load) {
  ExpectError("[load]\npause_above = 0\n", 2, "load.pause_above must be a fraction in (0, 1]");
  ExpectError("[load]\npause_above = 1.2\n", 2, "load.pause_above must be a fraction in (0, 1]");
  ExpectError("[load]\npause_above = \"0.6\"\n", 2, "load.pause_above must be a number");
  ExpectError("[load]\npause_above = 0.6\nresume_below = 0.7\n", 3,
              "load.resume_below must be below load.pause_above (0.6), not 0.7");
  ExpectError("[load]\npause_above = 0.6\nresume_below = 0.6\n", 3,
              "load.resume_below must be below load.pause_above");
  ExpectError("[load]\nresume_below = -0.1\n", 2, "load.resume_below must be a fraction in [0, 1]");
  ExpectError("[load]\nsustain_s = -1\n", 2, "load.sustain_s must be in 0..86400, not -1");
  ExpectError("[load]\nresume_sustain_s = 86401\n", 2,
              "load.resume_sustain_s must be in 0..86400, not 86401");
  ExpectError("[load]\nsustain_s = 1.5\n", 2, "load.sustain_s must be an integer, not a float");
  ExpectError("[load]\non_pause = \"kill\"\n", 2,
              "load.on_pause must be \"reclaim\" or \"drain\", not \"kill\"");
}

TEST(OwnerPolicyErrorTest, Pricing) {
  ExpectError("[pricing]\nrule = \"auction\"\n", 2,
              "pricing.rule must be \"fixed\" or \"spot_margin\", not \"auction\"");
  ExpectError("[pricing]\nrule = 1\n", 2, "pricing.rule must be a string, not an integer");
  ExpectError("[pricing]\nprice = \"abc\"\n", 2,
              "pricing.price must be a decimal string like \"0.05\", not \"abc\"");
  ExpectError("[pricing]\nprice = 1\n", 2,
              "pricing.price must be a decimal string like \"0.05\", not an integer");
  ExpectError("[pricing]\nprice = \"0.0000001\"\n", 2,
              "pricing.price has more than 6 fractional digits");
  ExpectError("[pricing]\nprice = \"-0.05\"\n", 2, "pricing.price must be positive");
  ExpectError("[pricing]\nprice = \"0\"\n", 2, "pricing.price must be positive");
  ExpectError("[pricing]\nprice = \"1000000.000001\"\n", 2,
              "pricing.price must be positive and at most 1000000");
  ExpectError("[pricing]\nprice = \"99999999999999999999\"\n", 2, "pricing.price must be");
  ExpectError("[pricing]\nprice = \"1\"\nmin_price = \"-0.01\"\n", 3,
              "pricing.min_price must be in 0..1000000, not \"-0.01\"");
  ExpectError("[pricing]\nrule = \"spot_margin\"\nmargin = \"-1\"\n", 3,
              "pricing.margin must be above -1 and at most 10, not \"-1\"");
  ExpectError("[pricing]\nrule = \"spot_margin\"\nmargin = \"-1.5\"\n", 3,
              "pricing.margin must be above -1");
  ExpectError("[pricing]\nrule = \"spot_margin\"\nmargin = \"10.000001\"\n", 3,
              "pricing.margin must be above -1 and at most 10");
  ExpectError("[pricing]\nrule = \"spot_margin\"\nmargin = 0.1\n", 3,
              "pricing.margin must be a decimal string like \"0.05\", not a float");
  ExpectError("[pricing]\nrule = \"fixed\"\n", 2, "pricing.price is required with rule \"fixed\"");
  ExpectError("\n[pricing]\nmin_price = \"0.01\"\n", 2,
              "pricing.price is required with rule \"fixed\"");
  ExpectError("[pricing]\nprice = \"1\"\nmargin = \"0.1\"\n", 3,
              "pricing.margin applies only to rule \"spot_margin\"");
  ExpectError("[pricing]\nprice = \"0.05\"\nmin_price = \"0.1\"\n", 3,
              "pricing.min_price (0.1) is above pricing.price (0.05)");
}

TEST(OwnerPolicyErrorTest, MarketPricing) {
  ExpectError("[pricing.markets.GPU]\nprice = \"1\"\n", 1,
              "pricing.markets.\"GPU\" is not a market name");
  ExpectError("[pricing.markets]\n\"gpu..h100\" = { price = \"1\" }\n", 2,
              "pricing.markets.\"gpu..h100\" is not a market name");
  ExpectError("[pricing.markets]\ncpu = 5\n", 2,
              "pricing.markets.\"cpu\" must be a table, not an integer");
  ExpectError("[pricing.markets]\ncpu = {}\n", 2, "pricing.markets.\"cpu\" sets nothing");
  ExpectError("[pricing.markets.cpu]\nrule = \"fixed\"\n", 2,
              "pricing.markets.\"cpu\".price is required with rule \"fixed\"");
  ExpectError("[pricing.markets.cpu]\nprice = 0.5\n", 2,
              "pricing.markets.\"cpu\".price must be a decimal string like \"0.05\", not a float");
  ExpectError("[machine]\nmarkets = [\"cpu\"]\n[pricing.markets.\"gpu.h100\"]\nprice = \"2\"\n", 3,
              "pricing.markets.\"gpu.h100\" prices a market that machine.markets leaves out");
}

TEST(OwnerPolicyErrorTest, Machine) {
  ExpectError("[machine]\nname = \"\"\n", 2, "machine.name must be 1..64 letters");
  ExpectError("[machine]\nname = \"my box\"\n", 2, "not \"my box\"");
  ExpectError("[machine]\nname = \"" + std::string(65, 'a') + "\"\n", 2, "machine.name must be");
  ExpectError("[machine]\nname = 7\n", 2, "machine.name must be a string, not an integer");
  ExpectError("[machine]\nregion = \"EU\"\n", 2,
              "machine.region must be 1..64 lower-case letters, digits, '.', '_' or '-', not "
              "\"EU\"");
  ExpectError("[machine]\nnetwork = \"yes\"\n", 2,
              "machine.network must be a boolean, not a string");
  ExpectError("[machine]\nlabels = { Owner = \"x\" }\n", 2,
              "machine.labels.Owner is not a label name");
  ExpectError("[machine]\nlabels = { \"cpu.cores\" = \"64\" }\n", 2,
              "machine.labels.cpu.cores is not a label name");
  ExpectError("[machine]\nlabels = { region = \"x\" }\n", 2, "machine.labels.region is reserved");
  ExpectError("[machine]\nlabels = { owner = 5 }\n", 2,
              "machine.labels.owner must be a string, not an integer");
  ExpectError("[machine]\nlabels = { owner = \"a\\nb\" }\n", 2,
              "machine.labels.owner must be at most 256 bytes without control characters");
  ExpectError("[machine]\nlabels = \"owner=alice\"\n", 2,
              "machine.labels must be a table, not a string");
  std::string many = "[machine.labels]\n";
  for (size_t i = 0; i <= kLabelsMax; ++i) many += "l" + std::to_string(i) + " = \"x\"\n";
  ExpectError(many, 1, "more than 32 labels");
  ExpectError("[machine]\nmarkets = []\n", 2, "machine.markets must name at least one market");
  ExpectError("[machine]\nmarkets = [\"cpu\", \"cpu\"]\n", 2,
              "machine.markets[1] \"cpu\" is listed twice");
  ExpectError("[machine]\nmarkets = [\"CPU\"]\n", 2, "machine.markets[0] \"CPU\" is not a market");
  ExpectError("[machine]\nmarkets = \"cpu\"\n", 2, "machine.markets must be an array of strings");
  ExpectError("[machine]\nmarkets = [1]\n", 2, "machine.markets[0] must be a string");
}

TEST(OwnerPolicyTest, LoadsAFileAndNamesItInErrors) {
  TempDir dir;
  const std::string path = dir.File("policy.toml");
  std::ofstream(path) << "[share]\ncores = 0.5\n";
  absl::StatusOr<OwnerPolicy> policy = LoadOwnerPolicy(path);
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->share.cores_micros, 500'000);

  const std::string bad = dir.File("bad.toml");
  std::ofstream(bad) << "[share]\nbogus = 1\n";
  EXPECT_EQ(LoadOwnerPolicy(bad).status().message(), bad + ":2:1: unknown key share.bogus");
  EXPECT_EQ(LoadOwnerPolicy(dir.File("absent.toml")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadOwnerPolicy(dir.path()).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- Window text ----------------------------------------------------------------------------

AvailabilityWindow WindowOrDie(std::string_view text) {
  absl::StatusOr<AvailabilityWindow> window = ParseAvailabilityWindow(text);
  EXPECT_TRUE(window.ok()) << text << ": " << window.status();
  return window.ok() ? *window : AvailabilityWindow{};
}

TEST(AvailabilityWindowTest, ParsesDaysAndTimes) {
  EXPECT_EQ(WindowOrDie("mon-fri 22:00-07:00"), (AvailabilityWindow{0x1f, 1320, 420}));
  EXPECT_EQ(WindowOrDie("sat-sun 00:00-24:00"), (AvailabilityWindow{0x60, 0, 1440}));
  EXPECT_EQ(WindowOrDie("09:00-17:30"), (AvailabilityWindow{kEveryDay, 540, 1050}));
  EXPECT_EQ(WindowOrDie("daily 00:00-00:01"), (AvailabilityWindow{kEveryDay, 0, 1}));
  EXPECT_EQ(WindowOrDie("Mon,WED 23:59-24:00"), (AvailabilityWindow{0x05, 1439, 1440}));
  EXPECT_EQ(WindowOrDie("fri-mon 12:00-13:00"), (AvailabilityWindow{0x71, 720, 780}));
  EXPECT_EQ(WindowOrDie("sun-sat 12:00-13:00"), (AvailabilityWindow{kEveryDay, 720, 780}));
  EXPECT_EQ(WindowOrDie("tue-tue 12:00-13:00"), (AvailabilityWindow{0x02, 720, 780}));
  EXPECT_EQ(WindowOrDie("  sun \t 12:00-00:00 "), (AvailabilityWindow{kSunday, 720, 0}));
  EXPECT_EQ(WindowOrDie("mon,wed-thu,sun 01:00-02:00"), (AvailabilityWindow{0x4d, 60, 120}));
}

TEST(AvailabilityWindowTest, RefusesMalformedWindows) {
  for (const std::string_view bad :
       {"", "mon-fri", "mon-fri 22:00", "mon-fri 22:00 - 07:00", "mon-fri 25:00-07:00",
        "mon-fri 22:60-07:00", "mon-fri 24:00-07:00", "mon-fri 22:00-24:01", "mon-fri 7:00-09:00",
        "mon-fri 07:00-9:00", "mon-fry 22:00-07:00", "monday 10:00-11:00", ",mon 10:00-11:00",
        "mon, 10:00-11:00", "mon-fri 10:00-10:00", "mon-fri 00:00-00:00", "mon-fri-sat 10:00-11:00",
        "mon 10:00-11:00 extra", "mon 1a:00-11:00"}) {
    EXPECT_FALSE(ParseAvailabilityWindow(bad).ok()) << bad;
  }
  EXPECT_EQ(ParseAvailabilityWindow("mon 10:00-10:00").status().message(),
            "starts and ends at the same time; write 00:00-24:00 for a whole day");
}

// ---- Availability in time (UTC) -------------------------------------------------------------

constexpr int64_t kMinute = 60;
constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 86'400;
// 2024-01-01 00:00:00 UTC, a Monday.
constexpr int64_t kMonday0 = 1'704'067'200;
// Day 0 = Monday .. 6 = Sunday of that week, at hh:mm:ss UTC.
constexpr int64_t At(int day, int hours, int minutes, int seconds = 0) {
  return kMonday0 + day * kDay + hours * kHour + minutes * kMinute + seconds;
}

OwnerPolicy UtcPolicy(std::vector<std::string> windows) {
  OwnerPolicy policy;
  policy.utc = true;
  for (const std::string& text : windows) policy.windows.push_back(WindowOrDie(text));
  return policy;
}

TEST(AvailabilityTest, NoWindowsIsAlwaysAvailable) {
  const OwnerPolicy policy = DefaultOwnerPolicy();
  EXPECT_TRUE(IsAvailable(policy, 0));
  EXPECT_TRUE(IsAvailable(policy, At(3, 12, 0)));
  EXPECT_FALSE(SecondsUntilAvailabilityChanges(policy, At(3, 12, 0)).has_value());
}

TEST(AvailabilityTest, WindowCrossingMidnight) {
  const OwnerPolicy policy = UtcPolicy({"mon-fri 22:00-07:00"});
  EXPECT_FALSE(IsAvailable(policy, At(0, 21, 59, 59)));
  EXPECT_TRUE(IsAvailable(policy, At(0, 22, 0)));
  EXPECT_TRUE(IsAvailable(policy, At(1, 6, 59, 59)));
  EXPECT_FALSE(IsAvailable(policy, At(1, 7, 0)));
  // Friday's window runs into Saturday morning; Sunday has none, so Monday morning is out.
  EXPECT_TRUE(IsAvailable(policy, At(5, 6, 0)));
  EXPECT_FALSE(IsAvailable(policy, At(5, 7, 0)));
  EXPECT_FALSE(IsAvailable(policy, At(6, 23, 0)));
  EXPECT_FALSE(IsAvailable(policy, At(0, 3, 0)));
  EXPECT_FALSE(IsAvailable(policy, At(7, 3, 0)));  // The next Monday.
}

TEST(AvailabilityTest, SundayWindowRunsIntoMonday) {
  const OwnerPolicy policy = UtcPolicy({"sun 22:00-02:00"});
  EXPECT_TRUE(IsAvailable(policy, At(0, 1, 0)));  // Monday 01:00 after last Sunday.
  EXPECT_FALSE(IsAvailable(policy, At(0, 2, 0)));
  EXPECT_TRUE(IsAvailable(policy, At(6, 23, 0)));
  EXPECT_FALSE(IsAvailable(policy, At(5, 23, 0)));
}

TEST(AvailabilityTest, WeekdayBoundaries) {
  const OwnerPolicy policy = UtcPolicy({"sat-sun 00:00-24:00"});
  EXPECT_FALSE(IsAvailable(policy, At(4, 23, 59, 59)));
  EXPECT_TRUE(IsAvailable(policy, At(5, 0, 0)));
  EXPECT_TRUE(IsAvailable(policy, At(6, 23, 59, 59)));
  EXPECT_FALSE(IsAvailable(policy, At(7, 0, 0)));
  // Before 1970 too: 1969-12-27 was a Saturday.
  EXPECT_TRUE(IsAvailable(policy, -5 * kDay + 1));
  EXPECT_FALSE(IsAvailable(policy, -8 * kDay + 1));  // A Wednesday.
}

TEST(AvailabilityTest, SeveralWindowsAndDayLists) {
  const OwnerPolicy policy = UtcPolicy({"mon,wed 09:00-10:00", "fri-mon 12:00-13:00"});
  EXPECT_TRUE(IsAvailable(policy, At(0, 9, 30)));
  EXPECT_FALSE(IsAvailable(policy, At(1, 9, 30)));
  EXPECT_TRUE(IsAvailable(policy, At(2, 9, 30)));
  EXPECT_TRUE(IsAvailable(policy, At(0, 12, 30)));
  EXPECT_FALSE(IsAvailable(policy, At(1, 12, 30)));
  EXPECT_TRUE(IsAvailable(policy, At(4, 12, 30)));
  EXPECT_TRUE(IsAvailable(policy, At(6, 12, 30)));
}

TEST(AvailabilityTest, SecondsUntilTheWindowOpensAndCloses) {
  const OwnerPolicy policy = UtcPolicy({"mon-fri 22:00-07:00"});
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 12, 0, 30)), 10 * kHour - 30);
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 21, 59, 59)), 1);
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 22, 0)), 9 * kHour);
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 23, 0)), 8 * kHour);
  // Saturday 08:00 -> Monday 22:00.
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(5, 8, 0)), 2 * kDay + 14 * kHour);
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(5, 6, 59, 59)), 1);
}

TEST(AvailabilityTest, AdjacentWindowsMerge) {
  const OwnerPolicy policy = UtcPolicy({"mon 22:00-24:00", "tue 00:00-07:00"});
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 23, 0)), 8 * kHour);
}

TEST(AvailabilityTest, WholeWeekNeverChanges) {
  const OwnerPolicy policy = UtcPolicy({"mon-thu 00:00-24:00", "fri-sun 00:00-24:00"});
  EXPECT_TRUE(IsAvailable(policy, At(4, 12, 0)));
  EXPECT_FALSE(SecondsUntilAvailabilityChanges(policy, At(4, 12, 0)).has_value());
}

TEST(AvailabilityTest, SecondsUntilChangeAgreesWithIsAvailable) {
  const OwnerPolicy policy =
      UtcPolicy({"mon-fri 22:00-07:00", "sat 12:00-12:01", "sun 09:15-11:45"});
  for (int64_t t = At(0, 0, 0); t < At(7, 0, 0); t += 7 * kMinute + 13) {
    const std::optional<int64_t> seconds = SecondsUntilAvailabilityChanges(policy, t);
    ASSERT_TRUE(seconds.has_value());
    ASSERT_GT(*seconds, 0);
    EXPECT_EQ(IsAvailable(policy, t + *seconds - 1), IsAvailable(policy, t)) << t;
    EXPECT_NE(IsAvailable(policy, t + *seconds), IsAvailable(policy, t)) << t;
  }
}

// ---- Availability in local time -------------------------------------------------------------

// Sets TZ for the test (a POSIX rule string, so no tz database is needed) and restores it.
class ScopedTimeZone {
 public:
  explicit ScopedTimeZone(const char* tz) {
    const char* old = ::getenv("TZ");
    if (old != nullptr) old_ = old;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~ScopedTimeZone() {
    if (old_.has_value()) {
      ::setenv("TZ", old_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }

 private:
  std::optional<std::string> old_;
};

// Central European time: UTC+1, and UTC+2 from the last Sunday of March 01:00 UTC.
constexpr char kCet[] = "CET-1CEST,M3.5.0,M10.5.0/3";
// 2024-03-31 00:00:00 UTC, a Sunday; 01:00 CET. Clocks go 02:00 -> 03:00 at 01:00 UTC.
constexpr int64_t kDstSunday = 1'711'843'200;

TEST(LocalAvailabilityTest, UsesTheLocalClock) {
  ScopedTimeZone zone(kCet);
  OwnerPolicy policy = UtcPolicy({"mon-fri 09:00-17:00"});
  policy.utc = false;
  // Monday 2024-01-01 08:30 UTC is 09:30 CET.
  EXPECT_TRUE(IsAvailable(policy, At(0, 8, 30)));
  EXPECT_FALSE(IsAvailable(policy, At(0, 7, 30)));
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, At(0, 7, 30)), 30 * kMinute);
}

TEST(LocalAvailabilityTest, CountsTheDaylightSavingJump) {
  ScopedTimeZone zone(kCet);
  OwnerPolicy policy = UtcPolicy({"daily 09:00-17:00"});
  policy.utc = false;
  // 01:00 CET -> 09:00 CEST is 7 real hours, not 8.
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, kDstSunday), 7 * kHour);
  EXPECT_TRUE(IsAvailable(policy, kDstSunday + 7 * kHour));
  EXPECT_FALSE(IsAvailable(policy, kDstSunday + 7 * kHour - 1));
}

TEST(LocalAvailabilityTest, WindowStartingInTheSkippedHourOpensAtTheJump) {
  ScopedTimeZone zone(kCet);
  OwnerPolicy policy = UtcPolicy({"sun 02:30-05:00"});
  policy.utc = false;
  // 02:30 local does not exist that night; at 01:00 UTC local time is 03:00, inside.
  EXPECT_EQ(SecondsUntilAvailabilityChanges(policy, kDstSunday), 1 * kHour);
  EXPECT_TRUE(IsAvailable(policy, kDstSunday + kHour));
  EXPECT_FALSE(IsAvailable(policy, kDstSunday + kHour - 1));
}

// ---- Pricing --------------------------------------------------------------------------------

constexpr int64_t kTick = 100;  // 0.0001 credits, the default tick.

PricingRule Fixed(int64_t price, int64_t min_price = 0) {
  return {PricingRule::Kind::kFixed, price, 0, min_price};
}
PricingRule SpotMargin(int64_t margin, int64_t fallback = 0, int64_t min_price = 0) {
  return {PricingRule::Kind::kSpotMargin, fallback, margin, min_price};
}

TEST(AskPriceTest, FixedPriceIgnoresSpot) {
  EXPECT_EQ(AskPriceMicros(Fixed(50'000), std::nullopt, kTick), 50'000);
  EXPECT_EQ(AskPriceMicros(Fixed(50'000), 90'000, kTick), 50'000);
}

TEST(AskPriceTest, RoundsUpToTheTick) {
  EXPECT_EQ(AskPriceMicros(Fixed(50'001), std::nullopt, kTick), 50'100);
  EXPECT_EQ(AskPriceMicros(Fixed(50'099), std::nullopt, kTick), 50'100);
  EXPECT_EQ(AskPriceMicros(Fixed(50'100), std::nullopt, kTick), 50'100);
  EXPECT_EQ(AskPriceMicros(Fixed(50'001), std::nullopt, 1), 50'001);
  EXPECT_EQ(AskPriceMicros(Fixed(1), std::nullopt, kTick), kTick);
}

TEST(AskPriceTest, SpotTimesOnePlusMarginRoundedUp) {
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000), 50'000, kTick), 55'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000), 50'000, 1), 55'000);
  // 50'001 * 1.1 = 55'001.1 -> 55'002 -> 55'100 at the tick.
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000), 50'001, 1), 55'002);
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000), 50'001, kTick), 55'100);
  EXPECT_EQ(AskPriceMicros(SpotMargin(-50'000), 50'000, kTick), 47'500);
  EXPECT_EQ(AskPriceMicros(SpotMargin(0), 55'000, kTick), 55'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(-999'999), 1'000'000, 1), 1);
}

TEST(AskPriceTest, NeverBelowMinPrice) {
  EXPECT_EQ(AskPriceMicros(SpotMargin(-50'000, 0, 48'000), 50'000, kTick), 48'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(-50'000, 0, 48'001), 50'000, kTick), 48'100);
  EXPECT_EQ(AskPriceMicros(Fixed(50'000, 20'000), std::nullopt, kTick), 50'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(0, 0, 20'000), 10'000, kTick), 20'000);
}

TEST(AskPriceTest, FallbackWithoutSpot) {
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000, 60'000), std::nullopt, kTick), 60'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000, 60'000), 0, kTick), 60'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000, 60'000), -5, kTick), 60'000);
  EXPECT_EQ(AskPriceMicros(SpotMargin(100'000, 10'000, 20'000), std::nullopt, kTick), 20'000);
  EXPECT_FALSE(AskPriceMicros(SpotMargin(100'000), std::nullopt, kTick).has_value());
  EXPECT_FALSE(AskPriceMicros(SpotMargin(100'000, 0, 20'000), std::nullopt, kTick).has_value());
}

TEST(AskPriceTest, CappedWithoutOverflow) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(AskPriceMicros(SpotMargin(kMarginMaxMicros), max, kTick), kPolicyPriceMaxMicros);
  EXPECT_EQ(AskPriceMicros(SpotMargin(0), max, 3), kPolicyPriceMaxMicros / 3 * 3);
  EXPECT_EQ(AskPriceMicros(Fixed(kPolicyPriceMaxMicros), std::nullopt, kTick),
            kPolicyPriceMaxMicros);
}

TEST(AskPriceTest, ParsedRulesPriceAsWritten) {
  const OwnerPolicy policy = ParseOrDie(ExampleOwnerPolicyToml());
  EXPECT_EQ(AskPriceMicros(PricingFor(policy, "cpu"), 40'000, kTick), 44'000);
  EXPECT_EQ(AskPriceMicros(PricingFor(policy, "cpu"), 10'000, kTick), 20'000);
  EXPECT_EQ(AskPriceMicros(PricingFor(policy, "cpu"), std::nullopt, kTick), 50'000);
  EXPECT_EQ(AskPriceMicros(PricingFor(policy, "gpu.h100"), 9'000'000, kTick), 2'500'000);
}

// ---- CPU samples and owner load -------------------------------------------------------------

constexpr char kProcStat[] =
    "cpu  10132153 290696 3084719 46828483 16683 0 25195 0 175628 0\n"
    "cpu0 1393280 32966 572056 13343292 6130 0 17875 0 23933 0\n"
    "cpu1 1335007 33204 402484 13425843 3542 0 3260 0 37066 0\n"
    "intr 1462898 0 9 0 0 0 0 0 0 1 0 0 0 0 0 0 0 0 0 0\n"
    "ctxt 242316958\n"
    "btime 1700000000\n"
    "processes 1094453\n"
    "procs_running 2\n"
    "procs_blocked 0\n"
    "softirq 3349342 1 1035245 1 111 60186 0 9 1012343 0 1241446\n";

TEST(CpuSampleTest, ParsesTheAggregateLine) {
  const absl::StatusOr<CpuSample> sample = ParseCpuSample(kProcStat);
  ASSERT_TRUE(sample.ok()) << sample.status();
  const uint64_t total = 10132153u + 290696u + 3084719u + 46828483u + 16683u + 0u + 25195u + 0u;
  EXPECT_EQ(sample->total, total);
  EXPECT_EQ(sample->busy, total - 46828483u - 16683u);
}

TEST(CpuSampleTest, OldKernelWithFourFields) {
  const absl::StatusOr<CpuSample> sample = ParseCpuSample("cpu 10 20 30 40\ncpu0 10 20 30 40\n");
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(*sample, (CpuSample{.busy = 60, .total = 100}));
}

TEST(CpuSampleTest, FindsTheCpuLineAnywhereAndIgnoresExtraFields) {
  const absl::StatusOr<CpuSample> sample =
      ParseCpuSample("ctxt 5\ncpu\t1 1 1 1 1 1 1 1 100 100 7 8\n");
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(*sample, (CpuSample{.busy = 6, .total = 8}));
}

TEST(CpuSampleTest, RefusesGarbage) {
  EXPECT_FALSE(ParseCpuSample("").ok());
  EXPECT_FALSE(ParseCpuSample("cpu0 1 2 3 4\n").ok());  // No aggregate line.
  EXPECT_FALSE(ParseCpuSample("cpu 1 2 3\n").ok());
  EXPECT_FALSE(ParseCpuSample("cpu 1 2 x 4\n").ok());
  EXPECT_FALSE(ParseCpuSample("cpu 1 2 -3 4\n").ok());
  EXPECT_FALSE(ParseCpuSample("cpu 18446744073709551615 1 1 1\n").ok());
  EXPECT_FALSE(ParseCpuSample("cpu 1 2 3 99999999999999999999\n").ok());
}

TEST(CpuSampleTest, ReadsTheRealProcStat) {
  const absl::StatusOr<CpuSample> sample = ReadCpuSample();
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_GT(sample->total, 0u);
  EXPECT_LE(sample->busy, sample->total);
  EXPECT_EQ(ReadCpuSample("/nonexistent/stat").status().code(), absl::StatusCode::kNotFound);
}

TEST(OwnerBusyFractionTest, SubtractsOurJobs) {
  const CpuSample before{.busy = 100, .total = 1000};
  const CpuSample after{.busy = 600, .total = 2000};
  EXPECT_EQ(OwnerBusyFraction(before, after, 0, 100), 0.5);
  // 2 CPU-seconds of jobs at 100 ticks/s = 200 of the 1000 ticks.
  EXPECT_DOUBLE_EQ(*OwnerBusyFraction(before, after, 2'000'000, 100), 0.3);
  EXPECT_EQ(OwnerBusyFraction(before, after, 9'000'000, 100), 0.0);
  EXPECT_EQ(OwnerBusyFraction(before, after, -5, 100), 0.5);
}

TEST(OwnerBusyFractionTest, NoTimeOrBackwardsIsUnknown) {
  const CpuSample a{.busy = 100, .total = 1000};
  EXPECT_FALSE(OwnerBusyFraction(a, a, 0, 100).has_value());
  EXPECT_FALSE(OwnerBusyFraction(a, CpuSample{.busy = 50, .total = 2000}, 0, 100).has_value());
  EXPECT_FALSE(OwnerBusyFraction(a, CpuSample{.busy = 200, .total = 900}, 0, 100).has_value());
}

// ---- LoadGovernor ---------------------------------------------------------------------------

LoadPolicy Load(double pause_above, double resume_below, int32_t sustain_s,
                int32_t resume_sustain_s) {
  return LoadPolicy{pause_above, resume_below, sustain_s, resume_sustain_s, PauseAction::kReclaim};
}

TEST(LoadGovernorTest, NeverPausesWithoutPauseAbove) {
  LoadGovernor governor{LoadPolicy{}};
  for (int64_t ms = 0; ms <= 600'000; ms += 1000) EXPECT_FALSE(governor.Observe(ms, 1.0));
}

TEST(LoadGovernorTest, PausesAfterSustainedLoad) {
  LoadGovernor governor(Load(0.6, 0.3, 30, 30));
  EXPECT_FALSE(governor.Observe(0, 0.7));
  EXPECT_FALSE(governor.Observe(29'999, 0.9));
  EXPECT_TRUE(governor.Observe(30'000, 0.7));
  EXPECT_TRUE(governor.paused());
}

TEST(LoadGovernorTest, ADipRestartsTheCount) {
  LoadGovernor governor(Load(0.6, 0.3, 30, 30));
  EXPECT_FALSE(governor.Observe(0, 0.7));
  EXPECT_FALSE(governor.Observe(20'000, 0.6));  // At the threshold is not above it.
  EXPECT_FALSE(governor.Observe(40'000, 0.7));
  EXPECT_FALSE(governor.Observe(69'999, 0.7));
  EXPECT_TRUE(governor.Observe(70'000, 0.7));
}

TEST(LoadGovernorTest, HysteresisKeepsItPausedBetweenThresholds) {
  LoadGovernor governor(Load(0.6, 0.3, 0, 60));
  EXPECT_TRUE(governor.Observe(0, 0.61));  // sustain 0: at once.
  for (int64_t ms = 1000; ms <= 300'000; ms += 1000) EXPECT_TRUE(governor.Observe(ms, 0.45));
  EXPECT_TRUE(governor.Observe(301'000, 0.3));  // At resume_below is not below it.
  EXPECT_TRUE(governor.Observe(302'000, 0.29));
  EXPECT_TRUE(governor.Observe(361'999, 0.1));
  EXPECT_FALSE(governor.Observe(362'000, 0.1));
  // Running again: it takes a new sustained spell to pause.
  EXPECT_TRUE(governor.Observe(363'000, 0.9));
}

TEST(LoadGovernorTest, ResumeUsesItsOwnSustain) {
  LoadGovernor governor(Load(0.5, 0.2, 10, 300));
  EXPECT_FALSE(governor.Observe(0, 1.0));
  EXPECT_TRUE(governor.Observe(10'000, 1.0));
  EXPECT_TRUE(governor.Observe(11'000, 0.0));
  EXPECT_TRUE(governor.Observe(200'000, 0.0));
  EXPECT_TRUE(governor.Observe(250'000, 0.25));  // Not below: restart.
  EXPECT_TRUE(governor.Observe(260'000, 0.0));
  EXPECT_TRUE(governor.Observe(559'999, 0.0));
  EXPECT_FALSE(governor.Observe(560'000, 0.0));
}

TEST(LoadGovernorTest, ParsedPolicyDrivesIt) {
  const OwnerPolicy policy = ParseOrDie("[load]\npause_above = 0.5\nsustain_s = 5\n");
  LoadGovernor governor(policy.load);
  EXPECT_FALSE(governor.Observe(1'000, 0.8));
  EXPECT_TRUE(governor.Observe(6'000, 0.8));
  EXPECT_TRUE(governor.Observe(7'000, 0.24));
  EXPECT_FALSE(governor.Observe(12'000, 0.24));
}

TEST(LoadGovernorDeathTest, TimeGoingBackwardsIsAProgrammerError) {
  LoadGovernor governor(Load(0.6, 0.3, 30, 30));
  governor.Observe(10'000, 0.1);
  EXPECT_DEATH(governor.Observe(9'999, 0.1), "time went backwards");
}

}  // namespace
}  // namespace ocx::agent
