// Vec<T> over AVX-512 registers: 16 floats or 8 doubles (F + DQ + BW + VL, the x86-64-v4 level).
// Included only by kernels_avx512.cpp, inside that ISA's namespace. Comparisons give all-ones lanes as
// in vec_avx2.h, so the generic code never sees a mask register.
#pragma once
#include <immintrin.h>

template <typename T> struct Vec;

template <> struct Vec<float> {
    static constexpr int lanes = 16;
    __m512 v;
    static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
    static Vec set1(float x) { return {_mm512_set1_ps(x)}; }
    static Vec zero() { return {_mm512_setzero_ps()}; }
    void store(float* p) const { _mm512_storeu_ps(p, v); }
    // The first n lanes (0 < n <= 16) from/to memory; the other lanes read as 0 and are not written.
    static __mmask16 first_lanes(int n) { return __mmask16((1u << n) - 1u); }
    static Vec load_partial(const float* p, int n) { return {_mm512_maskz_loadu_ps(first_lanes(n), p)}; }
    void store_partial(float* p, int n) const { _mm512_mask_storeu_ps(p, first_lanes(n), v); }
    friend Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
    // max/min return b when either operand is NaN (the x86 rule), so NaN in b propagates.
    friend Vec vmax(Vec a, Vec b) { return {_mm512_max_ps(a.v, b.v)}; }
    friend Vec vmin(Vec a, Vec b) { return {_mm512_min_ps(a.v, b.v)}; }
    friend Vec greater(Vec a, Vec b) {
        return {_mm512_castsi512_ps(_mm512_movm_epi32(_mm512_cmp_ps_mask(a.v, b.v, _CMP_GT_OQ)))};
    }
    friend Vec select(Vec mask, Vec if_true, Vec if_false) {
        return {_mm512_mask_blend_ps(_mm512_movepi32_mask(_mm512_castps_si512(mask.v)), if_false.v, if_true.v)};
    }
    friend Vec vsqrt(Vec a) { return {_mm512_sqrt_ps(a.v)}; }
    friend Vec vabs(Vec a) { return {_mm512_andnot_ps(_mm512_set1_ps(-0.0f), a.v)}; }
    friend Vec copysign_of(Vec mag, Vec sgn) {
        const __m512 s = _mm512_set1_ps(-0.0f);
        return {_mm512_or_ps(_mm512_andnot_ps(s, mag.v), _mm512_and_ps(s, sgn.v))};
    }
    // Round to the nearest integer (ties to even), kept as float.
    friend Vec round_int(Vec a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    // 2^n for integer-valued n in [-126, 127], built in the exponent field.
    friend Vec pow2i(Vec n) {
        __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n.v), _mm512_set1_epi32(127));
        return {_mm512_castsi512_ps(_mm512_slli_epi32(e, 23))};
    }
    // Lane sum in a fixed order (independent of threads): halves added down to one lane.
    friend float hsum(Vec a) {
        __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
    friend float hmax(Vec a) {
        __m256 h = _mm256_max_ps(_mm512_castps512_ps256(a.v), _mm512_extractf32x8_ps(a.v, 1));
        __m128 s = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        s = _mm_max_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

template <> struct Vec<double> {
    static constexpr int lanes = 8;
    __m512d v;
    static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
    static Vec set1(double x) { return {_mm512_set1_pd(x)}; }
    static Vec zero() { return {_mm512_setzero_pd()}; }
    void store(double* p) const { _mm512_storeu_pd(p, v); }
    static __mmask8 first_lanes(int n) { return __mmask8((1u << n) - 1u); }
    static Vec load_partial(const double* p, int n) { return {_mm512_maskz_loadu_pd(first_lanes(n), p)}; }
    void store_partial(double* p, int n) const { _mm512_mask_storeu_pd(p, first_lanes(n), v); }
    // Float memory widened to / narrowed from double lanes (for double-precision work on float data).
    static Vec load_floats(const float* p) { return {_mm512_cvtps_pd(_mm256_loadu_ps(p))}; }
    static Vec load_floats_partial(const float* p, int n) { return {_mm512_cvtps_pd(_mm256_maskz_loadu_ps(first_lanes(n), p))}; }
    void store_floats(float* p) const { _mm256_storeu_ps(p, _mm512_cvtpd_ps(v)); }
    void store_floats_partial(float* p, int n) const { _mm256_mask_storeu_ps(p, first_lanes(n), _mm512_cvtpd_ps(v)); }
    friend Vec operator+(Vec a, Vec b) { return {_mm512_add_pd(a.v, b.v)}; }
    friend Vec operator-(Vec a, Vec b) { return {_mm512_sub_pd(a.v, b.v)}; }
    friend Vec operator*(Vec a, Vec b) { return {_mm512_mul_pd(a.v, b.v)}; }
    friend Vec operator/(Vec a, Vec b) { return {_mm512_div_pd(a.v, b.v)}; }
    friend Vec fmadd(Vec a, Vec b, Vec c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
    friend Vec vmax(Vec a, Vec b) { return {_mm512_max_pd(a.v, b.v)}; }
    friend Vec vmin(Vec a, Vec b) { return {_mm512_min_pd(a.v, b.v)}; }
    friend Vec greater(Vec a, Vec b) {
        return {_mm512_castsi512_pd(_mm512_movm_epi64(_mm512_cmp_pd_mask(a.v, b.v, _CMP_GT_OQ)))};
    }
    friend Vec select(Vec mask, Vec if_true, Vec if_false) {
        return {_mm512_mask_blend_pd(_mm512_movepi64_mask(_mm512_castpd_si512(mask.v)), if_false.v, if_true.v)};
    }
    friend Vec vsqrt(Vec a) { return {_mm512_sqrt_pd(a.v)}; }
    friend Vec vabs(Vec a) { return {_mm512_andnot_pd(_mm512_set1_pd(-0.0), a.v)}; }
    friend Vec copysign_of(Vec mag, Vec sgn) {
        const __m512d s = _mm512_set1_pd(-0.0);
        return {_mm512_or_pd(_mm512_andnot_pd(s, mag.v), _mm512_and_pd(s, sgn.v))};
    }
    friend Vec round_int(Vec a) { return {_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
    // 2^n for integer-valued n in [-1022, 1023], built in the exponent field (DQ has the int64 conversion).
    friend Vec pow2i(Vec n) {
        __m512i e = _mm512_add_epi64(_mm512_cvtpd_epi64(n.v), _mm512_set1_epi64(1023));
        return {_mm512_castsi512_pd(_mm512_slli_epi64(e, 52))};
    }
    friend double hsum(Vec a) {
        __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a.v), _mm512_extractf64x4_pd(a.v, 1));
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
        return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
    }
    friend double hmax(Vec a) {
        __m256d h = _mm256_max_pd(_mm512_castpd512_pd256(a.v), _mm512_extractf64x4_pd(a.v, 1));
        __m128d s = _mm_max_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
        return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
    }
};
