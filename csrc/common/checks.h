// Argument checks at the native boundary. The Python layer validates tensors; these catch a
// caller that bypasses it (bad codes, negative sizes) with an exception instead of a crash.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dtypes.h"

namespace prunq {

inline void check(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument(message);
}

inline DType dtype_from_code(int code, const char* arg) {
  check(code >= 0 && code <= 2, std::string(arg) + ": unknown dtype code " + std::to_string(code));
  return DType(code);
}

template <class T> inline T* as_ptr(uintptr_t address) { return reinterpret_cast<T*>(address); }

}  // namespace prunq
