#include "src/cli/suggest.h"

#include <algorithm>

namespace ocx::cli {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rows of the usual dynamic programme: row i holds the distances from a[0, i) to
  // every prefix of b; the swap rule needs row i - 2.
  std::vector<size_t> before_previous(b.size() + 1);
  std::vector<size_t> previous(b.size() + 1);
  std::vector<size_t> current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before_previous[j - 2] + 1);
      }
    }
    std::swap(before_previous, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

size_t SuggestionDistanceMax(std::string_view word) {
  if (word.size() < 2) return 0;
  return std::min(std::max<size_t>(2, word.size() / 3), word.size() - 1);
}

std::optional<std::string> NearestName(std::string_view word,
                                       const std::vector<std::string>& names) {
  const size_t limit = SuggestionDistanceMax(word);
  std::optional<std::string> nearest;
  size_t nearest_distance = limit + 1;
  for (const std::string& name : names) {
    // The distance is at least the difference in length: skip the work (and a long word's
    // cost) when that alone is too far.
    const size_t length_difference =
        name.size() > word.size() ? name.size() - word.size() : word.size() - name.size();
    if (length_difference >= nearest_distance) continue;
    const size_t distance = EditDistance(word, name);
    if (distance < nearest_distance) {
      nearest = name;
      nearest_distance = distance;
    }
  }
  return nearest;
}

}  // namespace ocx::cli
