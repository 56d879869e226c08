// The main() of the fuzz harnesses in the normal build (docs/fuzzing.md): runs the harness's
// LLVMFuzzerTestOneInput once on every file named on the command line and on every file below
// the folders named there, in name order, and prints how many inputs it ran. CTest runs it
// over fuzz/corpus/<name>/ (fuzz_corpus_<name>): a harness that finds a broken property
// aborts, so the test fails, and the corpus stays a regression suite without clang.
//
// Exits 1 when a path does not exist or no input was found (a test that runs nothing must
// not pass). Each input is copied into a buffer of exactly its size, so that an ASan build
// catches reads past its end as libFuzzer would.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool CollectInputs(const std::filesystem::path& path, std::vector<std::filesystem::path>* out) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(path, error)) {
      if (entry.is_regular_file()) out->push_back(entry.path());
    }
    return !error;
  }
  if (std::filesystem::is_regular_file(path, error)) {
    out->push_back(path);
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    if (!CollectInputs(argv[i], &inputs)) {
      std::fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[i]);
      return 1;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...: runs the fuzz harness on each file\n", argv[0]);
    return 1;
  }
  for (const std::filesystem::path& path : inputs) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot read %s\n", argv[0], path.c_str());
      return 1;
    }
    const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                  std::istreambuf_iterator<char>()};
    // An exact-size heap copy (new[] of 0 bytes still gives a valid pointer).
    const std::unique_ptr<uint8_t[]> copy = std::make_unique<uint8_t[]>(bytes.size());
    std::copy(bytes.begin(), bytes.end(), copy.get());
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
  }
  std::printf("%s: ran %zu inputs\n", argv[0], inputs.size());
  return 0;
}
