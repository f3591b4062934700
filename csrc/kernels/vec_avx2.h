// Vec<T> over AVX2/FMA registers: 8 floats or 4 doubles. Included only by kernels_avx2.cpp, inside that
// ISA's namespace, so none of these inline functions can be merged with the baseline copy by the linker.
#pragma once
#include <immintrin.h>

template <typename T> struct Vec;

template <> struct Vec<float> {
    static constexpr int lanes = 8;
    __m256 v;
    static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
    static Vec set1(float x) { return {_mm256_set1_ps(x)}; }
    static Vec zero() { return {_mm256_setzero_ps()}; }
    void store(float* p) const { _mm256_storeu_ps(p, v); }
    // The first n lanes (0 < n <= 8) from/to memory; the other lanes read as 0 and are not written.
    static __m256i first_lanes(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
    static Vec load_partial(const float* p, int n) { return {_mm256_maskload_ps(p, first_lanes(n))}; }
    // (vmaskmovps stores are microcoded on AMD Zen: a spill to the stack and n scalar copies is faster)
    void store_partial(float* p, int n) const {
        alignas(32) float lanes_out[8];
        _mm256_store_ps(lanes_out, v);
        for (int i = 0; i < n; ++i) p[i] = lanes_out[i];
    }
    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
    // max/min return b when either operand is NaN (the x86 rule), so NaN in b propagates.
    friend Vec vmax(Vec a, Vec b) { return {_mm256_max_ps(a.v, b.v)}; }
    friend Vec vmin(Vec a, Vec b) { return {_mm256_min_ps(a.v, b.v)}; }
    friend Vec greater(Vec a, Vec b) { return {_mm256_cmp_ps(a.v, b.v, _CMP_GT_OQ)}; }
    friend Vec select(Vec mask, Vec if_true, Vec if_false) {
        return {_mm256_blendv_ps(if_false.v, if_true.v, mask.v)};
    }
    friend Vec vsqrt(Vec a) { return {_mm256_sqrt_ps(a.v)}; }
    friend Vec vabs(Vec a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
    friend Vec copysign_of(Vec mag, Vec sgn) {
        const __m256 s = _mm256_set1_ps(-0.0f);
        return {_mm256_or_ps(_mm256_andnot_ps(s, mag.v), _mm256_and_ps(s, sgn.v))};
    }
    // Round to the nearest integer (ties to even), kept as float.
    friend Vec round_int(Vec a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    // 2^n for integer-valued n in [-126, 127], built in the exponent field.
    friend Vec pow2i(Vec n) {
        __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n.v), _mm256_set1_epi32(127));
        return {_mm256_castsi256_ps(_mm256_slli_epi32(e, 23))};
    }
    // Lane sum in a fixed order (independent of threads).
    friend float hsum(Vec a) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    friend float hmax(Vec a) {
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

template <> struct Vec<double> {
    static constexpr int lanes = 4;
    __m256d v;
    static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
    static Vec set1(double x) { return {_mm256_set1_pd(x)}; }
    static Vec zero() { return {_mm256_setzero_pd()}; }
    void store(double* p) const { _mm256_storeu_pd(p, v); }
    static __m256i first_lanes(int n) { return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3)); }
    static Vec load_partial(const double* p, int n) { return {_mm256_maskload_pd(p, first_lanes(n))}; }
    void store_partial(double* p, int n) const {
        alignas(32) double lanes_out[4];
        _mm256_store_pd(lanes_out, v);
        for (int i = 0; i < n; ++i) p[i] = lanes_out[i];
    }
    // Float memory widened to / narrowed from double lanes (for double-precision work on float data).
    static __m128i first_floats(int n) { return _mm_cmpgt_epi32(_mm_set1_epi32(n), _mm_setr_epi32(0, 1, 2, 3)); }
    static Vec load_floats(const float* p) { return {_mm256_cvtps_pd(_mm_loadu_ps(p))}; }
    static Vec load_floats_partial(const float* p, int n) { return {_mm256_cvtps_pd(_mm_maskload_ps(p, first_floats(n)))}; }
    void store_floats(float* p) const { _mm_storeu_ps(p, _mm256_cvtpd_ps(v)); }
    void store_floats_partial(float* p, int n) const {
        alignas(16) float lanes_out[4];
        _mm_store_ps(lanes_out, _mm256_cvtpd_ps(v));
        for (int i = 0; i < n; ++i) p[i] = lanes_out[i];
    }
    friend Vec operator+(Vec a, Vec b) { return {_mm256_add_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm256_sub_pd(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm256_mul_pd(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm256_div_pd(a.v, b.v)}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
    friend Vec vmax(Vec a, Vec b) { return {_mm256_max_pd(a.v, b.v)}; }
    friend Vec vmin(Vec a, Vec b) { return {_mm256_min_pd(a.v, b.v)}; }
    friend Vec greater(Vec a, Vec b) { return {_mm256_cmp_pd(a.v, b.v, _CMP_GT_OQ)}; }
    friend Vec select(Vec mask, Vec if_true, Vec if_false) {
        return {_mm256_blendv_pd(if_false.v, if_true.v, mask.v)};
    }
    friend Vec vsqrt(Vec a) { return {_mm256_sqrt_pd(a.v)}; }
    friend Vec vabs(Vec a) { return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v)}; }
    friend Vec copysign_of(Vec mag, Vec sgn) {
        const __m256d s = _mm256_set1_pd(-0.0);
        return {_mm256_or_pd(_mm256_andnot_pd(s, mag.v), _mm256_and_pd(s, sgn.v))};
    }
    friend Vec round_int(Vec a) { return {_mm256_round_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    // 2^n for integer-valued n in [-1022, 1023]: adding 1.5*2^52 + 1023 leaves n + 1023 in the low
    // mantissa bits (AVX2 has no double->int64 conversion); the shift moves them into the exponent.
    friend Vec pow2i(Vec n) {
        __m256d t = _mm256_add_pd(n.v, _mm256_set1_pd(6755399441055744.0 + 1023.0));
        return {_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52))};
    }
    friend double hsum(Vec a) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
    friend double hmax(Vec a) {
        __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
        return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
    }
};
