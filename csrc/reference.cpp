#include "reference.h"

#include <cmath>

namespace nc::reference {

namespace {
double act_scalar(double x, Act act, double alpha) {
    switch (act) {
        case Act::sigmoid: return 1.0 / (1.0 + std::exp(-x));
        case Act::tanh: return std::tanh(x);
        case Act::relu: return x > 0 ? x : 0.0;
        case Act::leaky_relu: return x > 0 ? x : alpha * x;
        case Act::elu: return x > 0 ? x : alpha * std::expm1(x);
        case Act::gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
        default: return x;
    }
}
}  // namespace

// c (m, n) = act(op(a) (m, k) . op(b) (k, n) + bias)
template <typename T>
void gemm(const GemmCall<T>& g) {
    for (index_t i = 0; i < g.m; ++i) {
        for (index_t j = 0; j < g.n; ++j) {
            double s = g.bias ? double(g.bias[j]) : 0.0;
            const index_t ai = g.gather_i ? g.gather_i[i] : i;
            for (index_t p = 0; p < g.k; ++p) {
                const index_t ak = g.gather_k ? g.gather_k[p] : p;
                s += double(g.a[ai * g.rsa + ak * g.csa]) * double(g.b[p * g.rsb + j * g.csb]);
            }
            g.c[i * g.ldc + j] = T(g.act == Act::softmax ? s : act_scalar(s, g.act, g.alpha));
        }
    }
    if (g.act == Act::softmax) act_forward(g.c, g.c, g.m, g.n, Act::softmax, g.alpha);
}

// y (rows, cols) = act(x)
template <typename T>
void act_forward(T* y, const T* x, index_t rows, index_t cols, Act act, T alpha) {
    for (index_t r = 0; r < rows; ++r) {
        const T* xr = x + r * cols;
        T* yr = y + r * cols;
        if (act == Act::softmax) {
            double m = xr[0], s = 0.0;
            for (index_t j = 1; j < cols; ++j) m = std::fmax(m, double(xr[j]));
            for (index_t j = 0; j < cols; ++j) s += std::exp(double(xr[j]) - m);
            for (index_t j = 0; j < cols; ++j) yr[j] = T(std::exp(double(xr[j]) - m) / s);
        } else {
            for (index_t j = 0; j < cols; ++j) yr[j] = T(act_scalar(xr[j], act, alpha));
        }
    }
}

// dx (rows, cols) from the forward output y (GELU: its input) and dy
template <typename T>
void act_backward(T* dx, const T* y, const T* dy, index_t rows, index_t cols, Act act, T alpha) {
    for (index_t r = 0; r < rows; ++r) {
        const T* yr = y + r * cols;
        const T* gr = dy + r * cols;
        T* out = dx + r * cols;
        double dot = 0.0;
        if (act == Act::softmax)
            for (index_t j = 0; j < cols; ++j) dot += double(gr[j]) * double(yr[j]);
        for (index_t j = 0; j < cols; ++j) {
            const double yv = yr[j], gv = gr[j];
            double d;
            switch (act) {
                case Act::sigmoid: d = gv * yv * (1.0 - yv); break;
                case Act::tanh: d = gv * (1.0 - yv * yv); break;
                case Act::relu: d = yv > 0 ? gv : 0.0; break;
                case Act::leaky_relu: d = yv > 0 ? gv : gv * double(alpha); break;
                case Act::softmax: d = yv * (gv - dot); break;
                case Act::elu: d = yv > 0 ? gv : gv * (yv + double(alpha)); break;
                // GELU: yv is the forward's input x.
                case Act::gelu: d = gv * (0.5 * (1.0 + std::erf(yv / std::sqrt(2.0))) + yv * std::exp(-0.5 * yv * yv) / std::sqrt(2.0 * M_PI)); break;
                default: d = gv;
            }
            out[j] = T(d);
        }
    }
}

template void gemm<float>(const GemmCall<float>&);
template void gemm<double>(const GemmCall<double>&);
template void act_forward<float>(float*, const float*, index_t, index_t, Act, float);
template void act_forward<double>(double*, const double*, index_t, index_t, Act, double);
template void act_backward<float>(float*, const float*, const float*, index_t, index_t, Act, float);
template void act_backward<double>(double*, const double*, const double*, index_t, index_t, Act, double);

}  // namespace nc::reference
