// Plain types shared by the dispatcher, the kernels and the network. No inline functions live here:
// every ISA copy of the kernels must stay self-contained (see kernels/README.md).
#pragma once
#include <cstdint>

namespace nc {

using index_t = std::int64_t;

// Activation applied element-wise (softmax: row-wise). The numeric values are part of the binding API.
enum class Act : int { identity = 0, sigmoid = 1, tanh = 2, relu = 3, leaky_relu = 4, softmax = 5, elu = 6, gelu = 7 };

// Loss functions; reductions follow PyTorch's defaults (see kernels/loss_impl.h).
enum class LossKind : int { mse = 0, bce = 1, bce_with_logits = 2, cross_entropy = 3 };

// C = act(op(A) . op(B) + bias). Element (i, k) of op(A) is a[i*rsa + k*csa]; element (k, j) of op(B) is
// b[k*rsb + j*csb]: the strides absorb the transposes, so one micro-kernel serves X.W, dY.W^T and X^T.dY.
template <typename T>
struct GemmCall {
    index_t m, n, k;
    const T* a; index_t rsa, csa;
    const T* b; index_t rsb, csb;
    T* c; index_t ldc;
    const T* bias;      // (n,) or nullptr
    Act act;            // softmax is not tile-local: the caller applies it after the product
    T alpha;            // leaky ReLU slope
    // Optional row gathers for A (a mini-batch read straight from the data set): op(A)[i][k] is
    // a[I(i) * rsa + K(k) * csa] with I = gather_i (or the identity), K = gather_k (or the identity).
    const std::int64_t* gather_i = nullptr;
    const std::int64_t* gather_k = nullptr;
};

// A 2-D window over channels-last images (convolution, pooling): input (h, w, c) per sample, kernel
// (kh, kw), stride (sh, sw), padding on top and left (pt, pl; the bottom and right padding only shows in
// the output size), output (oh, ow) pixels.
struct Window2D {
    index_t h, w, c, kh, kw, sh, sw, pt, pl, oh, ow;
};

enum class OptimKind : int { sgd = 0, adam = 1, adamw = 2 };

// One optimizer step over a flat range. sgd: torch.optim.SGD with dampening 0 (state1 = momentum
// buffer). adam/adamw: torch.optim.Adam/AdamW (state1 = first moment, state2 = second moment);
// bias_correction1 = 1 - beta1^t and bias_correction2 = 1 - beta2^t for the step t being taken.
struct OptimParams {
    OptimKind kind = OptimKind::sgd;
    double lr = 0.01, momentum = 0.0, weight_decay = 0.0;
    bool nesterov = false;
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
    double bias_correction1 = 1.0, bias_correction2 = 1.0;
};

// The per-step kernels of the recurrent layers (kernels/recurrent_impl.h, where each is documented).
template <typename T>
struct RecurrentKernels {
    void (*rnn_step_forward)(T* h, const T* pre, const T* hh, index_t ld_h, index_t ld_pre, index_t ld_hh, index_t rows,
                             index_t hidden, Act act, int threads);
    void (*rnn_step_backward)(T* da, const T* h, const T* dh_rec, const T* dy, index_t ld_da, index_t ld_h,
                              index_t ld_dy, index_t rows, index_t hidden, Act act, int threads);
    void (*lstm_step_forward)(T* gates, T* c, T* tanh_c, T* h, const T* hh, const T* c_prev, index_t ld_g,
                              index_t ld_hh, index_t ld_s, index_t rows, index_t hidden, int threads);
    void (*lstm_step_backward)(T* da, T* dc, const T* gates, const T* c_prev, const T* tanh_c, const T* dh_rec,
                               const T* dy, index_t ld_da, index_t ld_g, index_t ld_s, index_t ld_dy, bool first,
                               index_t rows, index_t hidden, int threads);
    void (*gru_step_forward)(T* gates, T* hn, T* h, const T* hh, const T* h_prev, index_t ld_g, index_t ld_hh,
                             index_t ld_n, index_t ld_s, index_t rows, index_t hidden, int threads);
    void (*gru_step_backward)(T* da_x, T* da_h, T* carry, const T* gates, const T* hn, const T* h_prev,
                              const T* dh_rec, const T* dy, index_t ld_da, index_t ld_g, index_t ld_n, index_t ld_s,
                              index_t ld_dy, bool first, index_t rows, index_t hidden, int threads);
};

// The function table one ISA build exports; the dispatcher picks one table per dtype at import.
template <typename T>
struct KernelTable {
    const char* isa;
    int mr, nr;   // micro-kernel tile, reported by cpu_info() and used by tests to hit the edges
    index_t (*gemm_workspace_elems)(index_t m, index_t n, index_t k, int threads);
    void (*gemm)(const GemmCall<T>& call, T* workspace, index_t workspace_elems, int threads);
    void (*act_forward)(T* y, const T* x, index_t rows, index_t cols, Act act, T alpha, int threads);
    void (*act_backward)(T* dx, const T* y, const T* dy, index_t rows, index_t cols, Act act, T alpha,
                         int threads);
    void (*bias_grad)(T* db, const T* dy, index_t rows, index_t cols, int threads);
    double (*loss)(T* grad, const T* out, const T* target, const std::int64_t* labels, index_t rows,
                   index_t cols, LossKind kind);
    void (*optim_step)(T* param, const T* grad, T* state1, T* state2, const T* decay, index_t n, const OptimParams& p,
                       int threads);
    void (*gather_rows)(T* dst, const T* src, const std::int64_t* idx, index_t count, index_t cols);
    // Layers beyond Dense (layers_impl.h).
    void (*gelu_backward)(T* dx, const T* x, const T* dy, index_t rows, index_t cols, int threads);
    void (*dropout_forward)(T* y, T* mask, const T* x, index_t rows, index_t cols, double p, std::uint64_t key,
                            int threads);
    void (*multiply)(T* out, const T* a, const T* b, index_t n);
    void (*add)(T* out, const T* a, const T* b, index_t n);
    void (*batchnorm_forward)(T* y, T* xhat, T* mean, T* invstd, T* running_mean, T* running_var, const T* x,
                              const T* gamma, const T* beta, index_t rows, index_t cols, double momentum,
                              double eps, bool training);
    void (*batchnorm_backward)(T* dx, T* dgamma, T* dbeta, const T* dy, const T* xhat, const T* invstd,
                               const T* gamma, index_t rows, index_t cols, bool training);
    void (*gaussian_noise)(T* x, index_t rows, index_t cols, double stddev, std::uint64_t key);
    double (*sum_squares)(const T* x, index_t n);
    void (*scale)(T* x, index_t n, double factor);
    // Convolution around the GEMM (conv_impl.h) and pooling (pool_impl.h), on (n, h, w, c) images.
    void (*im2col)(T* cols, const T* x, const std::int64_t* rows, index_t n, const Window2D& g, int threads);
    void (*col2im)(T* dx, const T* dcols, index_t n, const Window2D& g, int threads);
    void (*maxpool_forward)(T* y, T* argmax, const T* x, index_t n, const Window2D& g, int threads);
    void (*maxpool_backward)(T* dx, const T* dy, const T* argmax, index_t n, const Window2D& g, int threads);
    void (*avgpool_forward)(T* y, const T* x, index_t n, const Window2D& g, int threads);
    void (*avgpool_backward)(T* dx, const T* dy, index_t n, const Window2D& g, int threads);
    RecurrentKernels<T> recurrent;
};

}  // namespace nc
