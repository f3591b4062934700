// Portable kernel set: the same source as the AVX2 set over an array-backed Vec that the compiler
// vectorises for the baseline target (SSE2 on x86-64, NEON on arm64). Always built; the fallback.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <stdexcept>
#include <type_traits>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "../core_types.h"
#include "kernel_exports.h"

namespace nc::baseline {
using nc::index_t;
#include "vec_portable.h"

// 4x8 float / 4x4 double micro-tiles: 8 accumulators fit the 16 SSE registers without spilling.
template <typename T> struct Tile;
template <> struct Tile<float> { static constexpr int mr = 4, nv = 2; static constexpr index_t mc = 128, kc = 256, nc = 4080; };
template <> struct Tile<double> { static constexpr int mr = 4, nv = 2; static constexpr index_t mc = 64, kc = 256, nc = 2040; };

#include "kernels_body.h"

const KernelTable<float>* kernels_f32() { return make_table<float>("baseline"); }
const KernelTable<double>* kernels_f64() { return make_table<double>("baseline"); }
}  // namespace nc::baseline
