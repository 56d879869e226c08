// The discovery query language: grammar, precedence, operators and types, missing values,
// regular expressions, limits, error columns and their formatting, the canonical form, top-level
// clauses and sort keys (docs/formats/query.md).
#include "src/query/query.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "src/base/rng.h"
#include "src/query/test_util.h"

namespace ocx::query {
namespace {

using testing::MustFail;
using testing::MustParse;

Attributes Machine() {
  return {
      {"cpu.cores", Value::Number(8'000'000)},     {"cpu.factor", Value::Number(1'250'000)},
      {"mem.gib", Value::Number(32'000'000)},      {"gpu.count", Value::Number(0)},
      {"price", Value::Number(120'000)},           {"region", Value::Text("eu")},
      {"cpu.model", Value::Text("amd-epyc-7763")}, {"label.tier", Value::Text("gold")},
      {"label.rack", Value::Number(7'000'000)},
  };
}

bool Eval(std::string_view text, const Attributes& machine = Machine()) {
  return MustParse(text).Matches(machine);
}

// ---- Grammar and evaluation -----------------------------------------------------------------

TEST(QueryTest, SimpleComparisonMatches) {
  EXPECT_TRUE(Eval("cpu.cores >= 4"));
  EXPECT_FALSE(Eval("cpu.cores >= 16"));
  EXPECT_TRUE(Eval("region == \"eu\""));
}

TEST(QueryTest, EmptyQueryMatchesEverythingAndIsEmpty) {
  for (const char* text : {"", "   ", "\t\n"}) {
    const Query query = MustParse(text);
    EXPECT_TRUE(query.empty());
    EXPECT_TRUE(query.Matches(Attributes{}));
    EXPECT_EQ(query.Canonical(), "");
    EXPECT_TRUE(query.TopLevelClauses().empty());
    EXPECT_EQ(query, Query());
  }
}

TEST(QueryTest, AndBindsTighterThanOr) {
  // a || b && c == a || (b && c)
  EXPECT_EQ(MustParse("cpu.cores == 8 || region == \"us\" && gpu.count == 1").Canonical(),
            "cpu.cores == 8 || (region == \"us\" && gpu.count == 1)");
  EXPECT_TRUE(Eval("cpu.cores == 8 || region == \"us\" && gpu.count == 1"));
  EXPECT_FALSE(Eval("cpu.cores == 9 || region == \"eu\" && gpu.count == 1"));
  EXPECT_TRUE(Eval("region == \"us\" && gpu.count == 1 || cpu.cores == 8"));
}

TEST(QueryTest, ParenthesesOverridePrecedence) {
  EXPECT_TRUE(Eval("cpu.cores == 9 || region == \"eu\" && gpu.count == 0"));
  EXPECT_FALSE(Eval("(cpu.cores == 8 || region == \"us\") && gpu.count == 1"));
  EXPECT_TRUE(Eval("((((cpu.cores == 8))))"));
}

TEST(QueryTest, NotNegatesConditionsAndGroups) {
  EXPECT_FALSE(Eval("!cpu.cores == 8"));
  EXPECT_TRUE(Eval("!(cpu.cores == 9)"));
  EXPECT_TRUE(Eval("!!cpu.cores == 8"));
  EXPECT_TRUE(Eval("!(cpu.cores == 9 || region == \"us\")"));
  EXPECT_FALSE(Eval("!(cpu.cores == 8 && region == \"eu\")"));
  // '!' binds tighter than && and ||.
  EXPECT_TRUE(Eval("!cpu.cores == 9 && region == \"eu\""));
}

TEST(QueryTest, EveryOperatorOnNumbers) {
  struct Case {
    const char* text;
    bool expected;
  };
  const Case cases[] = {
      {"cpu.cores == 8", true},  {"cpu.cores == 7", false}, {"cpu.cores != 7", true},
      {"cpu.cores != 8", false}, {"cpu.cores < 9", true},   {"cpu.cores < 8", false},
      {"cpu.cores <= 8", true},  {"cpu.cores <= 7", false}, {"cpu.cores > 7", true},
      {"cpu.cores > 8", false},  {"cpu.cores >= 8", true},  {"cpu.cores >= 9", false},
      {"cpu.cores > -1", true},  {"gpu.count == 0", true},  {"gpu.count == -0", true},
  };
  for (const Case& c : cases) EXPECT_EQ(Eval(c.text), c.expected) << c.text;
}

TEST(QueryTest, EqualityOnStrings) {
  EXPECT_TRUE(Eval("region == \"eu\""));
  EXPECT_FALSE(Eval("region == \"EU\""));  // Bytewise: case matters.
  EXPECT_TRUE(Eval("region != \"us\""));
  EXPECT_FALSE(Eval("region != \"eu\""));
  EXPECT_FALSE(Eval("region == \"eu \""));
}

TEST(QueryTest, InListOnNumbersAndStrings) {
  EXPECT_TRUE(Eval("cpu.cores in [4, 8, 16]"));
  EXPECT_FALSE(Eval("cpu.cores in [4, 16]"));
  EXPECT_TRUE(Eval("region in [\"us\", \"eu\"]"));
  EXPECT_FALSE(Eval("region in [\"us\", \"asia\"]"));
  EXPECT_TRUE(Eval("!(region in [\"us\"])"));
  // Labels may list both types; a value matches an item of its own type.
  EXPECT_TRUE(Eval("label.rack in [\"7\", 7]"));
  EXPECT_FALSE(Eval("label.rack in [\"7\"]"));
  EXPECT_TRUE(Eval("label.tier in [1, \"gold\"]"));
}

TEST(QueryTest, InListIsSortedAndDeduplicatedInCanonicalForm) {
  EXPECT_EQ(MustParse("cpu.cores in [16, 4, 8, 4.0]").Canonical(), "cpu.cores in [4, 8, 16]");
  EXPECT_EQ(MustParse("label.x in [\"b\", 2, \"a\", 1, \"b\"]").Canonical(),
            "label.x in [1, 2, \"a\", \"b\"]");
}

TEST(QueryTest, RegexIsAPartialMatch) {
  EXPECT_TRUE(Eval("cpu.model =~ \"epyc\""));
  EXPECT_TRUE(Eval("cpu.model =~ \"^amd-\""));
  EXPECT_FALSE(Eval("cpu.model =~ \"^epyc\""));
  EXPECT_TRUE(Eval("cpu.model =~ \"^amd-epyc-[0-9]+$\""));
  EXPECT_TRUE(Eval("cpu.model =~ \"^amd-epyc-\\\\d+$\""));  // \d written \\d.
  EXPECT_FALSE(Eval("cpu.model =~ \"AMD\""));
  EXPECT_TRUE(Eval("cpu.model =~ \"(?i)AMD\""));
  EXPECT_TRUE(Eval("label.tier =~ \"^g\""));
  EXPECT_FALSE(Eval("label.rack =~ \"7\""));  // A number never matches a pattern.
  EXPECT_FALSE(Eval("os =~ \"\""));           // Missing: false, even for the empty pattern.
  EXPECT_TRUE(Eval("region =~ \"\""));
}

TEST(QueryTest, BadRegexIsASyntaxErrorAtThePattern) {
  const SyntaxError error = MustFail("region == \"eu\" && cpu.model =~ \"(epyc\"");
  EXPECT_EQ(error.column, 32);
  EXPECT_NE(error.message.find("bad regular expression"), std::string::npos) << error.message;
  EXPECT_EQ(MustFail("cpu.model =~ \"a**\"").column, 14);
  EXPECT_EQ(MustFail("cpu.model =~ 3").column, 14);
}

TEST(QueryTest, DecimalsAreExact) {
  EXPECT_TRUE(Eval("cpu.factor >= 1.25"));
  EXPECT_TRUE(Eval("cpu.factor == 1.250000"));
  EXPECT_FALSE(Eval("cpu.factor > 1.25"));
  EXPECT_FALSE(Eval("cpu.factor >= 1.250001"));
  EXPECT_TRUE(Eval("cpu.factor > 1.249999"));
  EXPECT_TRUE(Eval("price == 0.12"));
  EXPECT_EQ(MustParse("price <= 0.120000").Canonical(), "price <= 0.12");
  EXPECT_EQ(MustParse("price >= -0.5").Canonical(), "price >= -0.5");
  EXPECT_EQ(MustParse("price >= 9223372036854.775807").Canonical(),
            "price >= 9223372036854.775807");
}

TEST(QueryTest, BadNumbersAreSyntaxErrors) {
  EXPECT_EQ(MustFail("price < 0.1234567").column, 9);
  EXPECT_EQ(MustFail("price < 9223372036854.775808").column, 9);
  EXPECT_NE(MustFail("price < 9223372036854.775808").message.find("out of range"),
            std::string::npos);
  EXPECT_EQ(MustFail("price < 1e3").column, 9);
  EXPECT_EQ(MustFail("price < 1.").column, 11);
  EXPECT_EQ(MustFail("price < .5").column, 9);
  EXPECT_EQ(MustFail("price < --1").column, 9);
  EXPECT_EQ(MustFail("price < 1.2.3").column, 9);
}

TEST(QueryTest, MissingAttributeMakesEveryConditionFalse) {
  const Attributes none;
  EXPECT_FALSE(Eval("gpu.model == \"h100\"", none));
  EXPECT_FALSE(Eval("gpu.model != \"h100\"", none));  // Not "true": see docs.
  EXPECT_TRUE(Eval("!(gpu.model == \"h100\")", none));
  EXPECT_FALSE(Eval("gpu.count < 1", none));
  EXPECT_FALSE(Eval("gpu.count >= 1", none));
  EXPECT_FALSE(Eval("gpu.model in [\"a\", \"b\"]", none));
  EXPECT_FALSE(Eval("gpu.model =~ \"\"", none));
  EXPECT_TRUE(Eval("gpu.count >= 1 || !(gpu.count >= 1)", none));
}

TEST(QueryTest, LabelsAreTypedPerMachine) {
  EXPECT_TRUE(Eval("label.tier == \"gold\""));
  EXPECT_TRUE(Eval("label.rack == 7"));
  EXPECT_TRUE(Eval("label.rack >= 6.5"));
  EXPECT_FALSE(Eval("label.rack == \"7\""));  // Type mismatch: false.
  EXPECT_FALSE(Eval("label.rack != \"7\""));  // Also false.
  EXPECT_FALSE(Eval("label.tier == 1"));
  EXPECT_FALSE(Eval("label.tier < 1"));
  EXPECT_FALSE(Eval("label.unknown == 1"));
  EXPECT_TRUE(Eval("some_label == \"x\"", {{"some_label", Value::Text("x")}}));
  EXPECT_TRUE(Eval("label.gpu-type == \"x\"", {{"label.gpu-type", Value::Text("x")}}));
}

TEST(QueryTest, StaticTypeErrorsCarryTheirColumn) {
  struct Case {
    const char* text;
    int column;
    const char* message_part;
  };
  const Case cases[] = {
      {"cpu.cores == \"8\"", 14, "cpu.cores is a number"},
      {"region == 3", 11, "region is a string"},
      {"region < 3", 8, "'<' compares numbers, and region is a string"},
      {"region >= \"b\"", 8, "region is a string"},
      {"label.x < \"b\"", 11, "'<' compares numbers, not strings"},
      {"cpu.cores in [1, \"a\"]", 18, "cpu.cores is a number"},
      {"os in [\"linux\", 2]", 17, "os is a string"},
      {"gpu.count =~ \"x\"", 11, "'=~' matches strings"},
      {"\"8\" == cpu.cores", 1, "cpu.cores is a number"},
      {"3 > region", 3, "region is a string"},
  };
  for (const Case& c : cases) {
    const SyntaxError error = MustFail(c.text);
    EXPECT_EQ(error.column, c.column) << c.text << ": " << error.message;
    EXPECT_NE(error.message.find(c.message_part), std::string::npos)
        << c.text << ": " << error.message;
  }
}

TEST(QueryTest, LiteralOnTheLeftIsMirrored) {
  EXPECT_EQ(MustParse("4 <= cpu.cores"), MustParse("cpu.cores >= 4"));
  EXPECT_EQ(MustParse("4 <= cpu.cores").Canonical(), "cpu.cores >= 4");
  EXPECT_EQ(MustParse("9 > cpu.cores").Canonical(), "cpu.cores < 9");
  EXPECT_EQ(MustParse("\"eu\" == region").Canonical(), "region == \"eu\"");
  EXPECT_TRUE(Eval("4 <= cpu.cores && 8 >= cpu.cores && 8 == cpu.cores && 9 != cpu.cores"));
  EXPECT_FALSE(Eval("9 <= cpu.cores"));
  EXPECT_EQ(MustFail("4 <= 5").column, 6);
  EXPECT_EQ(MustFail("4 in [4]").column, 3);
  EXPECT_EQ(MustFail("\"x\" =~ region").column, 5);
}

TEST(QueryTest, SyntaxErrorsPointAtTheirColumn) {
  struct Case {
    const char* text;
    int column;
    const char* message_part;
  };
  const Case cases[] = {
      {"gpu.count >= && region == \"eu\"", 14, "expected a number or a string after '>='"},
      {"gpu.count >=", 13, "expected a number or a string after '>='"},
      {"region = \"eu\"", 8, "write '=='"},
      {"region == \"eu\" & cpu.cores > 1", 16, "'&&'"},
      {"region == \"eu\" | cpu.cores > 1", 16, "'||'"},
      {"(region == \"eu\"", 16, "expected ')' to close the '(' at column 1"},
      {"region == \"eu\")", 15, "unmatched ')'"},
      {"region == \"eu\" cpu.cores > 1", 16, "expected '&&', '||' or the end"},
      {"region == \"eu", 11, "unterminated string"},
      {"region == \"eu\\", 11, "unterminated string"},
      {"region == \"e\\qu\"", 13, "unknown escape"},
      {"region == \"e\nu\"", 13, "control character"},
      {"in == 1", 1, "'in' is a keyword"},
      {"region \"eu\"", 8, "expected an operator"},
      {"region", 7, "expected an operator"},
      {"cpu.cores > gpu.count", 13, "not with another attribute"},
      {"region in \"eu\"", 11, "expected '[' after 'in'"},
      {"region in []", 12, "empty list"},
      {"region in [\"eu\",]", 17, "expected a number or a string in the list"},
      {"region in [\"eu\" \"us\"]", 17, "expected ',' or ']'"},
      {"region in [\"eu\"", 16, "expected ',' or ']'"},
      {"()", 2, "expected a condition"},
      {"!", 2, "unexpected end of query"},
      {"region == \"eu\" &&", 18, "unexpected end of query"},
      {"region == \"eu\" # comment", 16, "unexpected character '#'"},
      {"region == \"eu\" \x01", 16, "byte 0x01"},
      {"&& region == \"eu\"", 1, "expected a condition"},
      {"region.== 1", 7, "unexpected character '.'"},
      {"price < -x", 9, "expected a digit after '-'"},
  };
  for (const Case& c : cases) {
    const SyntaxError error = MustFail(c.text);
    EXPECT_EQ(error.column, c.column) << c.text << ": " << error.message;
    EXPECT_NE(error.message.find(c.message_part), std::string::npos)
        << c.text << ": " << error.message;
  }
}

TEST(QueryTest, StringEscapesRoundTrip) {
  const Query query = MustParse(R"(label.x == "a\"b\\c\nd\te")");
  EXPECT_TRUE(query.Matches({{"label.x", Value::Text("a\"b\\c\nd\te")}}));
  EXPECT_EQ(query.Canonical(), R"(label.x == "a\"b\\c\nd\te")");
  EXPECT_EQ(MustParse(query.Canonical()), query);
  // UTF-8 passes through unchanged.
  EXPECT_TRUE(Eval("label.city == \"Zürich\"", {{"label.city", Value::Text("Zürich")}}));
}

TEST(QueryTest, MatchesThroughALookupFunction) {
  const Query query = MustParse("price <= 0.5 && region == \"eu\"");
  const Value price = Value::Number(400'000);
  const Value region = Value::Text("eu");
  int lookups = 0;
  EXPECT_TRUE(query.Matches([&](std::string_view name) -> const Value* {
    ++lookups;
    if (name == "price") return &price;
    if (name == "region") return &region;
    return nullptr;
  }));
  EXPECT_EQ(lookups, 2);
  // && stops at the first false condition.
  EXPECT_FALSE(query.Matches([&](std::string_view) -> const Value* { return nullptr; }));
}

TEST(QueryTest, ValueIgnoresTheUnusedField) {
  Value odd = Value::Number(7'000'000);
  odd.text = "junk";
  EXPECT_TRUE(Eval("label.rack == 7 && label.rack in [7]", {{"label.rack", odd}}));
}

TEST(QueryTest, KnownAttributeTypes) {
  EXPECT_EQ(KnownAttributeType("cpu.cores"), AttributeType::kNumber);
  EXPECT_EQ(KnownAttributeType("price"), AttributeType::kNumber);
  EXPECT_EQ(KnownAttributeType("gpu.model"), AttributeType::kText);
  EXPECT_EQ(KnownAttributeType("arch"), AttributeType::kText);
  EXPECT_EQ(KnownAttributeType("label.tier"), AttributeType::kAny);
  EXPECT_EQ(KnownAttributeType("cpu"), AttributeType::kAny);
}

TEST(QueryTest, AttributeNames) {
  EXPECT_TRUE(IsAttributeName("cpu.cores"));
  EXPECT_TRUE(IsAttributeName("_x.9-a.b_c"));
  EXPECT_TRUE(IsAttributeName("region"));
  EXPECT_FALSE(IsAttributeName(""));
  EXPECT_FALSE(IsAttributeName("in"));
  EXPECT_FALSE(IsAttributeName("9x"));
  EXPECT_FALSE(IsAttributeName("cpu."));
  EXPECT_FALSE(IsAttributeName("a-b"));
  EXPECT_FALSE(IsAttributeName("cpu..cores"));
  EXPECT_FALSE(IsAttributeName("a b"));
}

// ---- Limits ---------------------------------------------------------------------------------

std::string Conditions(size_t n) {
  std::string text = "a>0";
  for (size_t i = 1; i < n; ++i) absl::StrAppend(&text, "||a>", i);
  return text;
}

TEST(QueryLimitsTest, QueryLength) {
  std::string text = "region == \"";
  text.append(kQueryBytesMax - text.size() - 1, 'x');
  text.push_back('"');
  ASSERT_EQ(text.size(), kQueryBytesMax);
  MustParse(text);
  text.push_back(' ');
  const SyntaxError error = MustFail(text);
  EXPECT_EQ(error.column, static_cast<int>(kQueryBytesMax) + 1);
  EXPECT_NE(error.message.find("at most 4096"), std::string::npos) << error.message;
}

TEST(QueryLimitsTest, NestingDepth) {
  auto parens = [](int n) { return std::string(n, '(') + "cpu.cores > 1" + std::string(n, ')'); };
  MustParse(parens(kQueryDepthMax));
  SyntaxError error = MustFail(parens(kQueryDepthMax + 1));
  EXPECT_EQ(error.column, kQueryDepthMax + 1);
  EXPECT_NE(error.message.find("nested deeper than 64"), std::string::npos) << error.message;
  MustParse(std::string(kQueryDepthMax / 2, '!') + "cpu.cores > 1");
  error = MustFail(std::string(kQueryDepthMax + 1, '!') + "cpu.cores > 1");
  EXPECT_EQ(error.column, kQueryDepthMax + 1);
  // '!' and '(' count together.
  MustFail(std::string(kQueryDepthMax / 2, '!') + parens(kQueryDepthMax / 2 + 1));
  // Far deeper input fails the same way without exhausting the stack.
  MustFail(std::string(4000, '('));
}

// Found by fuzz/query_fuzz.cc: the canonical form, which the journal records, nested or ran
// past the limits of a query that was within them, so it did not parse again.
TEST(QueryLimitsTest, CanonicalFormIsWithinTheLimitsToo) {
  // Each '!' is written "!(...)": two levels. 32 fit; the 33rd '!' is refused.
  const Query deepest = MustParse(std::string(kQueryDepthMax / 2, '!') + "cpu.cores > 1");
  EXPECT_EQ(MustParse(deepest.Canonical()), deepest);
  SyntaxError error = MustFail(std::string(40, '!') + "cpu.cores > 1");
  EXPECT_EQ(error.column, kQueryDepthMax / 2 + 1);
  EXPECT_NE(error.message.find("nested deeper than 64 levels of '(' and '!' in canonical form"),
            std::string::npos)
      << error.message;

  // An && inside || gets parentheses in canonical form: 40 levels written, 80 canonical.
  std::string alternating = "a == 1";
  for (int i = 0; i < 40; ++i) alternating = "a == 1 && (a == 1 || " + alternating + ")";
  error = MustFail(alternating);
  EXPECT_NE(error.message.find("in canonical form"), std::string::npos) << error.message;
  std::string shallower = "a == 1";
  for (int i = 0; i < 32; ++i) shallower = "a == 1 && (a == 1 || " + shallower + ")";
  const Query fits = MustParse(shallower);
  EXPECT_EQ(MustParse(fits.Canonical()), fits);

  // Spaces around operators: 4083 bytes written, 4941 canonical.
  std::string dense = "label.abcdefghi<1";
  for (int i = 1; i < 215; ++i) dense += "&&label.abcdefghi<1";
  ASSERT_LE(dense.size(), kQueryBytesMax);
  error = MustFail(dense);
  EXPECT_EQ(error.column, 1);
  EXPECT_NE(error.message.find("4941 bytes long in canonical form"), std::string::npos)
      << error.message;
}

TEST(QueryLimitsTest, Conditions) {
  EXPECT_EQ(MustParse(Conditions(kQueryConditionsMax)).conditions(), kQueryConditionsMax);
  const std::string text = Conditions(kQueryConditionsMax + 1);
  const SyntaxError error = MustFail(text);
  EXPECT_EQ(static_cast<size_t>(error.column), text.rfind("a>") + 1);
  EXPECT_NE(error.message.find("more than 256 conditions"), std::string::npos);
  // Literal-first conditions count too.
  EXPECT_NE(MustFail(Conditions(kQueryConditionsMax) + " || 1 < a").message.find("more than 256"),
            std::string::npos);
}

TEST(QueryLimitsTest, InListItems) {
  auto list = [](size_t n) {
    std::string text = "cpu.cores in [0";
    for (size_t i = 1; i < n; ++i) absl::StrAppend(&text, ", ", i);
    return text + "]";
  };
  MustParse(list(kInListItemsMax));
  const std::string text = list(kInListItemsMax + 1);
  const SyntaxError error = MustFail(text);
  EXPECT_EQ(static_cast<size_t>(error.column), text.rfind(", ") + 3);
  EXPECT_NE(error.message.find("more than 256 items"), std::string::npos);
}

TEST(QueryLimitsTest, RegexPatternLength) {
  MustParse("cpu.model =~ \"" + std::string(kRegexPatternBytesMax, 'a') + "\"");
  const SyntaxError error =
      MustFail("cpu.model =~ \"" + std::string(kRegexPatternBytesMax + 1, 'a') + "\"");
  EXPECT_EQ(error.column, 14);
  EXPECT_NE(error.message.find("longer than 256 bytes"), std::string::npos);
  // The limit is on the pattern after unescaping: the query spells each of the pattern's 256
  // backslashes as \\ (512 bytes of query).
  std::string escaped;
  for (size_t i = 0; i < kRegexPatternBytesMax / 2; ++i) escaped += "\\\\\\\\";
  MustParse("cpu.model =~ \"" + escaped + "\"");
}

TEST(QueryLimitsTest, RegexCount) {
  std::string text = "cpu.model =~ \"a\"";
  for (size_t i = 1; i < kRegexesMax; ++i) text += " || cpu.model =~ \"a\"";
  MustParse(text);
  text += " || cpu.model =~ \"b\"";
  const SyntaxError error = MustFail(text);
  EXPECT_EQ(static_cast<size_t>(error.column), text.rfind("=~") + 1);
  EXPECT_NE(error.message.find("more than 16 regular expressions"), std::string::npos);
}

TEST(QueryLimitsTest, RegexMemory) {
  // Short, but its program needs more than kRegexMemoryBytesMax.
  const SyntaxError error = MustFail("cpu.model =~ \"\\\\pL{200}\\\\pN{200}\\\\pL{200}\"");
  EXPECT_EQ(error.column, 14);
  EXPECT_NE(error.message.find("bad regular expression"), std::string::npos) << error.message;
}

// ---- Error formatting -----------------------------------------------------------------------

TEST(FormatSyntaxErrorTest, CaretUnderTheColumn) {
  const std::string text = "gpu.count >= && region == \"eu\"";
  EXPECT_EQ(FormatSyntaxError(text, MustFail(text)),
            "gpu.count >= && region == \"eu\"\n"
            "             ^ column 14: expected a number or a string after '>='");
}

TEST(FormatSyntaxErrorTest, CaretAfterTheEnd) {
  const std::string text = "region ==";
  EXPECT_EQ(FormatSyntaxError(text, MustFail(text)),
            "region ==\n"
            "         ^ column 10: expected a number or a string after '=='");
}

TEST(FormatSyntaxErrorTest, TabsAndUtf8KeepTheCaretAligned) {
  EXPECT_EQ(FormatSyntaxError("\tlabel.x == \"é\" &", SyntaxError{18, "m"}),
            "\tlabel.x == \"é\" &\n"
            "\t" +
                std::string(15, ' ') + "^ column 18: m");
}

TEST(FormatSyntaxErrorTest, ControlCharactersAreShownAsQuestionMarks) {
  EXPECT_EQ(FormatSyntaxError("a\x01"
                              "b",
                              SyntaxError{2, "m"}),
            "a?b\n ^ column 2: m");
}

TEST(FormatSyntaxErrorTest, OnlyTheLineOfTheColumnIsShown) {
  EXPECT_EQ(FormatSyntaxError("region == \"eu\"\n&& cpu.cores >", SyntaxError{30, "m"}),
            "&& cpu.cores >\n"
            "              ^ column 30: m");
}

TEST(FormatSyntaxErrorTest, LongLinesAreCutAroundTheColumn) {
  const std::string text = std::string(300, 'a') + "#" + std::string(300, 'b');
  const std::string formatted = FormatSyntaxError(text, SyntaxError{301, "m"});
  const std::string expected_line =
      "..." + std::string(60, 'a') + "#" + std::string(59, 'b') + "...";
  EXPECT_EQ(formatted, expected_line + "\n" + std::string(63, ' ') + "^ column 301: m");
}

// ---- Canonical form and equality ------------------------------------------------------------

TEST(QueryCanonicalTest, NormalizesSpacingNumbersAndNesting) {
  EXPECT_EQ(MustParse("  cpu.cores>=4&&region==\"eu\"  ").Canonical(),
            "cpu.cores >= 4 && region == \"eu\"");
  EXPECT_EQ(MustParse("a == 1 && (b == 2 && (c == 3))").Canonical(), "a == 1 && b == 2 && c == 3");
  EXPECT_EQ(MustParse("(a == 1 || b == 2) || c == 3").Canonical(), "a == 1 || b == 2 || c == 3");
  EXPECT_EQ(MustParse("(a == 1 || b == 2) && c == 3").Canonical(), "(a == 1 || b == 2) && c == 3");
  EXPECT_EQ(MustParse("!a == 1").Canonical(), "!(a == 1)");
  EXPECT_EQ(MustParse("!!(a == 1)").Canonical(), "!(!(a == 1))");
  EXPECT_EQ(MustParse("price >= 1.500").Canonical(), "price >= 1.5");
  EXPECT_EQ(MustParse("a =~ \"x\\\\d\"").Canonical(), "a =~ \"x\\\\d\"");
}

TEST(QueryCanonicalTest, EqualityIgnoresSpellingButNotMeaning) {
  EXPECT_EQ(MustParse("a==1&&b==2"), MustParse("(a == 1) && (b == 2.0)"));
  EXPECT_FALSE(MustParse("a == 1 && b == 2") == MustParse("b == 2 && a == 1"));
  EXPECT_FALSE(MustParse("a == 1") == MustParse("a == \"1\""));
  EXPECT_FALSE(MustParse("a =~ \"x\"") == MustParse("a =~ \"y\""));
  EXPECT_FALSE(MustParse("a == 1") == Query());
}

TEST(QueryCanonicalTest, RandomQueriesRoundTrip) {
  const uint64_t seed = 20240611;
  base::Rng rng(seed);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = testing::RandomQueryText(rng);
    const Query query = MustParse(text);
    const std::string canonical = query.Canonical();
    const Query again = MustParse(canonical);
    ASSERT_EQ(again, query) << "seed " << seed << " #" << i << ": " << text << "\n-> " << canonical;
    ASSERT_EQ(again.Canonical(), canonical) << "seed " << seed << " #" << i;
    // Same verdict on random machines.
    for (int m = 0; m < 5; ++m) {
      const Attributes machine = testing::RandomMachine(rng);
      ASSERT_EQ(again.Matches(machine), query.Matches(machine)) << "seed " << seed << " " << text;
    }
  }
}

// ---- Clauses --------------------------------------------------------------------------------

TEST(QueryClausesTest, TopLevelConjunctsWithTheirSourceText) {
  const Query query =
      MustParse("gpu.count >= 1 &&  (region == \"eu\" || region == \"us\") && !(os == \"x\")");
  const std::vector<Clause> clauses = query.TopLevelClauses();
  ASSERT_EQ(clauses.size(), 3u);
  EXPECT_EQ(clauses[0].text, "gpu.count >= 1");
  EXPECT_EQ(clauses[1].text, "(region == \"eu\" || region == \"us\")");
  EXPECT_EQ(clauses[1].canonical, "region == \"eu\" || region == \"us\"");
  EXPECT_EQ(clauses[2].text, "!(os == \"x\")");
  EXPECT_TRUE(clauses[1].query.Matches(Machine()));
  EXPECT_FALSE(clauses[0].query.Matches(Machine()));
  EXPECT_EQ(clauses[1].query, MustParse("region == \"eu\" || region == \"us\""));
}

TEST(QueryClausesTest, NestedConjunctionsAreFlattenedAndASingleConditionIsOneClause) {
  const std::vector<Clause> flat = MustParse("a == 1 && (b == 2 && c == 3)").TopLevelClauses();
  ASSERT_EQ(flat.size(), 3u);
  EXPECT_EQ(flat[2].text, "c == 3");
  const std::vector<Clause> single = MustParse(" 4 <= cpu.cores ").TopLevelClauses();
  ASSERT_EQ(single.size(), 1u);
  EXPECT_EQ(single[0].text, "4 <= cpu.cores");
  EXPECT_EQ(single[0].canonical, "cpu.cores >= 4");
  const std::vector<Clause> disjunction = MustParse("a == 1 || b == 2").TopLevelClauses();
  ASSERT_EQ(disjunction.size(), 1u);
}

TEST(QueryClausesTest, ClausesOutliveTheirQuery) {
  std::vector<Clause> clauses;
  {
    const Query query = MustParse("cpu.model =~ \"epyc\" && region == \"eu\"");
    clauses = query.TopLevelClauses();
  }
  EXPECT_TRUE(clauses[0].query.Matches(Machine()));
  EXPECT_EQ(clauses[0].query.Canonical(), "cpu.model =~ \"epyc\"");
}

// ---- Sort -----------------------------------------------------------------------------------

std::vector<SortKey> MustParseSort(std::string_view text) {
  auto parsed = ParseSort(text);
  if (const auto* error = std::get_if<SyntaxError>(&parsed)) {
    ADD_FAILURE() << FormatSyntaxError(text, *error);
    return {};
  }
  return std::get<std::vector<SortKey>>(parsed);
}

SyntaxError MustFailSort(std::string_view text) {
  auto parsed = ParseSort(text);
  if (!std::holds_alternative<SyntaxError>(parsed)) {
    ADD_FAILURE() << "sort parses: " << text;
    return {};
  }
  return std::get<SyntaxError>(parsed);
}

TEST(SortTest, ParsesKeysAndDirections) {
  const std::vector<SortKey> expected = {
      {"price", false}, {"reputation", true}, {"label.x", false}};
  EXPECT_EQ(MustParseSort("price,-reputation,+label.x"), expected);
  EXPECT_EQ(MustParseSort(" price , -reputation ,\t+label.x "), expected);
  EXPECT_EQ(FormatSort(expected), "price,-reputation,label.x");
  EXPECT_EQ(MustParseSort(FormatSort(expected)), expected);
  EXPECT_TRUE(MustParseSort("").empty());
  EXPECT_TRUE(MustParseSort("  ").empty());
}

TEST(SortTest, ErrorsCarryTheirColumn) {
  struct Case {
    const char* text;
    int column;
    const char* message_part;
  };
  const Case cases[] = {
      {",", 1, "expected an attribute name"},
      {"price,", 7, "expected an attribute name"},
      {"price,,x", 7, "expected an attribute name"},
      {"-", 2, "expected an attribute name"},
      {"- price", 2, "expected an attribute name"},
      {"price reputation", 7, "expected ','"},
      {"price,-price", 8, "already a sort key"},
      {"in", 1, "keyword"},
      {"pri$ce", 4, "expected ','"},
      {"a,b,c,d,e,f,g,h,i", 17, "more than 8 sort keys"},
  };
  for (const Case& c : cases) {
    const SyntaxError error = MustFailSort(c.text);
    EXPECT_EQ(error.column, c.column) << c.text << ": " << error.message;
    EXPECT_NE(error.message.find(c.message_part), std::string::npos)
        << c.text << ": " << error.message;
  }
  const SyntaxError long_error = MustFailSort(std::string(kSortBytesMax + 1, 'a'));
  EXPECT_EQ(long_error.column, static_cast<int>(kSortBytesMax) + 1);
}

}  // namespace
}  // namespace ocx::query
