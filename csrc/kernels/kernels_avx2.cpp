// AVX2 + FMA kernel set. Only this file is compiled with -mavx2 -mfma; the dispatcher calls it only after
// checking the CPU. System headers come first so that none of them is opened inside the ISA namespace.
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

namespace nc::avx2 {
using nc::index_t;
#include "vec_avx2.h"

// 6x16 float / 6x8 double micro-tiles: 12 ymm accumulators + 2 for B + 1 broadcast. A block (mc x kc)
// sized for L2, B panel (kc x NR) for L1, B block (kc x nc) for L3.
template <typename T> struct Tile;
template <> struct Tile<float> { static constexpr int mr = 6, nv = 2; static constexpr index_t mc = 144, kc = 256, nc = 4080; };
template <> struct Tile<double> { static constexpr int mr = 6, nv = 2; static constexpr index_t mc = 72, kc = 256, nc = 2040; };

#include "kernels_body.h"

const KernelTable<float>* kernels_f32() { return make_table<float>("avx2"); }
const KernelTable<double>* kernels_f64() { return make_table<double>("avx2"); }
}  // namespace nc::avx2
