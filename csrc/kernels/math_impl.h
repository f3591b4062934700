// exp, sigmoid and tanh on Vec<T>, accurate without fast-math (float32 within ~2 ulp of the float64
// value) and overflow-free for any finite input. Included inside an ISA namespace, after the Vec header.
#pragma once
#include <math.h>

// f applied to each lane through a scalar (libm) function, for what has no SIMD version here.
template <typename T, typename F>
inline Vec<T> per_lane(Vec<T> x, F f) {
    T lanes[Vec<T>::lanes];
    x.store(lanes);
    for (int i = 0; i < Vec<T>::lanes; ++i) lanes[i] = f(lanes[i]);
    return Vec<T>::load(lanes);
}

// exp(x) = 2^n * e^r with n = round(x / ln2) and |r| <= ln2/2 (Cody-Waite split of ln2 keeps r exact),
// e^r by its Taylor polynomial (degree 7 for float, 12 for double: truncation below half an ulp), and 2^n
// applied as two halves so that the whole under/overflow range saturates to 0/inf instead of wrapping.
template <typename T>
inline Vec<T> vexp(Vec<T> x) {
    using V = Vec<T>;
    constexpr bool f32 = sizeof(T) == 4;
    const V hi = V::set1(f32 ? T(88.8) : T(709.9));
    const V lo = V::set1(f32 ? T(-104.0) : T(-745.2));
    x = vmin(hi, vmax(lo, x));  // operand order keeps NaN (see vmax)
    const V n = round_int(x * V::set1(T(1.4426950408889634)));
    V r = fmadd(n, V::set1(f32 ? T(-0.693359375) : T(-6.93147180369123816490e-01)), x);
    r = fmadd(n, V::set1(f32 ? T(2.12194440e-4) : T(-1.90821492927058770002e-10)), r);
    V p;
    if constexpr (f32) {
        p = V::set1(T(1.0 / 5040));
        p = fmadd(p, r, V::set1(T(1.0 / 720)));
        p = fmadd(p, r, V::set1(T(1.0 / 120)));
        p = fmadd(p, r, V::set1(T(1.0 / 24)));
        p = fmadd(p, r, V::set1(T(1.0 / 6)));
        p = fmadd(p, r, V::set1(T(0.5)));
    } else {
        p = V::set1(T(1.0 / 479001600));
        const double inv_fact[] = {1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
                                   1.0 / 720,      1.0 / 120,     1.0 / 24,     1.0 / 6,     0.5};
        for (double c : inv_fact) p = fmadd(p, r, V::set1(T(c)));
    }
    p = fmadd(p, r, V::set1(T(1)));
    p = fmadd(p, r, V::set1(T(1)));
    const V n1 = round_int(n * V::set1(T(0.5)));
    return p * pow2i(n1) * pow2i(n - n1);
}

// 1 / (1 + e^-x): e^-x overflows to inf for x << 0, giving the correct limit 0.
template <typename T>
inline Vec<T> vsigmoid(Vec<T> x) {
    using V = Vec<T>;
    const V one = V::set1(T(1));
    return one / (one + vexp(V::zero() - x));
}

// float: an odd polynomial (least-squares fit of (tanh x - x)/x^3 in x^2, max rel. error 4.5e-9) for
// |x| < 0.625, where 1 - 2/(e^2x + 1) would cancel; the exp form elsewhere. double: libm per lane.
template <typename T>
inline Vec<T> vtanh(Vec<T> x) {
    using V = Vec<T>;
    if constexpr (sizeof(T) == 4) {
        const V ax = vabs(x);
        const V z = x * x;
        V p = V::set1(T(-0.005704042524485638));
        p = fmadd(p, z, V::set1(T(0.020637861488775385)));
        p = fmadd(p, z, V::set1(T(-0.05373915650349025)));
        p = fmadd(p, z, V::set1(T(0.1333143175350725)));
        p = fmadd(p, z, V::set1(T(-0.3333328128411301)));
        const V small = fmadd(x * z, p, x);
        const V one = V::set1(T(1));
        const V e = vexp(ax + ax);
        const V large = copysign_of(one - V::set1(T(2)) / (e + one), x);
        return select(greater(ax, V::set1(T(0.625))), large, small);
    } else {
        return per_lane(x, [](T v) { return T(::tanh(v)); });
    }
}

// e^x - 1 without the cancellation of vexp(x) - 1 near 0: a Taylor polynomial for |x| < 0.3, degree 7
// for float (truncation < 2e-9 relative) and 13 for double (< 1e-18).
template <typename T>
inline Vec<T> vexpm1(Vec<T> x) {
    using V = Vec<T>;
    constexpr int degree = sizeof(T) == 4 ? 7 : 13;
    double inv_fact = 1.0;
    for (int k = 2; k <= degree; ++k) inv_fact /= k;
    V p = V::set1(T(inv_fact));
    for (int k = degree - 1; k >= 1; --k) {
        inv_fact *= k + 1;   // now 1/k!
        p = fmadd(p, x, V::set1(T(inv_fact)));
    }
    const V small = p * x;
    const V large = vexp(x) - V::set1(T(1));
    return select(greater(vabs(x), V::set1(T(0.3))), large, small);
}

// GELU with the exact erf form (torch's default), through libm per lane: accurate in both precisions.
template <typename T>
inline Vec<T> vgelu(Vec<T> x) {
    return per_lane(x, [](T v) {
        if constexpr (sizeof(T) == 4) return 0.5f * v * (1.0f + ::erff(v * 0.70710678118654752f));
        else return 0.5 * v * (1.0 + ::erf(v * 0.70710678118654752));
    });
}

// d gelu / dx = Phi(x) + x phi(x)
template <typename T>
inline Vec<T> vgelu_derivative(Vec<T> x) {
    return per_lane(x, [](T t) {
        const double v = t;
        return T(0.5 * (1.0 + ::erf(v * 0.70710678118654752)) + v * ::exp(-0.5 * v * v) * 0.39894228040143268);
    });
}

template <typename T>
inline Vec<T> act_apply(Vec<T> x, nc::Act act, Vec<T> alpha) {
    using V = Vec<T>;
    switch (act) {
        case nc::Act::sigmoid: return vsigmoid(x);
        case nc::Act::tanh: return vtanh(x);
        case nc::Act::relu: return vmax(V::zero(), x);
        case nc::Act::leaky_relu: return select(greater(x, V::zero()), x, x * alpha);
        case nc::Act::elu: return select(greater(x, V::zero()), x, alpha * vexpm1(vmin(V::zero(), x)));
        case nc::Act::gelu: return vgelu(x);
        default: return x;  // identity (softmax is row-wise, handled by the caller)
    }
}

// dL/dx from the forward output y and dL/dy: every element-wise activation here has a derivative that is
// a function of its output (leaky ReLU needs alpha >= 0 and ELU alpha > 0 for that, which the API
// enforces); GELU is the exception and goes through gelu_backward with its input.
template <typename T>
inline Vec<T> act_derivative_apply(Vec<T> y, Vec<T> dy, nc::Act act, Vec<T> alpha) {
    using V = Vec<T>;
    const V one = V::set1(T(1));
    switch (act) {
        case nc::Act::sigmoid: return dy * y * (one - y);
        case nc::Act::tanh: return dy * (one - y * y);
        case nc::Act::relu: return select(greater(y, V::zero()), dy, V::zero());
        case nc::Act::leaky_relu: return select(greater(y, V::zero()), dy, dy * alpha);
        case nc::Act::elu: return select(greater(y, V::zero()), dy, dy * (y + alpha));
        default: return dy;
    }
}
