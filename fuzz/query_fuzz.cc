// Fuzz harness: the discovery query language (src/query, docs/formats/query.md), which parses
// text from any user (GET /v1/offers?q=, order constraints) on the sequencer thread.
//
// The input is both a query text and a sort text. Properties checked:
//   - Query::Parse and ParseSort never crash; an error's column lies in [1, size + 1] and
//     FormatSyntaxError can show it;
//   - a parsed query's Canonical() parses again to an equal query with the same canonical
//     text, and so does each top-level clause's canonical text;
//   - FormatSort of parsed sort keys parses back to the same keys;
//   - MachineIndex::Search over a fixed fleet gives exactly the machines a scan with
//     Query::Matches gives (in id order; as a permutation when sorted), and Explain agrees
//     with the clauses evaluated one by one.
#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "src/base/assert.h"
#include "src/base/rng.h"
#include "src/query/index.h"
#include "src/query/query.h"
#include "src/query/value.h"

namespace ocx::fuzz {
namespace {

using query::Attributes;
using query::MachineIndex;
using query::Query;
using query::SortKey;
using query::SyntaxError;
using query::Value;

// A fixed fleet over a small domain, so that fuzzed literals match some machines: every known
// attribute, labels of both types, missing values, and enough machines that the index's plans
// (not only the full scan) are taken for selective queries.
struct Fleet {
  std::map<uint64_t, Attributes> machines;
  MachineIndex index;
};

Fleet MakeFleet() {
  Fleet fleet;
  base::Rng rng(20240601);
  constexpr std::string_view kTexts[] = {"eu", "us", "asia", "a", "b", "", "x86_64", "linux"};
  auto number = [&] { return Value::Number(rng.Between(-2, 16) * 500'000); };
  auto text = [&] { return Value::Text(std::string(kTexts[rng.Below(std::size(kTexts))])); };
  for (uint64_t id = 1; id <= 48; ++id) {
    Attributes a;
    for (const query::KnownAttribute& known : query::kKnownAttributes) {
      if (!rng.Percent(80)) continue;
      a[std::string(known.name)] = known.type == query::AttributeType::kNumber ? number() : text();
    }
    if (rng.Percent(60)) a["label.tier"] = rng.Percent(50) ? text() : number();
    if (rng.Percent(30)) a["label.n"] = rng.Percent(50) ? text() : number();
    if (id % 16 == 0) a["label.rare"] = Value::Text("gold");
    fleet.index.Upsert(id, a);
    fleet.machines[id] = std::move(a);
  }
  return fleet;
}

const Fleet& TheFleet() {
  static const Fleet fleet = MakeFleet();
  return fleet;
}

void CheckError(std::string_view text, const SyntaxError& error) {
  OCX_ASSERT(error.column >= 1 && static_cast<size_t>(error.column) <= text.size() + 1);
  OCX_ASSERT(!error.message.empty());
  OCX_ASSERT(!query::FormatSyntaxError(text, error).empty());
}

void CheckSort(std::string_view text) {
  auto parsed = query::ParseSort(text);
  if (const auto* error = std::get_if<SyntaxError>(&parsed)) return CheckError(text, *error);
  const std::vector<SortKey>& keys = std::get<std::vector<SortKey>>(parsed);
  const std::string formatted = query::FormatSort(keys);
  auto again = query::ParseSort(formatted);
  OCX_ASSERT_MSG(std::holds_alternative<std::vector<SortKey>>(again),
                 "FormatSort gave a text ParseSort refuses");
  OCX_ASSERT(std::get<std::vector<SortKey>>(again) == keys);
}

// Parses a text the library made (a canonical form): it must parse, to an equal query.
Query MustReparse(const std::string& canonical, const Query& original) {
  auto parsed = Query::Parse(canonical);
  OCX_ASSERT_MSG(std::holds_alternative<Query>(parsed), "a canonical text does not parse");
  Query query = std::get<Query>(std::move(parsed));
  OCX_ASSERT_MSG(query == original, "Parse(Canonical()) is not an equal query");
  OCX_ASSERT_MSG(query.Canonical() == canonical, "Canonical() is not a fixed point");
  return query;
}

// `reparsed` is Parse(query.Canonical()): it must select the same machines.
void CheckSearch(const Query& query, const Query& reparsed) {
  const Fleet& fleet = TheFleet();
  std::vector<uint64_t> scanned;
  for (const auto& [id, attributes] : fleet.machines) {
    const bool matches = query.Matches(attributes);
    OCX_ASSERT_MSG(reparsed.Matches(attributes) == matches,
                   "the canonical form matches other machines");
    if (matches) scanned.push_back(id);
  }
  MachineIndex::SearchOptions by_id;
  by_id.limit = fleet.machines.size();
  const MachineIndex::SearchResult found = fleet.index.Search(query, by_id);
  OCX_ASSERT_MSG(found.total_matching == scanned.size(), "index and scan disagree on the count");
  OCX_ASSERT_MSG(found.machines == scanned, "index and scan disagree on the machines");

  MachineIndex::SearchOptions sorted = by_id;
  sorted.sort = {{"price", false}, {"label.tier", true}};
  MachineIndex::SearchResult ordered = fleet.index.Search(query, sorted);
  OCX_ASSERT(ordered.total_matching == scanned.size());
  std::sort(ordered.machines.begin(), ordered.machines.end());
  OCX_ASSERT_MSG(ordered.machines == scanned, "a sorted search lost or added machines");

  // Explain against the clauses evaluated one by one (each clause once per machine).
  const std::vector<query::Clause> clauses = query.TopLevelClauses();
  const std::vector<MachineIndex::ClauseReport> reports = fleet.index.Explain(query);
  OCX_ASSERT(reports.size() == clauses.size());
  std::vector<uint64_t> remaining;  // Ascending.
  for (const auto& [id, attributes] : fleet.machines) remaining.push_back(id);
  for (size_t c = 0; c < clauses.size(); ++c) {
    size_t alone = 0;
    std::vector<uint64_t> still;
    for (const auto& [id, attributes] : fleet.machines) {
      if (!clauses[c].query.Matches(attributes)) continue;
      ++alone;
      if (std::binary_search(remaining.begin(), remaining.end(), id)) still.push_back(id);
    }
    remaining = std::move(still);
    OCX_ASSERT(reports[c].matching_alone == alone);
    OCX_ASSERT(reports[c].ruled_out_alone == fleet.machines.size() - alone);
    OCX_ASSERT(reports[c].remaining_after == remaining.size());
  }
}

}  // namespace
}  // namespace ocx::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ocx::fuzz;
  const std::string_view text = AsText(data, size);
  CheckSort(text);

  auto parsed = Query::Parse(text);
  if (const auto* error = std::get_if<SyntaxError>(&parsed)) {
    CheckError(text, *error);
    return 0;
  }
  const Query& query = std::get<Query>(parsed);
  const std::string canonical = query.Canonical();
  OCX_ASSERT(query.empty() == canonical.empty());
  const Query reparsed = MustReparse(canonical, query);
  const std::vector<ocx::query::Clause> clauses = query.TopLevelClauses();
  for (const ocx::query::Clause& clause : clauses) {
    OCX_ASSERT(clause.query.Canonical() == clause.canonical);
    // A single clause is the whole query, already parsed again above.
    if (clauses.size() > 1) MustReparse(clause.canonical, clause.query);
  }
  CheckSearch(query, reparsed);
  return 0;
}
