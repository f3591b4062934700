// torch.nn.SyncBatchNorm for data-parallel training: the training-mode batch normalisation of a global
// batch whose rows are spread over the ranks. Per feature, the sums (and the row count) are summed over
// ranks, then the squared deviations from the global mean (two passes, as the one-process kernel does),
// so every rank normalises with, and keeps as running statistics, the global batch's values. A rank with
// no rows in the step passes rows = 0 and still takes part. Plain loops: cols-wide, next to the GEMMs.
#pragma once
#include <cmath>
#include <cstring>

#include "collective.h"

namespace nc {

// y, xhat (rows, cols); mean, invstd (cols,) kept for backward; sums (cols + 1,) scratch.
// Returns the global batch's row count. With no rows anywhere (a pure synchronisation) nothing is updated.
template <typename T>
index_t sync_batchnorm_forward(const Collective& comm, T* y, T* xhat, T* mean, T* invstd, T* running_mean,
                               T* running_var, const T* x, const T* gamma, const T* beta, index_t rows, index_t cols,
                               double momentum, double eps, T* sums) {
    for (index_t c = 0; c < cols; ++c) sums[c] = T(0);
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) sums[c] += x[r * cols + c];
    sums[cols] = T(rows);
    comm.sum(sums, cols + 1);
    const index_t n = index_t(sums[cols]);
    if (n == 0) return 0;
    for (index_t c = 0; c < cols; ++c) { mean[c] = sums[c] / T(n); sums[c] = T(0); }
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            const T d = x[r * cols + c] - mean[c];
            sums[c] += d * d;
        }
    comm.sum(sums, cols);
    for (index_t c = 0; c < cols; ++c) {
        const double ss = sums[c];
        const double unbiased = n > 1 ? ss / double(n - 1) : 0.0;
        running_mean[c] = T((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
        running_var[c] = T((1.0 - momentum) * running_var[c] + momentum * unbiased);
        invstd[c] = T(1.0 / std::sqrt(ss / double(n) + eps));
    }
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            const T h = (x[r * cols + c] - mean[c]) * invstd[c];
            xhat[r * cols + c] = h;
            y[r * cols + c] = gamma[c] * h + beta[c];
        }
    return n;
}

// dx (rows, cols) from dy (the global batch's loss gradient: already weighted by 1 / global rows);
// dgamma, dbeta (cols,) get this rank's share (the gradient allreduce adds the others'); the global
// sums in sums (2 cols,) enter dx. dx may alias dy.
template <typename T>
void sync_batchnorm_backward(const Collective& comm, T* dx, T* dgamma, T* dbeta, const T* dy, const T* xhat,
                             const T* invstd, const T* gamma, index_t rows, index_t cols, index_t global_rows, T* sums) {
    T* sum_dy = sums;
    T* sum_dy_xhat = sums + cols;
    for (index_t c = 0; c < cols; ++c) { sum_dy[c] = T(0); sum_dy_xhat[c] = T(0); }
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            sum_dy[c] += dy[r * cols + c];
            sum_dy_xhat[c] += dy[r * cols + c] * xhat[r * cols + c];
        }
    std::memcpy(dbeta, sum_dy, sizeof(T) * std::size_t(cols));
    std::memcpy(dgamma, sum_dy_xhat, sizeof(T) * std::size_t(cols));
    comm.sum(sums, 2 * cols);
    const T inv_n = T(1.0 / double(global_rows > 0 ? global_rows : 1));
    for (index_t r = 0; r < rows; ++r)
        for (index_t c = 0; c < cols; ++c) {
            const T g = dy[r * cols + c];
            dx[r * cols + c] = gamma[c] * invstd[c] * (g - inv_n * sum_dy[c] - xhat[r * cols + c] * inv_n * sum_dy_xhat[c]);
        }
}

}  // namespace nc
