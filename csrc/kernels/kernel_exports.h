// The one symbol pair each ISA build exports: its kernel tables.
#pragma once
#include "../core_types.h"

namespace nc::baseline {
const KernelTable<float>* kernels_f32();
const KernelTable<double>* kernels_f64();
}  // namespace nc::baseline

#if defined(NC_HAVE_AVX2)
namespace nc::avx2 {
const KernelTable<float>* kernels_f32();
const KernelTable<double>* kernels_f64();
}  // namespace nc::avx2
#endif

#if defined(NC_HAVE_AVX512)
namespace nc::avx512 {
const KernelTable<float>* kernels_f32();
const KernelTable<double>* kernels_f64();
}  // namespace nc::avx512
#endif
