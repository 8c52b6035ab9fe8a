// Linked only into release builds (ONNX_SPARSIFY_STATIC_LIBSTDCXX=ON, see the root CMakeLists.txt).
//
// GCC 12's static libstdc++ (std::random_device, in an archive member the linker pulls in whether
// or not random_device is used) references arc4random, which glibc added in 2.36. That one symbol
// would make the plugin refuse to load on any older glibc, and its wheel manylinux_2_36. The link
// redirects the reference (--wrap=arc4random) here: the same contract built on getentropy
// (glibc 2.25). Hidden, so nothing outside the library can bind to it.
#include <sys/random.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>

extern "C" __attribute__((visibility("hidden"))) uint32_t __wrap_arc4random(void) {
  uint32_t value = 0;
  for (int attempt = 0; attempt < 16; ++attempt) {
    if (getentropy(&value, sizeof value) == 0) return value;
  }
  std::abort();  // arc4random cannot fail either; no entropy source at all is not recoverable
}
