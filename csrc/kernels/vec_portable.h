// Vec<T> as a fixed-size array: plain loops the compiler vectorises for whatever the baseline target is
// (SSE2 on x86-64, NEON on arm64). Semantics match vec_avx2.h lane for lane.
#pragma once
#include <stdint.h>
#include <string.h>

template <typename T> struct Vec {
    static constexpr int lanes = 16 / sizeof(T);
    T v[lanes];
    static Vec load(const T* p) { Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = p[i]; return r; }
    static Vec set1(T x) { Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = x; return r; }
    static Vec zero() { return set1(T(0)); }
    void store(T* p) const { for (int i = 0; i < lanes; ++i) p[i] = v[i]; }
    // The first n lanes (0 < n <= lanes) from/to memory; the other lanes read as 0 and are not written.
    static Vec load_partial(const T* p, int n) { Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = i < n ? p[i] : T(0); return r; }
    void store_partial(T* p, int n) const { for (int i = 0; i < n; ++i) p[i] = v[i]; }
    // Float memory widened to / narrowed from these lanes (used with T = double).
    static Vec load_floats(const float* p) { Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = T(p[i]); return r; }
    static Vec load_floats_partial(const float* p, int n) { Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = i < n ? T(p[i]) : T(0); return r; }
    void store_floats(float* p) const { for (int i = 0; i < lanes; ++i) p[i] = float(v[i]); }
    void store_floats_partial(float* p, int n) const { for (int i = 0; i < n; ++i) p[i] = float(v[i]); }
#define NC_LANEWISE(expr) Vec r; for (int i = 0; i < lanes; ++i) r.v[i] = (expr); return r;
    friend Vec operator+(Vec a, Vec b) { NC_LANEWISE(a.v[i] + b.v[i]) }
    friend Vec operator-(Vec a, Vec b) { NC_LANEWISE(a.v[i] - b.v[i]) }
    friend Vec operator*(Vec a, Vec b) { NC_LANEWISE(a.v[i] * b.v[i]) }
    friend Vec operator/(Vec a, Vec b) { NC_LANEWISE(a.v[i] / b.v[i]) }
    // No FMA in the baseline: a separate multiply and add (results differ from AVX2 in the last bits).
    friend Vec fmadd(Vec a, Vec b, Vec c) { NC_LANEWISE(a.v[i] * b.v[i] + c.v[i]) }
    friend Vec vmax(Vec a, Vec b) { NC_LANEWISE(a.v[i] > b.v[i] ? a.v[i] : b.v[i]) }
    friend Vec vmin(Vec a, Vec b) { NC_LANEWISE(a.v[i] < b.v[i] ? a.v[i] : b.v[i]) }
    friend Vec greater(Vec a, Vec b) { NC_LANEWISE(a.v[i] > b.v[i] ? T(1) : T(0)) }
    friend Vec select(Vec mask, Vec if_true, Vec if_false) { NC_LANEWISE(mask.v[i] != T(0) ? if_true.v[i] : if_false.v[i]) }
    friend Vec vsqrt(Vec a) { NC_LANEWISE(static_cast<T>(__builtin_sqrt(a.v[i]))) }
    friend Vec vabs(Vec a) { NC_LANEWISE(__builtin_copysign(a.v[i], T(1))) }
    friend Vec copysign_of(Vec mag, Vec sgn) { NC_LANEWISE(__builtin_copysign(mag.v[i], sgn.v[i])) }
    friend Vec round_int(Vec a) { NC_LANEWISE(static_cast<T>(__builtin_nearbyint(a.v[i]))) }
    friend Vec pow2i(Vec n) {
        Vec r;
        for (int i = 0; i < lanes; ++i) {
            if constexpr (sizeof(T) == 4) {
                // NaN lanes: any exponent will do (the caller's mantissa is NaN already); casting NaN is UB.
                int32_t e = n.v[i] == n.v[i] ? static_cast<int32_t>(n.v[i]) : 0;
                uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
                memcpy(&r.v[i], &bits, 4);
            } else {
                int64_t e = n.v[i] == n.v[i] ? static_cast<int64_t>(n.v[i]) : 0;
                uint64_t bits = static_cast<uint64_t>(e + 1023) << 52;
                memcpy(&r.v[i], &bits, 8);
            }
        }
        return r;
    }
#undef NC_LANEWISE
    friend T hsum(Vec a) { T s = a.v[0]; for (int i = 1; i < lanes; ++i) s += a.v[i]; return s; }
    friend T hmax(Vec a) { T s = a.v[0]; for (int i = 1; i < lanes; ++i) s = a.v[i] > s ? a.v[i] : s; return s; }
};
