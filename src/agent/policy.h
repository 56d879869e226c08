// The machine owner's policy for the provider agent (docs/formats/provider-policy.md): what
// share of the machine to sell, when, when to step aside because the owner is using the
// machine, at what price, and what the machine declares about itself. It is a TOML file that
// the owner writes; ParseOwnerPolicy / LoadOwnerPolicy read and fully validate it, so an
// OwnerPolicy that exists is one the agent can act on without further checks.
//
// Beside the parser are the decisions the agent takes from the policy, each a pure function
// of its inputs (time, prices and load samples are arguments, never read from a clock) so that
// tests pin them exactly:
//   - IsAvailable / SecondsUntilAvailabilityChanges: the weekly availability windows.
//   - AskPriceMicros: the ask per slot-hour, in integer micro-credits (RULEBOOK section 1).
//   - ParseCpuSample / OwnerBusyFraction / LoadGovernor: the owner's own CPU load, and the
//     pause/resume decision with hysteresis and sustain times.
//
// toml++ reports syntax errors by throwing; the exception is caught here and becomes an
// InvalidArgument with file:line:column, so nothing is thrown past this module.
// Thread-safety: the free functions share no state (local time uses localtime_r) and are
// thread-safe; LoadGovernor is thread-compatible (one owner drives it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "src/agent/discovery.h"

namespace ocx::agent {

// ---- Named bounds ---------------------------------------------------------------------------
inline constexpr size_t kOwnerPolicyFileBytesMax = 1 << 20;
inline constexpr size_t kAvailabilityWindowsMax = 64;
inline constexpr size_t kLabelsMax = 32;
inline constexpr size_t kLabelKeyBytesMax = 64;
inline constexpr size_t kLabelValueBytesMax = 256;
inline constexpr size_t kMachineNameBytesMax = 64;  // Also the region and market names.
inline constexpr size_t kPolicyMarketsMax = 64;     // [machine] markets and pricing tables.
// No price in a policy may exceed one million credits per slot-hour; AskPriceMicros never
// returns more (so price * slots * hours stays far from int64 overflow downstream).
inline constexpr int64_t kPolicyPriceMaxMicros = int64_t{1'000'000} * 1'000'000;
// A spot margin lies in (-1, 10]: from "almost free" to "eleven times the spot price".
inline constexpr int64_t kMarginMinMicros = -1'000'000;  // Exclusive.
inline constexpr int64_t kMarginMaxMicros = 10'000'000;  // Inclusive.
inline constexpr int32_t kSustainMaxSeconds = 86'400;
// The price of DefaultOwnerPolicy() and of a file without a [pricing] table: 0.05 credits.
inline constexpr int64_t kDefaultPriceMicros = 50'000;

// ---- Availability ---------------------------------------------------------------------------
// Days of the week as bits of AvailabilityWindow::days_mask, ISO order: Monday is bit 0.
inline constexpr uint8_t kMonday = 1 << 0;
inline constexpr uint8_t kSunday = 1 << 6;
inline constexpr uint8_t kEveryDay = 0x7f;
inline constexpr int kMinutesPerDay = 24 * 60;
inline constexpr int kMinutesPerWeek = 7 * kMinutesPerDay;

// "mon-fri 22:00-07:00": on each day of days_mask, from start_minute of that day. A window
// with end_minute <= start_minute crosses midnight and ends on the next day (Sunday's runs
// into Monday); an end of 00:00 is the same midnight as 24:00. Invariants (checked by the
// parser): days_mask in 1..0x7f, start_minute in 0..1439, end_minute in 0..1440,
// end_minute != start_minute.
struct AvailabilityWindow {
  uint8_t days_mask = kEveryDay;
  int start_minute = 0;
  int end_minute = kMinutesPerDay;
  bool operator==(const AvailabilityWindow&) const = default;
};

// Parses one window as written in the file: "[DAYS ]HH:MM-HH:MM" where DAYS is "daily" or a
// comma list of days ("mon") and day ranges ("mon-fri", "fri-mon" wraps round the week);
// without DAYS the window is daily. Day names are three letters, any case. HH:MM is 00:00 to
// 23:59, and 24:00 as an end. InvalidArgument with a sentence (no location) when malformed.
absl::StatusOr<AvailabilityWindow> ParseAvailabilityWindow(std::string_view text);

// ---- Owner load -----------------------------------------------------------------------------
// What the agent does when the owner's load pauses sharing: reclaim the running spot leases
// (30 s notice, RULEBOOK section 4), or only stop selling and let them run to their end.
enum class PauseAction : uint8_t { kReclaim, kDrain };

// Invariants when pause_above is set: pause_above in (0, 1], resume_below in [0, pause_above),
// sustain times in 0..kSustainMaxSeconds. Without pause_above the other fields do nothing.
struct LoadPolicy {
  std::optional<double> pause_above;  // Owner's busy fraction of the whole machine.
  double resume_below = 0;            // Default in a file: pause_above / 2.
  int32_t sustain_s = 30;             // Above pause_above this long: pause.
  int32_t resume_sustain_s = 30;      // Below resume_below this long: resume. Default: sustain_s.
  PauseAction on_pause = PauseAction::kReclaim;
  bool operator==(const LoadPolicy&) const = default;
};

// ---- Pricing --------------------------------------------------------------------------------
// Invariants (checked by the parser): 0 <= every price <= kPolicyPriceMaxMicros; kFixed has
// price_micros > 0 and >= min_price_micros, and margin_micros 0; kSpotMargin has margin_micros
// in (kMarginMinMicros, kMarginMaxMicros] and price_micros 0 when no fallback was given.
struct PricingRule {
  enum class Kind : uint8_t { kFixed, kSpotMargin };
  Kind kind = Kind::kFixed;
  // kFixed: the ask. kSpotMargin: the fallback while no spot price is known; 0: none.
  int64_t price_micros = kDefaultPriceMicros;
  // kSpotMargin: ask = spot * (1 + margin), the margin a fraction in micro-units.
  int64_t margin_micros = 0;
  int64_t min_price_micros = 0;  // The ask is never below this.
  bool operator==(const PricingRule&) const = default;
};

// ---- The policy -----------------------------------------------------------------------------
struct OwnerPolicy {
  // [share]: fractions of the machine, each in (0, 1].
  SharePolicy share;
  // [availability]: the windows are in local time (TZ, as localtime_r sees it) unless utc.
  // No windows: always available.
  bool utc = false;
  std::vector<AvailabilityWindow> windows;
  // [load]
  LoadPolicy load;
  // [pricing]: the rule of every market that has no table of its own.
  PricingRule pricing;
  // [pricing.markets."<market>"]: a complete rule for that market (nothing is inherited).
  std::map<std::string, PricingRule> market_pricing;
  // [machine]. An empty name: the agent uses the hostname. An empty region: none declared.
  std::string name;
  std::string region;
  std::map<std::string, std::string> labels;  // Attributes the owner declares.
  bool network = false;                       // Whether jobs may reach the network.
  // Markets to sell in; empty: every market the machine qualifies for.
  std::vector<std::string> markets;
};

// Share everything, always available, never pause for load, sell at a fixed 0.05 credits per
// slot-hour in every market the machine qualifies for, no network. What an empty file gives.
OwnerPolicy DefaultOwnerPolicy();

// Parses and validates policy TOML. Missing keys keep their defaults. Unknown tables or keys,
// wrong types and invalid values are InvalidArgument whose message starts with
// "source:line:column: " and names the key as in the file:
// "policy.toml:7:9: pricing.price must be a decimal string like \"0.05\", not a float".
absl::StatusOr<OwnerPolicy> ParseOwnerPolicy(std::string_view toml_text,
                                             std::string_view source_name = "policy.toml");
// Reads the file at `path` (at most kOwnerPolicyFileBytesMax bytes) and parses it; errors
// name the path. A file that cannot be read: the errno's status (NotFound, ...).
absl::StatusOr<OwnerPolicy> LoadOwnerPolicy(const std::string& path);

// The commented example of docs/formats/provider-policy.md, with every key; it parses.
std::string ExampleOwnerPolicyToml();

// The rule for `market`: its own table if it has one, else [pricing].
const PricingRule& PricingFor(const OwnerPolicy& policy, std::string_view market);
// Whether the owner lets the agent sell in `market` (empty `markets`: every market).
bool OffersMarket(const OwnerPolicy& policy, std::string_view market);

// Whether `unix_seconds` lies inside an availability window (always, without windows).
bool IsAvailable(const OwnerPolicy& policy, int64_t unix_seconds);
// Seconds (> 0) from `unix_seconds` until IsAvailable next changes, counting daylight-saving
// shifts of local time; nullopt when it never changes (no windows, or the windows cover the
// whole week). The agent that must free the machine by a window's end starts the 30 s reclaim
// notice that much earlier.
std::optional<int64_t> SecondsUntilAvailabilityChanges(const OwnerPolicy& policy,
                                                       int64_t unix_seconds);

// The ask per slot-hour in micro-credits: the fixed price, or for kSpotMargin
// ceil(spot * (1 + margin)) when a positive spot price is known and the fallback price when
// not; then raised to min_price, rounded up to a positive multiple of `tick_micros`, and
// capped at the largest multiple of the tick not above kPolicyPriceMaxMicros. nullopt: no ask
// (kSpotMargin without a spot price and without a fallback). Integer arithmetic only.
// tick_micros must be in 1..kPolicyPriceMaxMicros.
std::optional<int64_t> AskPriceMicros(const PricingRule& rule, std::optional<int64_t> spot_micros,
                                      int64_t tick_micros);

// ---- Owner load from /proc/stat -------------------------------------------------------------
// The aggregate "cpu" line of /proc/stat in clock ticks (USER_HZ): total = user + nice +
// system + idle + iowait + irq + softirq + steal (guest time is already inside user and nice),
// busy = total - idle - iowait.
struct CpuSample {
  uint64_t busy = 0;
  uint64_t total = 0;
  bool operator==(const CpuSample&) const = default;
};
// Reads the first 4 KiB of `proc_stat` (the cpu line comes first) and parses it.
absl::StatusOr<CpuSample> ReadCpuSample(const std::string& proc_stat = "/proc/stat");
// Needs the "cpu" line with at least user, nice, system and idle (old kernels stop there).
absl::StatusOr<CpuSample> ParseCpuSample(std::string_view proc_stat_text);

// The owner's busy fraction of the whole machine between two samples, in [0, 1]: all busy
// time minus what our jobs used (their cgroups' CPU time in microseconds over the same
// interval), over all time. ticks_per_s is sysconf(_SC_CLK_TCK), positive. nullopt when the
// samples span no time or go backwards.
std::optional<double> OwnerBusyFraction(const CpuSample& before, const CpuSample& after,
                                        int64_t jobs_cpu_us, int64_t ticks_per_s);

// Decides from owner-load observations whether sharing is paused: it pauses once the load has
// stayed above pause_above for sustain_s, and resumes once it has stayed below resume_below
// for resume_sustain_s; a single observation on the other side restarts the count. Never
// pauses without pause_above. Starts unpaused.
// Thread-compatible. Invariants: now_ms never decreases (a monotonic clock), fractions are in
// [0, 1]; both asserted.
class LoadGovernor {
 public:
  // `policy` must satisfy LoadPolicy's invariants (asserted).
  explicit LoadGovernor(const LoadPolicy& policy);

  // Records the owner's busy fraction at now_ms; returns paused().
  bool Observe(int64_t now_ms, double owner_busy_fraction);
  bool paused() const { return paused_; }

 private:
  LoadPolicy policy_;
  bool paused_ = false;
  // Since when every observation has been on the switching side (above pause_above while
  // running, below resume_below while paused); nullopt: the last one was not.
  std::optional<int64_t> switching_since_ms_;
  std::optional<int64_t> last_ms_;
};

}  // namespace ocx::agent
