// "Did you mean ...?" for the command line: the nearest of a few names to a word the user
// typed, by edit distance. Pure functions, no CLI11: main.cc decides where a command word was
// expected and which names were possible there.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ocx::cli {

// The optimal string alignment distance (restricted Damerau-Levenshtein) between a and b:
// the fewest insertions, deletions, substitutions and swaps of two adjacent characters that
// turn one into the other, no substring edited twice. "offer" -> "offers" is 1 (an insertion),
// "discvoer" -> "discover" is 1 (a swap). Bytes are compared, not characters.
// Time O(|a| * |b|), memory O(|b|).
size_t EditDistance(std::string_view a, std::string_view b);

// The largest distance at which a name is still offered for `word`: max(2, |word| / 3), but
// always less than |word| (a name that needs every character of the word changed is no
// suggestion). 0 for a word of one character or none: only the same name would do.
size_t SuggestionDistanceMax(std::string_view word);

// The name of `names` nearest to `word` when it is within SuggestionDistanceMax(word); on a
// tie the one that comes first in `names`. nullopt when none is close enough.
std::optional<std::string> NearestName(std::string_view word,
                                       const std::vector<std::string>& names);

}  // namespace ocx::cli
