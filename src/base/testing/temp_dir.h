// TempDir: a fresh directory under the test temp dir, removed with everything in it on
// destruction. For tests only (it reports failures through GoogleTest).
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace ocx::base::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "ocx_test") {
    std::string pattern = ::testing::TempDir() + prefix + ".XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace ocx::base::testing
