// Kernels of the layers beyond Dense: dropout, batch normalisation, residual sums, GELU's backward,
// input noise. Included inside an ISA namespace.
#pragma once
#include <math.h>
#include <stdint.h>

namespace layers_detail {

// A 32-bit integer hash (good avalanche, cheap): the counter-based random stream behind dropout and
// noise, so a mask depends only on (key, row, column), never on the thread that draws it.
inline uint32_t mix32(uint32_t h) {
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= h >> 15;
    h *= 0x846ca68bU;
    h ^= h >> 16;
    return h;
}

inline uint32_t row_key(uint64_t key, index_t r) {
    return mix32(uint32_t(key) ^ mix32(uint32_t(key >> 32) + uint32_t(r) * 0x9e3779b9U));
}

// Uniform in [0, 2^24) for column c of a row.
inline uint32_t uniform24(uint32_t rk, index_t c) { return mix32(rk ^ (uint32_t(c) * 0x85ebca6bU + 0x165667b1U)) >> 8; }

}  // namespace layers_detail

// d gelu(x) * dy: dx, x, dy are (rows, cols); dx may alias dy.
template <typename T>
void gelu_backward(T* dx, const T* x, const T* dy, index_t rows, index_t cols, int threads) {
    using V = Vec<T>;
    parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {
        const index_t off = r0 * cols;
        act_detail::map2(dx + off, x + off, dy + off, (r1 - r0) * cols,
                         [](V xv, V dyv) { return dyv * vgelu_derivative(xv); });
    });
}

// y = x * mask, mask (rows, cols) in {0, 1/(1-p)}: inverted dropout with drop probability p.
template <typename T>
void dropout_forward(T* y, T* mask, const T* x, index_t rows, index_t cols, double p, uint64_t key, int threads) {
    using namespace layers_detail;
    const uint32_t threshold = uint32_t(p * 16777216.0);
    const T keep_scale = T(1.0 / (1.0 - p));
    parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {
        for (index_t r = r0; r < r1; ++r) {
            const uint32_t rk = row_key(key, r);
            for (index_t c = 0; c < cols; ++c) {
                const T m = uniform24(rk, c) >= threshold ? keep_scale : T(0);
                mask[r * cols + c] = m;
                y[r * cols + c] = x[r * cols + c] * m;
            }
        }
    });
}

// out (n,) = a * b
template <typename T>
void multiply(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = a[i] * b[i];
}

// out (n,) = a + b
template <typename T>
void add(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// torch.nn.BatchNorm1d on x (rows, cols). Training: batch statistics (biased variance to normalise,
// unbiased to update the running variance), running stats updated with `momentum`; xhat, mean and invstd
// (cols,) are kept for backward. Inference: the running statistics. Column sums run over rows in order.
template <typename T>
void batchnorm_forward(T* y, T* xhat, T* mean, T* invstd, T* running_mean, T* running_var, const T* x, const T* gamma,
                       const T* beta, index_t rows, index_t cols, double momentum, double eps, bool training) {
    if (training) {
        for (index_t c = 0; c < cols; ++c) mean[c] = T(0);
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < cols; ++c) mean[c] += x[r * cols + c];
        for (index_t c = 0; c < cols; ++c) { mean[c] /= T(rows); invstd[c] = T(0); }
        for (index_t r = 0; r < rows; ++r)
            for (index_t c = 0; c < cols; ++c) {
                const T d = x[r * cols + c] - mean[c];
                invstd[c] += d * d;   // sum of squared deviations, for now
            }
        for (index_t c = 0; c < cols; ++c) {
            const double ss = invstd[c];
            const double unbiased = rows > 1 ? ss / double(rows - 1) : 0.0;
            running_mean[c] = T((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
            running_var[c] = T((1.0 - momentum) * running_var[c] + momentum * unbiased);
            invstd[c] = T(1.0 / sqrt(ss / double(rows) + eps));
        }
    } else {
        for (index_t c = 0; c < cols; ++c) {
            mean[c] = running_mean[c];
            invstd[c] = T(1.0 / sqrt(double(running_var[c]) + eps));
        }
    }
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            const T h = (x[r * cols + c] - mean[c]) * invstd[c];
            xhat[r * cols + c] = h;
            y[r * cols + c] = gamma[c] * h + beta[c];
        }
}

// dx (rows, cols) and dgamma, dbeta (cols,) from dy and the forward's xhat/invstd; dx may alias dy.
// Training mode differentiates through the batch statistics; inference mode treats them as constants.
template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* xhat, const T* invstd, const T* gamma,
                        index_t rows, index_t cols, bool training) {
    for (index_t c = 0; c < cols; ++c) { dgamma[c] = T(0); dbeta[c] = T(0); }
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            dbeta[c] += dy[r * cols + c];
            dgamma[c] += dy[r * cols + c] * xhat[r * cols + c];
        }
    const T inv_n = T(1.0 / double(rows));
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            const T g = dy[r * cols + c];
            dx[r * cols + c] = training
                ? gamma[c] * invstd[c] * (g - inv_n * dbeta[c] - xhat[r * cols + c] * inv_n * dgamma[c])
                : gamma[c] * invstd[c] * g;
        }
}

// x (rows, cols) += N(0, stddev^2) noise (Box-Muller on the counter-based stream).
template <typename T>
void gaussian_noise(T* x, index_t rows, index_t cols, double stddev, uint64_t key) {
    using namespace layers_detail;
    for (index_t r = 0; r < rows; ++r) {
        const uint32_t rk = row_key(key, r);
        for (index_t c = 0; c < cols; c += 2) {
            const double u1 = (double(uniform24(rk, c)) + 1.0) / 16777217.0;  // (0, 1]
            const double u2 = double(uniform24(rk, c + 1)) / 16777216.0;
            const double rad = stddev * sqrt(-2.0 * log(u1));
            x[r * cols + c] += T(rad * cos(6.283185307179586 * u2));
            if (c + 1 < cols) x[r * cols + c + 1] += T(rad * sin(6.283185307179586 * u2));
        }
    }
}
