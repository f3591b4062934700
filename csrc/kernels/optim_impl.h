// Optimizer steps over the flat parameter buffer, and the mini-batch gather. Included inside an ISA namespace.
#pragma once
#include <string.h>

// param, grad, velocity are (n,): torch.optim.SGD with dampening 0, one pass over memory.
//   g = grad + wd * param;  v = momentum * v + g;  g = nesterov ? g + momentum * v : v;  param -= lr * g
template <typename T>
void sgd_step(T* param, const T* grad, T* velocity, index_t n, const nc::SgdParams& p, int threads) {
    using V = Vec<T>;
    const V lr = V::set1(T(-p.lr)), wd = V::set1(T(p.weight_decay)), mom = V::set1(T(p.momentum));
    const bool use_wd = p.weight_decay != 0.0, use_mom = p.momentum != 0.0, nesterov = p.nesterov;
    auto update = [&](T* pp, const T* gp, T* vp) {
        const V w = V::load(pp);
        V g = V::load(gp);
        if (use_wd) g = fmadd(wd, w, g);
        if (use_mom) {
            const V v = fmadd(mom, V::load(vp), g);
            v.store(vp);
            g = nesterov ? fmadd(mom, v, g) : v;
        }
        fmadd(lr, g, w).store(pp);
    };
    const index_t blocks = n / V::lanes;
    const index_t per_thread = 32768;
    int nt = int(n / per_thread);
    nt = nt > threads ? threads : (nt < 1 ? 1 : nt);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (index_t b = 0; b < blocks; ++b) {
        const index_t i = b * V::lanes;
        update(param + i, grad + i, velocity ? velocity + i : nullptr);
    }
    const index_t tail = blocks * V::lanes;
    if (tail < n) {
        T pb[V::lanes] = {}, gb[V::lanes] = {}, vb[V::lanes] = {};
        for (index_t q = 0; q < n - tail; ++q) {
            pb[q] = param[tail + q];
            gb[q] = grad[tail + q];
            vb[q] = velocity ? velocity[tail + q] : T(0);
        }
        update(pb, gb, vb);
        for (index_t q = 0; q < n - tail; ++q) {
            param[tail + q] = pb[q];
            if (velocity) velocity[tail + q] = vb[q];
        }
    }
}

// dst (count, cols) = src[idx[i], :] for each i: a mini-batch gathered from the data set without copying it.
template <typename T>
void gather_rows(T* dst, const T* src, const int64_t* idx, index_t count, index_t cols) {
    for (index_t i = 0; i < count; ++i) memcpy(dst + i * cols, src + idx[i] * cols, sizeof(T) * cols);
}
