// Optimizer steps over a flat parameter range, the mini-batch gather, and the global-norm helpers.
// Included inside an ISA namespace.
#pragma once
#include <math.h>
#include <string.h>

namespace optim_detail {

// Applies f to whole vectors of (param, grad, s1, s2, decay); the tail goes through zero-padded copies.
template <typename T, typename F>
void for_each_vector(T* param, const T* grad, T* s1, T* s2, const T* decay, index_t n, int threads, F f) {
    using V = Vec<T>;
    const index_t blocks = n / V::lanes;
    // one vector per row, so the row blocks and the thread count follow the element count
    parallel_rows(blocks, V::lanes, threads, [&](index_t b0, index_t b1) {
        for (index_t b = b0; b < b1; ++b) {
            const index_t i = b * V::lanes;
            f(param + i, grad + i, s1 ? s1 + i : nullptr, s2 ? s2 + i : nullptr, decay ? decay + i : nullptr);
        }
    });
    const index_t tail = blocks * V::lanes;
    if (tail < n) {
        T pb[V::lanes] = {}, gb[V::lanes] = {}, ab[V::lanes] = {}, bb[V::lanes] = {}, db[V::lanes] = {};
        for (index_t q = 0; q < n - tail; ++q) {
            pb[q] = param[tail + q];
            gb[q] = grad[tail + q];
            if (s1) ab[q] = s1[tail + q];
            if (s2) bb[q] = s2[tail + q];
            if (decay) db[q] = decay[tail + q];
        }
        f(pb, gb, s1 ? ab : nullptr, s2 ? bb : nullptr, decay ? db : nullptr);
        for (index_t q = 0; q < n - tail; ++q) {
            param[tail + q] = pb[q];
            if (s1) s1[tail + q] = ab[q];
            if (s2) s2[tail + q] = bb[q];
        }
    }
}

}  // namespace optim_detail

// param, grad, state1, state2 are (n,): one fused pass, with the update rules of torch.optim:
//   sgd:   g = grad + wd*p;  v = momentum*v + g;  g = nesterov ? g + momentum*v : v;  p -= lr*g
//   adam:  g = grad + wd*p;  m = b1*m + (1-b1)*g;  s = b2*s + (1-b2)*g^2;
//          p -= (lr / bc1) * m / (sqrt(s) / sqrt(bc2) + eps)
//   adamw: p *= 1 - lr*wd first, then adam with g = grad
// decay is (n,) or null: a per-parameter factor on wd (0 exempts a parameter, e.g. a bias), 1 when null.
template <typename T>
void optim_step(T* param, const T* grad, T* state1, T* state2, const T* decay, index_t n, const nc::OptimParams& p,
                int threads) {
    using V = Vec<T>;
    const V wd = V::set1(T(p.weight_decay));
    if (p.kind == nc::OptimKind::sgd) {
        const V neg_lr = V::set1(T(-p.lr)), mom = V::set1(T(p.momentum));
        const bool use_wd = p.weight_decay != 0.0, use_mom = p.momentum != 0.0, nesterov = p.nesterov;
        optim_detail::for_each_vector(param, grad, use_mom ? state1 : static_cast<T*>(nullptr), static_cast<T*>(nullptr),
                                      use_wd ? decay : nullptr, n, threads, [&](T* pp, const T* gp, T* vp, T*, const T* dp) {
            const V w = V::load(pp);
            V g = V::load(gp);
            if (use_wd) g = fmadd(dp ? wd * V::load(dp) : wd, w, g);
            if (use_mom) {
                const V v = fmadd(mom, V::load(vp), g);
                v.store(vp);
                g = nesterov ? fmadd(mom, v, g) : v;
            }
            fmadd(neg_lr, g, w).store(pp);
        });
        return;
    }
    const bool decoupled = p.kind == nc::OptimKind::adamw && p.weight_decay != 0.0;
    const bool coupled_wd = p.kind == nc::OptimKind::adam && p.weight_decay != 0.0;
    const V b1 = V::set1(T(p.beta1)), one_b1 = V::set1(T(1.0 - p.beta1));
    const V b2 = V::set1(T(p.beta2)), one_b2 = V::set1(T(1.0 - p.beta2));
    const V neg_step = V::set1(T(-p.lr / p.bias_correction1));
    const V inv_bc2_sqrt = V::set1(T(1.0 / sqrt(p.bias_correction2)));
    const V eps = V::set1(T(p.eps));
    const V shrink = V::set1(T(1.0 - p.lr * p.weight_decay)), one = V::set1(T(1)), rate = V::set1(T(p.lr * p.weight_decay));
    optim_detail::for_each_vector(param, grad, state1, state2, decoupled || coupled_wd ? decay : nullptr, n, threads,
                                  [&](T* pp, const T* gp, T* mp, T* sp, const T* dp) {
        V w = V::load(pp);
        V g = V::load(gp);
        if (decoupled) w = w * (dp ? one - rate * V::load(dp) : shrink);
        if (coupled_wd) g = fmadd(dp ? wd * V::load(dp) : wd, w, g);
        const V m = fmadd(b1, V::load(mp), one_b1 * g);
        const V s = fmadd(b2, V::load(sp), one_b2 * g * g);
        m.store(mp);
        s.store(sp);
        const V denom = vsqrt(s) * inv_bc2_sqrt + eps;
        fmadd(neg_step, m / denom, w).store(pp);
    });
}

// dst (count, cols) = src[idx[i], :] for each i: a mini-batch gathered from the data set without copying it.
template <typename T>
void gather_rows(T* dst, const T* src, const int64_t* idx, index_t count, index_t cols) {
    for (index_t i = 0; i < count; ++i) memcpy(dst + i * cols, src + idx[i] * cols, sizeof(T) * cols);
}

// sum of x^2 over (n,), accumulated in double in a fixed order (for gradient norms and clipping).
template <typename T>
double sum_squares(const T* x, index_t n) {
    double s = 0.0;
    for (index_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
    return s;
}

// x (n,) *= factor
template <typename T>
void scale(T* x, index_t n, double factor) {
    const T f = T(factor);
    for (index_t i = 0; i < n; ++i) x[i] *= f;
}
