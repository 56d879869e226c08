// MachineIndex: search results, ordering, paging, planning and explain on hand-made fleets,
// and a seeded randomized comparison against a brute-force scan with Query::Matches.
#include "src/query/index.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/query/test_util.h"

namespace ocx::query {
namespace {

using testing::MustParse;
using Ids = std::vector<uint64_t>;

Value N(int64_t units) { return Value::Number(units * 1'000'000); }
Value T(std::string text) { return Value::Text(std::move(text)); }

MachineIndex::SearchResult Find(const MachineIndex& index, std::string_view query,
                                std::vector<SortKey> sort = {}, size_t limit = 100,
                                size_t offset = 0) {
  MachineIndex::SearchOptions options;
  options.sort = std::move(sort);
  options.limit = limit;
  options.offset = offset;
  return index.Search(MustParse(query), options);
}

Ids Ids_(const MachineIndex& index, std::string_view query, std::vector<SortKey> sort = {}) {
  return Find(index, query, std::move(sort)).machines;
}

// ---- Basics ---------------------------------------------------------------------------------

TEST(MachineIndexTest, UpsertRemoveAndSize) {
  MachineIndex index;
  EXPECT_EQ(index.size(), 0u);
  index.Upsert(7, {{"region", T("eu")}});
  index.Upsert(3, {{"region", T("us")}});
  EXPECT_EQ(index.size(), 2u);
  EXPECT_TRUE(index.contains(7));
  index.Remove(7);
  index.Remove(7);    // Absent: nothing happens.
  index.Remove(999);  // Never there.
  EXPECT_EQ(index.size(), 1u);
  EXPECT_FALSE(index.contains(7));
  EXPECT_EQ(Ids_(index, ""), Ids{3});
  index.Upsert(7, {{"region", T("asia")}});
  EXPECT_EQ(Ids_(index, "region == \"asia\""), Ids{7});
  EXPECT_EQ(Ids_(index, "region == \"eu\""), Ids{});
}

TEST(MachineIndexTest, UpsertReplacesEveryAttribute) {
  MachineIndex index;
  index.Upsert(1, {{"region", T("eu")}, {"label.a", N(1)}, {"cpu.cores", N(4)}});
  index.Upsert(1, {{"region", T("us")}, {"cpu.cores", N(4)}});
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(Ids_(index, "region == \"eu\""), Ids{});
  EXPECT_EQ(Ids_(index, "region == \"us\""), Ids{1});
  EXPECT_EQ(Ids_(index, "label.a == 1"), Ids{});
  EXPECT_EQ(Ids_(index, "cpu.cores == 4"), Ids{1});
  // A label changes type.
  index.Upsert(1, {{"label.a", T("1")}});
  EXPECT_EQ(Ids_(index, "label.a == 1"), Ids{});
  EXPECT_EQ(Ids_(index, "label.a == \"1\""), Ids{1});
  EXPECT_EQ(Ids_(index, "cpu.cores == 4"), Ids{});
}

TEST(MachineIndexTest, LabelColumnsComeAndGo) {
  MachineIndex index;
  index.Upsert(1, {{"label.temp", N(1)}});
  index.Remove(1);
  EXPECT_EQ(Find(index, "label.temp == 1").total_matching, 0u);
  index.Upsert(2, {{"label.other", T("x")}});
  index.Upsert(3, {{"label.temp", T("y")}});
  EXPECT_EQ(Ids_(index, "label.temp == \"y\""), Ids{3});
  EXPECT_EQ(Ids_(index, "label.other == \"x\""), Ids{2});
  EXPECT_EQ(Ids_(index, "label.temp == 1"), Ids{});
}

TEST(MachineIndexTest, EmptyQueryMatchesEveryMachineInIdOrder) {
  MachineIndex index;
  for (const uint64_t id : {5, 1, 9, 3}) index.Upsert(id, {});
  EXPECT_EQ(Ids_(index, ""), (Ids{1, 3, 5, 9}));
  EXPECT_EQ(Find(index, "").total_matching, 4u);
}

// ---- Order and paging -----------------------------------------------------------------------

MachineIndex PricedFleet() {
  MachineIndex index;
  index.Upsert(1, {{"price", N(3)}, {"reputation", N(1)}});
  index.Upsert(2, {{"price", N(1)}, {"reputation", N(5)}});
  index.Upsert(3, {{"reputation", N(9)}});  // No price.
  index.Upsert(4, {{"price", N(1)}, {"reputation", N(2)}});
  index.Upsert(5, {{"price", N(2)}});  // No reputation.
  return index;
}

TEST(MachineIndexTest, SortsByKeysWithMissingLastAndTiesById) {
  const MachineIndex index = PricedFleet();
  EXPECT_EQ(Ids_(index, "", {{"price", false}}), (Ids{2, 4, 5, 1, 3}));
  EXPECT_EQ(Ids_(index, "", {{"price", true}}), (Ids{1, 5, 2, 4, 3}));
  EXPECT_EQ(Ids_(index, "", {{"price", false}, {"reputation", true}}), (Ids{2, 4, 5, 1, 3}));
  EXPECT_EQ(Ids_(index, "", {{"reputation", true}}), (Ids{3, 2, 4, 1, 5}));
  EXPECT_EQ(Ids_(index, "", {{"label.none", false}}), (Ids{1, 2, 3, 4, 5}));
}

TEST(MachineIndexTest, MixedTypesSortNumbersFirstAscendingTextsFirstDescending) {
  MachineIndex index;
  index.Upsert(1, {{"label.x", T("b")}});
  index.Upsert(2, {{"label.x", N(2)}});
  index.Upsert(3, {});
  index.Upsert(4, {{"label.x", T("a")}});
  index.Upsert(5, {{"label.x", N(1)}});
  EXPECT_EQ(Ids_(index, "", {{"label.x", false}}), (Ids{5, 2, 4, 1, 3}));
  EXPECT_EQ(Ids_(index, "", {{"label.x", true}}), (Ids{1, 4, 2, 5, 3}));
}

TEST(MachineIndexTest, LimitAndOffsetPageThroughTheOrder) {
  const MachineIndex index = PricedFleet();
  const std::vector<SortKey> by_price = {{"price", false}};
  EXPECT_EQ(Find(index, "", by_price, 2, 0).machines, (Ids{2, 4}));
  EXPECT_EQ(Find(index, "", by_price, 2, 2).machines, (Ids{5, 1}));
  EXPECT_EQ(Find(index, "", by_price, 2, 4).machines, (Ids{3}));
  const MachineIndex::SearchResult past_the_end = Find(index, "", by_price, 2, 5);
  EXPECT_TRUE(past_the_end.machines.empty());
  EXPECT_EQ(past_the_end.total_matching, 5u);
  EXPECT_TRUE(Find(index, "", by_price, 0, 0).machines.empty());
  EXPECT_EQ(Find(index, "", by_price, SIZE_MAX, SIZE_MAX).total_matching, 5u);
  EXPECT_EQ(Find(index, "", by_price, SIZE_MAX, 3).machines, (Ids{1, 3}));
}

// ---- Semantics through the index -------------------------------------------------------------

TEST(MachineIndexTest, UnknownAttributesAndTextsMatchNothing) {
  MachineIndex index;
  index.Upsert(1, {{"region", T("eu")}});
  index.Upsert(2, {{"region", T("us")}});
  index.Upsert(3, {{"region", N(1)}});  // The wrong type: never matches a string.
  index.Upsert(4, {});
  EXPECT_EQ(Find(index, "label.nothing == 1").total_matching, 0u);
  EXPECT_EQ(Find(index, "label.nothing != 1").total_matching, 0u);
  EXPECT_EQ(Find(index, "region == \"nowhere\"").total_matching, 0u);
  EXPECT_EQ(Ids_(index, "region != \"nowhere\""), (Ids{1, 2}));
  EXPECT_EQ(Ids_(index, "!(region == \"nowhere\")"), (Ids{1, 2, 3, 4}));
  EXPECT_EQ(Ids_(index, "region in [\"eu\", \"nowhere\"]"), (Ids{1}));
  EXPECT_EQ(Ids_(index, "region =~ \"u\""), (Ids{1, 2}));
}

// ---- Planning -------------------------------------------------------------------------------

MachineIndex LargeFleet() {
  MachineIndex index;
  for (uint64_t id = 1; id <= 1000; ++id) {
    Attributes a = {{"region", T(id % 100 == 0 ? "rare" : "eu")},
                    {"cpu.cores", N(static_cast<int64_t>(id % 16))},
                    {"cpu.model", T(id % 200 == 7 ? "rare-model" : "common")}};
    if (id % 250 == 0) a["gpu.model"] = T("h100");
    index.Upsert(id, std::move(a));
  }
  return index;
}

TEST(MachineIndexPlanTest, SelectiveConjunctNarrowsTheCandidates) {
  const MachineIndex index = LargeFleet();
  const MachineIndex::SearchResult result = Find(index, "cpu.cores >= 0 && region == \"rare\"");
  EXPECT_TRUE(result.used_index);
  EXPECT_EQ(result.examined, 10u);
  EXPECT_EQ(result.total_matching, 10u);
  const MachineIndex::SearchResult range = Find(index, "cpu.cores > 14 && cpu.cores <= 15");
  EXPECT_TRUE(range.used_index);
  EXPECT_EQ(range.total_matching, 62u);  // id % 16 == 15 for 1..1000.
  EXPECT_EQ(range.examined, 62u);
}

TEST(MachineIndexPlanTest, OrOfIndexableConditionsUsesTheUnion) {
  const MachineIndex index = LargeFleet();
  const MachineIndex::SearchResult result =
      Find(index, "region == \"rare\" || gpu.model == \"h100\"");
  EXPECT_TRUE(result.used_index);
  // 10 rare regions and 4 GPUs, of which 500 and 1000 are both: 12 distinct candidates.
  EXPECT_EQ(result.total_matching, 12u);
  EXPECT_EQ(result.examined, 12u);
}

TEST(MachineIndexPlanTest, RegexIsEvaluatedOncePerDistinctText) {
  const MachineIndex index = LargeFleet();
  const MachineIndex::SearchResult result = Find(index, "cpu.model =~ \"^rare\"");
  EXPECT_TRUE(result.used_index);
  EXPECT_EQ(result.examined, 5u);
  EXPECT_EQ(result.total_matching, 5u);
}

TEST(MachineIndexPlanTest, BroadOrUnindexableQueriesScan) {
  const MachineIndex index = LargeFleet();
  for (const char* query : {"region != \"eu\"", "!(region == \"eu\")", "region == \"eu\"",
                            "region == \"rare\" || !(cpu.cores == 1)"}) {
    const MachineIndex::SearchResult result = Find(index, query);
    EXPECT_FALSE(result.used_index) << query;
    EXPECT_EQ(result.examined, 1000u) << query;
  }
}

// ---- Explain --------------------------------------------------------------------------------

TEST(MachineIndexExplainTest, CountsEachClauseAloneAndCumulatively) {
  MachineIndex index;
  index.Upsert(1, {{"region", T("eu")}, {"gpu.count", N(1)}, {"cpu.cores", N(8)}});
  index.Upsert(2, {{"region", T("eu")}, {"gpu.count", N(0)}, {"cpu.cores", N(16)}});
  index.Upsert(3, {{"region", T("us")}, {"gpu.count", N(2)}, {"cpu.cores", N(4)}});
  index.Upsert(4, {{"region", T("asia")}, {"gpu.count", N(0)}, {"cpu.cores", N(8)}});
  index.Upsert(5, {{"gpu.count", N(1)}, {"cpu.cores", N(32)}});
  const std::vector<MachineIndex::ClauseReport> reports = index.Explain(
      MustParse("gpu.count >= 1 && region == \"eu\" && (cpu.cores >= 16 || cpu.cores < 2)"));
  const std::vector<MachineIndex::ClauseReport> expected = {
      {"gpu.count >= 1", 3, 2, 3},
      {"region == \"eu\"", 2, 3, 1},
      {"(cpu.cores >= 16 || cpu.cores < 2)", 2, 3, 0},
  };
  EXPECT_EQ(reports, expected);
  EXPECT_TRUE(index.Explain(MustParse("")).empty());
  const std::vector<MachineIndex::ClauseReport> single =
      index.Explain(MustParse("region == \"us\" || region == \"asia\""));
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].matching_alone, 2u);
  EXPECT_EQ(single[0].remaining_after, 2u);
}

// ---- Randomized: the index equals a brute-force scan -----------------------------------------

// The reference order, written out from docs/formats/query.md independently of index.cc.
bool ReferenceLess(const std::vector<SortKey>& keys, uint64_t a_id, const Attributes& a,
                   uint64_t b_id, const Attributes& b) {
  auto rank = [](const Attributes& m, const SortKey& key) {
    const auto it = m.find(key.attribute);
    if (it == m.end()) return 2;
    return it->second.is_number == !key.descending ? 0 : 1;
  };
  for (const SortKey& key : keys) {
    const int ra = rank(a, key);
    const int rb = rank(b, key);
    if (ra != rb) return ra < rb;
    if (ra == 2) continue;
    const Value& x = a.at(key.attribute);
    const Value& y = b.at(key.attribute);
    if (x.is_number && x.number_micros != y.number_micros) {
      return key.descending ? x.number_micros > y.number_micros : x.number_micros < y.number_micros;
    }
    if (!x.is_number && x.text != y.text) {
      return key.descending ? x.text > y.text : x.text < y.text;
    }
  }
  return a_id < b_id;
}

MachineIndex::SearchResult BruteForce(const std::map<uint64_t, Attributes>& fleet,
                                      const Query& query,
                                      const MachineIndex::SearchOptions& options) {
  std::vector<uint64_t> matched;
  for (const auto& [id, attributes] : fleet) {
    if (query.Matches(attributes)) matched.push_back(id);
  }
  std::sort(matched.begin(), matched.end(), [&](uint64_t a, uint64_t b) {
    return ReferenceLess(options.sort, a, fleet.at(a), b, fleet.at(b));
  });
  MachineIndex::SearchResult result;
  result.total_matching = matched.size();
  for (size_t i = options.offset; i < matched.size() && i - options.offset < options.limit; ++i) {
    result.machines.push_back(matched[i]);
  }
  return result;
}

std::vector<SortKey> RandomSort(base::Rng& rng) {
  static constexpr std::string_view kKeys[] = {"price",      "cpu.cores", "region",
                                               "label.tier", "label.n",   "label.none"};
  std::vector<SortKey> keys;
  const uint64_t count = rng.Below(3);
  for (uint64_t i = 0; i < count; ++i) {
    const std::string attribute(kKeys[rng.Below(6)]);
    if (std::any_of(keys.begin(), keys.end(),
                    [&](const SortKey& k) { return k.attribute == attribute; })) {
      continue;
    }
    keys.push_back({attribute, rng.Percent(50)});
  }
  return keys;
}

void CompareWithBruteForce(uint64_t seed, size_t machines, size_t queries, size_t* indexed,
                           size_t* scanned) {
  base::Rng rng(seed);
  MachineIndex index;
  std::map<uint64_t, Attributes> fleet;
  auto mutate = [&] {
    const uint64_t id = rng.Below(machines * 2);
    if (rng.Percent(15)) {
      index.Remove(id);
      fleet.erase(id);
    } else {
      Attributes attributes = testing::RandomMachine(rng);
      index.Upsert(id, attributes);
      fleet[id] = std::move(attributes);
    }
  };
  for (size_t i = 0; i < machines * 2; ++i) mutate();
  for (size_t q = 0; q < queries; ++q) {
    for (int i = 0; i < 3; ++i) mutate();
    ASSERT_EQ(index.size(), fleet.size()) << "seed " << seed;
    const std::string text = testing::RandomQueryText(rng);
    const Query query = MustParse(text);
    MachineIndex::SearchOptions options;
    options.sort = RandomSort(rng);
    options.limit = rng.Percent(20) ? 1000 : rng.Below(30);
    options.offset = rng.Percent(50) ? 0 : rng.Below(40);
    const MachineIndex::SearchResult got = index.Search(query, options);
    const MachineIndex::SearchResult want = BruteForce(fleet, query, options);
    ASSERT_EQ(got.total_matching, want.total_matching)
        << "seed " << seed << " query #" << q << ": " << text;
    ASSERT_EQ(got.machines, want.machines)
        << "seed " << seed << " query #" << q << ": " << text << " sort "
        << FormatSort(options.sort) << " limit " << options.limit << " offset " << options.offset;
    (got.used_index ? *indexed : *scanned) += 1;
    // Explain agrees with the brute force too.
    if (q % 10 == 0) {
      std::vector<uint64_t> remaining;
      for (const auto& [id, attributes] : fleet) remaining.push_back(id);
      const std::vector<Clause> clauses = query.TopLevelClauses();
      const std::vector<MachineIndex::ClauseReport> reports = index.Explain(query);
      ASSERT_EQ(reports.size(), clauses.size());
      for (size_t c = 0; c < clauses.size(); ++c) {
        size_t alone = 0;
        for (const auto& [id, attributes] : fleet) alone += clauses[c].query.Matches(attributes);
        std::erase_if(remaining,
                      [&](uint64_t id) { return !clauses[c].query.Matches(fleet.at(id)); });
        ASSERT_EQ(reports[c].matching_alone, alone) << "seed " << seed << ": " << text;
        ASSERT_EQ(reports[c].ruled_out_alone, fleet.size() - alone);
        ASSERT_EQ(reports[c].remaining_after, remaining.size()) << "seed " << seed << ": " << text;
      }
    }
  }
}

TEST(MachineIndexRandomTest, SearchEqualsBruteForceOnSmallFleets) {
  size_t indexed = 0;
  size_t scanned = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    CompareWithBruteForce(seed, 150, 150, &indexed, &scanned);
  }
  // Both plans were exercised.
  EXPECT_GT(indexed, 50u);
  EXPECT_GT(scanned, 50u);
}

TEST(MachineIndexRandomTest, SearchEqualsBruteForceOnALargerFleet) {
  size_t indexed = 0;
  size_t scanned = 0;
  CompareWithBruteForce(77, 2000, 300, &indexed, &scanned);
  EXPECT_GT(indexed, 30u);
  EXPECT_GT(scanned, 30u);
}

TEST(MachineIndexTest, MemoryEstimateGrowsWithTheFleet) {
  MachineIndex index;
  const size_t empty = index.MemoryBytesEstimate();
  base::Rng rng(5);
  for (uint64_t id = 0; id < 1000; ++id) index.Upsert(id, testing::RandomMachine(rng));
  EXPECT_GT(index.MemoryBytesEstimate(), empty + 1000 * 16 * 5);
}

}  // namespace
}  // namespace ocx::query
