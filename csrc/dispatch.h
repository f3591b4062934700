// Runtime choice of the kernel set: picked once at import from the CPU's features (or NEUROCORE_ISA),
// switchable later by tests. Also the process-wide thread count.
#pragma once
#include <string>
#include <vector>
#include "core_types.h"

namespace nc {

template <typename T> const KernelTable<T>& kernels();   // the active table for dtype T

std::vector<std::string> isa_available();      // every set this CPU runs, widest last (avx512 is opt-in)
std::string isa_active();
void set_isa(const std::string& name);         // throws std::invalid_argument for unknown/unsupported names
std::vector<std::string> cpu_features();       // the features the dispatcher looked at and found

int num_threads();
void set_num_threads(int n);                   // n >= 1 (checked by the caller)
bool has_openmp();

}  // namespace nc
