// Losses fused with their gradient, computed in double and stored as T (cross-entropy with the SIMD
// exp in double vectors). Reductions follow PyTorch's defaults: MSE, BCE and BCE-with-logits average
// over every element; cross-entropy averages over rows.
// Serial on purpose: (rows x cols) is the network's output, tiny next to the GEMMs, and a fixed order
// keeps the value identical for any thread count. Included inside an ISA namespace.
#pragma once
#include <math.h>
#include <stdint.h>

namespace loss_detail {

// n (<= lanes) values of T as double lanes, and back.
inline Vec<double> load_d(const double* p, int n) { return n == Vec<double>::lanes ? Vec<double>::load(p) : Vec<double>::load_partial(p, n); }
inline Vec<double> load_d(const float* p, int n) { return n == Vec<double>::lanes ? Vec<double>::load_floats(p) : Vec<double>::load_floats_partial(p, n); }
inline void store_d(Vec<double> v, double* p, int n) { if (n == Vec<double>::lanes) v.store(p); else v.store_partial(p, n); }
inline void store_d(Vec<double> v, float* p, int n) { if (n == Vec<double>::lanes) v.store_floats(p); else v.store_floats_partial(p, n); }

}  // namespace loss_detail

// grad (rows, cols) = d loss / d out; returns the loss. target is (rows, cols) for mse/bce*, labels (rows,)
// for cross-entropy (the caller has checked 0 <= label < cols).
template <typename T>
double loss(T* grad, const T* out, const T* target, const int64_t* labels, index_t rows, index_t cols,
            nc::LossKind kind) {
    const index_t n = rows * cols;
    double total = 0.0;
    switch (kind) {
        case nc::LossKind::mse: {
            const double scale = 2.0 / double(n);
            for (index_t i = 0; i < n; ++i) {
                const double d = double(out[i]) - double(target[i]);
                total += d * d;
                grad[i] = T(scale * d);
            }
            return total / double(n);
        }
        case nc::LossKind::bce: {
            // log clamped at -100 and the gradient's denominator at 1e-12, as torch.nn.BCELoss does.
            for (index_t i = 0; i < n; ++i) {
                const double p = out[i], t = target[i];
                const double lp = fmax(log(p), -100.0), l1p = fmax(log1p(-p), -100.0);
                total -= t * lp + (1.0 - t) * l1p;
                grad[i] = T((p - t) / fmax(p * (1.0 - p), 1e-12) / double(n));
            }
            return total / double(n);
        }
        case nc::LossKind::bce_with_logits: {
            // max(z, 0) - z t + log(1 + e^-|z|): finite for any finite logit.
            for (index_t i = 0; i < n; ++i) {
                const double z = out[i], t = target[i];
                const double e = exp(-fabs(z));
                total += fmax(z, 0.0) - z * t + log1p(e);
                const double sig = z >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
                grad[i] = T((sig - t) / double(n));
            }
            return total / double(n);
        }
        case nc::LossKind::cross_entropy: {
            // Per row, in double vectors whatever T is: s = sum exp(z - max z), then a second pass
            // writes grad = (exp(z - m) / s - onehot) / rows (recomputing exp beats a scratch row).
            // The loss uses m - z[label] first: exact, and log(s) survives huge logits.
            using namespace loss_detail;
            using V = Vec<double>;
            constexpr int L = V::lanes;
            const double inv_rows = 1.0 / double(rows);
            for (index_t r = 0; r < rows; ++r) {
                const T* z = out + r * cols;
                T* g = grad + r * cols;
                T m = z[0];
                for (index_t j = 1; j < cols; ++j) m = z[j] > m ? z[j] : m;
                const V mv = V::set1(double(m));
                V sv = V::zero();
                index_t j = 0;
                for (; j + L <= cols; j += L) sv = sv + vexp(load_d(z + j, L) - mv);
                double sum = hsum(sv);
                if (j < cols) {   // the padded lanes would add exp(-m): only the real ones count
                    alignas(64) double tail[L];
                    vexp(load_d(z + j, int(cols - j)) - mv).store(tail);
                    for (index_t q = 0; q < cols - j; ++q) sum += tail[q];
                }
                total += (double(m) - double(z[labels[r]])) + log(sum);
                const V scale = V::set1(inv_rows / sum);
                for (j = 0; j < cols; j += L) {
                    const int cnt = int(cols - j < L ? cols - j : L);
                    store_d(vexp(load_d(z + j, cnt) - mv) * scale, g + j, cnt);
                }
                g[labels[r]] = T((exp(double(z[labels[r]]) - double(m)) / sum - 1.0) * inv_rows);
            }
            return total * inv_rows;
        }
    }
    return 0.0;
}
