#include "src/cli/suggest.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace ocx::cli {
namespace {

TEST(EditDistanceTest, EqualWordsAreZeroApart) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("offers", "offers"), 0u);
}

TEST(EditDistanceTest, FromOrToNothingIsTheLength) {
  EXPECT_EQ(EditDistance("", "job"), 3u);
  EXPECT_EQ(EditDistance("job", ""), 3u);
}

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("offer", "offers"), 1u);
  EXPECT_EQ(EditDistance("offers", "offer"), 1u);
  EXPECT_EQ(EditDistance("bench", "bunch"), 1u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(EditDistanceTest, ASwapOfNeighboursIsOneEdit) {
  EXPECT_EQ(EditDistance("discvoer", "discover"), 1u);
  EXPECT_EQ(EditDistance("shwo", "show"), 1u);
  EXPECT_EQ(EditDistance("engien", "engine"), 1u);
  EXPECT_EQ(EditDistance("ab", "ba"), 1u);
}

TEST(EditDistanceTest, EditsNoSubstringTwice) {
  // Optimal string alignment: "ca" -> "ac" -> "abc" would edit the swapped pair again.
  EXPECT_EQ(EditDistance("ca", "abc"), 3u);
}

TEST(EditDistanceTest, IsSymmetric) {
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"provider", "porvdier"}, {"sandbox", "sbx"}, {"", "x"}, {"replay", "relpay"}}) {
    EXPECT_EQ(EditDistance(a, b), EditDistance(b, a)) << a << " " << b;
  }
}

TEST(SuggestionDistanceMaxTest, GrowsWithTheWordAndStaysBelowItsLength) {
  EXPECT_EQ(SuggestionDistanceMax(""), 0u);
  EXPECT_EQ(SuggestionDistanceMax("x"), 0u);
  EXPECT_EQ(SuggestionDistanceMax("ab"), 1u);
  EXPECT_EQ(SuggestionDistanceMax("abc"), 2u);
  EXPECT_EQ(SuggestionDistanceMax("offer"), 2u);
  EXPECT_EQ(SuggestionDistanceMax("statemnet"), 3u);
  EXPECT_EQ(SuggestionDistanceMax("abcdefghijkl"), 4u);
}

const std::vector<std::string> kTopLevel = {
    "demo", "replay", "bench", "sandbox", "provider", "exchange",  "run",   "jobs",
    "job",  "logs",   "book",  "order",   "account",  "statement", "offers"};

TEST(NearestNameTest, SuggestsTheCommandATypoMeant) {
  EXPECT_EQ(NearestName("offer", kTopLevel), "offers");
  EXPECT_EQ(NearestName("provdier", kTopLevel), "provider");
  EXPECT_EQ(NearestName("exchnage", kTopLevel), "exchange");
  EXPECT_EQ(NearestName("statment", kTopLevel), "statement");
  EXPECT_EQ(NearestName("rpelay", kTopLevel), "replay");
}

TEST(NearestNameTest, SuggestsNothingForAWordFarFromEveryName) {
  EXPECT_EQ(NearestName("zzzzqqq", kTopLevel), std::nullopt);
  EXPECT_EQ(NearestName("home", kTopLevel), std::nullopt);
  EXPECT_EQ(NearestName("x", kTopLevel), std::nullopt);
  EXPECT_EQ(NearestName("", kTopLevel), std::nullopt);
}

TEST(NearestNameTest, SuggestsNothingFromNoNames) {
  EXPECT_EQ(NearestName("offer", {}), std::nullopt);
}

TEST(NearestNameTest, PrefersTheCloserName) {
  EXPECT_EQ(NearestName("jo", {"jobs", "job"}), "job");
  EXPECT_EQ(NearestName("ordr", {"offers", "order"}), "order");
  EXPECT_EQ(NearestName("lgos", {"logs", "book"}), "logs");
}

TEST(NearestNameTest, BreaksATieByTheOrderOfTheNames) {
  EXPECT_EQ(NearestName("bxx", {"bax", "bxa"}), "bax");
  EXPECT_EQ(NearestName("bxx", {"bxa", "bax"}), "bxa");
  EXPECT_EQ(NearestName("jobz", {"jobs", "job"}), "jobs");  // One edit from each.
}

TEST(NearestNameTest, ALongWordIsNotComparedCharacterByCharacterWithShortNames) {
  // Far longer than any name: rejected by length alone, and quickly.
  EXPECT_EQ(NearestName(std::string(1 << 20, 'a'), kTopLevel), std::nullopt);
}

}  // namespace
}  // namespace ocx::cli
