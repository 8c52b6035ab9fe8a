// Stands in for CUDA's header when the test suite compiles `.cu` sources as host C++ (it comes
// first on the include path there): everything comes from the emulation.
#pragma once
#include "cuda_emulation.h"
