// AVX-512 kernel set (F + DQ + BW + VL). Only this file is compiled with those flags; the dispatcher
// calls it only after checking the CPU. System headers come first so that none of them is opened inside
// the ISA namespace.
#include <immintrin.h>
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

namespace nc::avx512 {
using nc::index_t;
#include "vec_avx512.h"

// 8x32 float / 8x16 double micro-tiles: 16 zmm accumulators + 2 for B + 1 broadcast, of 32 registers.
// 8 rows divide the usual batch sizes, 32 columns the usual layer widths. Measured on Zen 4 against
// 12x32, 14x32 (register spills: 20% slower) and 6x64, and kc 192 against 256: this one is best there,
// and level with the AVX2 set, which is why the dispatcher does not choose it unasked.
template <typename T> struct Tile;
template <> struct Tile<float> { static constexpr int mr = 8, nv = 2; static constexpr index_t mc = 144, kc = 256, nc = 4096; };
template <> struct Tile<double> { static constexpr int mr = 8, nv = 2; static constexpr index_t mc = 72, kc = 256, nc = 2048; };

#include "kernels_body.h"

const KernelTable<float>* kernels_f32() { return make_table<float>("avx512"); }
const KernelTable<double>* kernels_f64() { return make_table<double>("avx512"); }
}  // namespace nc::avx512
