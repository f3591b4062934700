#include "dispatch.h"

#include <atomic>
#include <stdexcept>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "kernels/kernel_exports.h"

namespace nc {
namespace {

struct IsaEntry {
    const char* name;
    bool automatic;   // may be chosen without NEUROCORE_ISA
    const KernelTable<float>* (*f32)();
    const KernelTable<double>* (*f64)();
};

bool cpu_has_avx2_fma() {
#if defined(NC_HAVE_AVX2) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

// The x86-64-v4 subset the AVX-512 set is compiled for; the OS must also save the zmm state, which
// __builtin_cpu_supports checks (it reports AVX-512 only when XCR0 enables it).
bool cpu_has_avx512() {
#if defined(NC_HAVE_AVX512) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

// Intel cores with AVX-512 run it at full width: measured on a Xeon (Emerald Rapids) here, training
// 1.65x and a 1024^3 GEMM 1.5x as fast as AVX2. Zen 4 splits 512-bit instructions into two halves and
// trains 0.92-1.01x as fast, so elsewhere AVX-512 stays opt-in (NEUROCORE_ISA=avx512).
bool cpu_is_intel() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    return __builtin_cpu_is("intel");
#else
    return false;
#endif
}

std::vector<IsaEntry> supported_isas() {
    std::vector<IsaEntry> out{{"baseline", true, &baseline::kernels_f32, &baseline::kernels_f64}};
#if defined(NC_HAVE_AVX2)
    if (cpu_has_avx2_fma()) out.push_back({"avx2", true, &avx2::kernels_f32, &avx2::kernels_f64});
#endif
#if defined(NC_HAVE_AVX512)
    if (cpu_has_avx512()) out.push_back({"avx512", cpu_is_intel(), &avx512::kernels_f32, &avx512::kernels_f64});
#endif
    return out;
}

// Both pointers are swapped together; kernels read them once per call.
std::atomic<const KernelTable<float>*> g_f32{nullptr};
std::atomic<const KernelTable<double>*> g_f64{nullptr};

void ensure_selected() {
    if (g_f32.load(std::memory_order_acquire) != nullptr) return;
    // The last automatic set (AVX-512 only on Intel: see cpu_is_intel).
    IsaEntry best{};
    for (const auto& e : supported_isas())
        if (e.automatic) best = e;
    g_f64.store(best.f64(), std::memory_order_release);
    g_f32.store(best.f32(), std::memory_order_release);
}

int default_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
    return 1;
#endif
}

std::atomic<int> g_threads{default_threads()};

}  // namespace

template <> const KernelTable<float>& kernels<float>() {
    ensure_selected();
    return *g_f32.load(std::memory_order_acquire);
}
template <> const KernelTable<double>& kernels<double>() {
    ensure_selected();
    return *g_f64.load(std::memory_order_acquire);
}

std::vector<std::string> isa_available() {
    std::vector<std::string> names;
    for (const auto& e : supported_isas()) names.emplace_back(e.name);
    return names;
}

std::string isa_active() { return kernels<float>().isa; }

void set_isa(const std::string& name) {
    for (const auto& e : supported_isas()) {
        if (name == e.name) {
            g_f64.store(e.f64(), std::memory_order_release);
            g_f32.store(e.f32(), std::memory_order_release);
            return;
        }
    }
    std::string known;
    for (const auto& n : isa_available()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("kernel set '" + name + "' is not available on this CPU/build; available: " + known);
}

std::vector<std::string> cpu_features() {
    std::vector<std::string> found;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse2")) found.emplace_back("sse2");
    if (__builtin_cpu_supports("avx")) found.emplace_back("avx");
    if (__builtin_cpu_supports("avx2")) found.emplace_back("avx2");
    if (__builtin_cpu_supports("fma")) found.emplace_back("fma");
    if (__builtin_cpu_supports("avx512f")) found.emplace_back("avx512f");
    if (__builtin_cpu_supports("avx512dq")) found.emplace_back("avx512dq");
    if (__builtin_cpu_supports("avx512bw")) found.emplace_back("avx512bw");
    if (__builtin_cpu_supports("avx512vl")) found.emplace_back("avx512vl");
#endif
    return found;
}

int num_threads() { return g_threads.load(std::memory_order_relaxed); }
void set_num_threads(int n) { g_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

bool has_openmp() {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
}

}  // namespace nc
