// The C ABI's error convention, shared by the shim's translation units: 0 on success; otherwise
// non-zero and a malloc'd message in *err (freed with nls_free_string). No C++ exception crosses.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace nls {

inline char* dup_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  std::memcpy(out, s.c_str(), s.size() + 1);
  return out;
}

// Runs `body`, turning any exception into an error code plus message.
template <typename F>
int guarded(char** err, F&& body) {
  try {
    body();
    return 0;
  } catch (const std::exception& e) {
    *err = dup_string(e.what());
  } catch (...) {
    *err = dup_string("unknown C++ exception");
  }
  return 1;
}

}  // namespace nls
