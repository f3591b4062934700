#include "network.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "../dispatch.h"

namespace nc {

template <typename T>
Network<T>::Lock::Lock(Network& n) : net_(n) {
    if (n.busy_.exchange(true, std::memory_order_acquire))
        throw std::runtime_error("this model is already running in another thread; use one model per thread");
}

template <typename T>
Network<T>::Network(const std::vector<LayerSpec>& layers) {
    if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
    // The first Dense fixes the input width (activations before it keep their input's width).
    index_t width = -1;
    for (const LayerSpec& l : layers)
        if (l.kind == LayerKind::dense) { width = l.in; break; }
    if (width == -1) throw std::invalid_argument("a network needs at least one Dense layer");
    in_features_ = width;
    for (const LayerSpec& l : layers) {
        ParamSlot slot;
        if (l.kind == LayerKind::dense) {
            if (l.in < 1 || l.out < 1) throw std::invalid_argument("Dense sizes must be >= 1");
            if (width != l.in) throw std::invalid_argument("Dense input size does not match the previous layer");
            slot.in = l.in;
            slot.out = l.out;
            // Each tensor starts on a 64-byte boundary so the NumPy views are aligned.
            const index_t align = 64 / sizeof(T);
            slot.weight = n_params_;
            n_params_ = checked_add(n_params_, (checked_mul(l.in, l.out, "Dense weight") + align - 1) / align * align, "parameters");
            if (l.bias) {
                slot.bias = n_params_;
                n_params_ = checked_add(n_params_, (l.out + align - 1) / align * align, "parameters");
            }
            stages_.push_back({true, l.in, l.out, slot.weight, slot.bias, Act::identity, T(0), 0});
            width = l.out;
        } else {
            // An activation right after a Dense becomes that Dense's epilogue.
            if (!stages_.empty() && stages_.back().dense && stages_.back().act == Act::identity) {
                stages_.back().act = l.act;
                stages_.back().alpha = T(l.alpha);
            } else {
                stages_.push_back({false, width, width, -1, -1, l.act, T(l.alpha), 0});
            }
        }
        slots_.push_back(slot);
    }
    out_features_ = width;
    max_width_ = in_features_;
    for (Stage& s : stages_) {
        s.act_offset = act_width_;
        act_width_ = checked_add(act_width_, s.out, "activations");
        max_width_ = s.out > max_width_ ? s.out : max_width_;
    }
    params_.resize(n_params_);
    grads_.resize(n_params_);
}

template <typename T>
void Network<T>::reserve(index_t rows) {
    if (rows > cap_rows_) {
        // Stage outputs are laid out by capacity; growing discards the kept forward.
        input_.resize(checked_mul(rows, in_features_, "input"));
        acts_.resize(checked_mul(rows, act_width_, "activations"));
        grad_a_.resize(checked_mul(rows, max_width_, "gradients"));
        grad_b_.resize(checked_mul(rows, max_width_, "gradients"));
        targets_.resize(checked_mul(rows, out_features_, "targets"));
        labels_.resize(rows);
        cap_rows_ = rows;
        forward_rows_ = 0;
    }
    const KernelTable<T>& kt = kernels<T>();
    if (ws_table_ != &kt || ws_rows_ < rows) {
        index_t need = 0;
        for (const Stage& s : stages_) {
            if (!s.dense) continue;
            const index_t forms[3] = {kt.gemm_workspace_elems(rows, s.out, s.in),   // Y = X W
                                      kt.gemm_workspace_elems(s.in, s.out, rows),   // dW = X^T dY
                                      kt.gemm_workspace_elems(rows, s.in, s.out)};  // dX = dY W^T
            for (index_t f : forms) need = f > need ? f : need;
        }
        gemm_ws_.grow_to(need);
        ws_table_ = &kt;
        ws_rows_ = rows;
    }
}

template <typename T>
const T* Network<T>::run_forward(index_t rows) {
    const KernelTable<T>& kt = kernels<T>();
    const int threads = num_threads();
    const T* in = input_.data();
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        const Stage& st = stages_[s];
        T* out = stage_output(s);
        if (st.dense) {
            const Act epilogue = st.act == Act::softmax ? Act::identity : st.act;
            GemmCall<T> g{rows, st.out, st.in, in, st.in, 1, params_.data() + st.weight, st.out, 1,
                          out, st.out, st.bias >= 0 ? params_.data() + st.bias : nullptr, epilogue, st.alpha};
            kt.gemm(g, gemm_ws_.data(), gemm_ws_.size(), threads);
            if (st.act == Act::softmax) kt.act_forward(out, out, rows, st.out, Act::softmax, st.alpha, threads);
        } else {
            kt.act_forward(out, in, rows, st.out, st.act, st.alpha, threads);
        }
        in = out;
    }
    forward_rows_ = rows;
    return in;
}

template <typename T>
const T* Network<T>::run_backward(index_t rows, bool want_dx) {
    const KernelTable<T>& kt = kernels<T>();
    const int threads = num_threads();
    T* g = grad_a_.data();
    T* spare = grad_b_.data();
    for (std::size_t s = stages_.size(); s-- > 0;) {
        const Stage& st = stages_[s];
        if (st.act != Act::identity) kt.act_backward(g, stage_output(s), g, rows, st.out, st.act, st.alpha, threads);
        if (!st.dense) continue;
        const T* in = s == 0 ? input_.data() : stage_output(s - 1);
        if (st.bias >= 0) kt.bias_grad(grads_.data() + st.bias, g, rows, st.out, threads);
        GemmCall<T> dw{st.in, st.out, rows, in, 1, st.in, g, st.out, 1, grads_.data() + st.weight, st.out,
                       nullptr, Act::identity, T(0)};
        kt.gemm(dw, gemm_ws_.data(), gemm_ws_.size(), threads);
        if (s == 0 && !want_dx) return nullptr;
        GemmCall<T> dx{rows, st.in, st.out, g, st.out, 1, params_.data() + st.weight, 1, st.out, spare, st.in,
                       nullptr, Act::identity, T(0)};
        kt.gemm(dx, gemm_ws_.data(), gemm_ws_.size(), threads);
        std::swap(g, spare);
    }
    return g;
}

template <typename T>
const T* Network<T>::forward(const T* x, index_t rows) {
    reserve(rows);
    std::memcpy(input_.data(), x, sizeof(T) * size_t(rows * in_features_));
    return run_forward(rows);
}

template <typename T>
const T* Network<T>::backward(const T* dy) {
    const index_t rows = forward_rows_;
    if (rows == 0) throw std::logic_error("backward() needs a forward() first");
    reserve(rows);  // only re-sizes the GEMM workspace if the kernel set changed
    std::memcpy(grad_a_.data(), dy, sizeof(T) * size_t(rows * out_features_));
    return run_backward(rows, true);
}

template <typename T>
void Network<T>::predict(const T* x, index_t rows, index_t chunk, T* out) {
    reserve(rows < chunk ? rows : chunk);
    for (index_t start = 0; start < rows; start += chunk) {
        const index_t n = rows - start < chunk ? rows - start : chunk;
        std::memcpy(input_.data(), x + start * in_features_, sizeof(T) * size_t(n * in_features_));
        const T* y = run_forward(n);
        std::memcpy(out + start * out_features_, y, sizeof(T) * size_t(n * out_features_));
    }
    forward_rows_ = 0;
}

template <typename T>
void Network<T>::zero_grad() {
    std::memset(grads_.data(), 0, sizeof(T) * size_t(n_params_));
}

template <typename T>
void Network<T>::sgd_step(const SgdParams& p, T* velocity) {
    kernels<T>().sgd_step(params_.data(), grads_.data(), velocity, n_params_, p, num_threads());
}

// Correct predictions in a batch for the classification losses (argmax / threshold), else 0.
template <typename T>
index_t Network<T>::count_correct(const T* out, index_t rows, const TrainRequest<T>& req) const {
    index_t correct = 0;
    const index_t cols = out_features_;
    if (req.loss == LossKind::cross_entropy) {
        for (index_t r = 0; r < rows; ++r) {
            const T* z = out + r * cols;
            index_t best = 0;
            for (index_t j = 1; j < cols; ++j) best = z[j] > z[best] ? j : best;
            correct += best == labels_.data()[r];
        }
    } else if (req.loss == LossKind::bce || req.loss == LossKind::bce_with_logits) {
        const T threshold = req.loss == LossKind::bce ? T(0.5) : T(0);
        for (index_t i = 0; i < rows * cols; ++i) correct += (out[i] >= threshold) == (targets_.data()[i] >= T(0.5));
    }
    return correct;
}

template <typename T>
TrainProgress Network<T>::train(const TrainRequest<T>& req) {
    using clock = std::chrono::steady_clock;
    const auto start_time = clock::now();
    TrainProgress prog;
    prog.loss_sum = req.loss_sum;
    reserve(req.batch_size < req.n ? req.batch_size : req.n);  // buffers for the rows that exist
    const KernelTable<T>& kt = kernels<T>();
    const int threads = num_threads();
    const index_t n_steps = (req.n + req.batch_size - 1) / req.batch_size;
    const index_t last = req.first_step + req.max_steps < n_steps ? req.first_step + req.max_steps : n_steps;
    for (index_t step = req.first_step; step < last; ++step) {
        const index_t begin = step * req.batch_size;
        const index_t rows = req.n - begin < req.batch_size ? req.n - begin : req.batch_size;
        const std::int64_t* idx = req.order + begin;
        kt.gather_rows(input_.data(), req.x, idx, rows, in_features_);
        if (req.y_labels) {
            for (index_t i = 0; i < rows; ++i) {
                const std::int64_t label = req.y_labels[idx[i]];
                if (label < 0 || label >= out_features_) {
                    prog.bad_label_row = idx[i];
                    return prog;
                }
                labels_.data()[i] = label;
            }
        } else {
            kt.gather_rows(targets_.data(), req.y_values, idx, rows, out_features_);
        }
        const T* out = run_forward(rows);
        const double value = kt.loss(grad_a_.data(), out, targets_.data(), labels_.data(), rows, out_features_, req.loss);
        if (!std::isfinite(value)) {
            prog.nonfinite = true;
            prog.bad_loss = value;
            return prog;
        }
        prog.correct += count_correct(out, rows, req);
        run_backward(rows, false);
        kt.sgd_step(params_.data(), grads_.data(), req.velocity, n_params_, req.sgd, threads);
        prog.steps += 1;
        prog.loss_sum += value;
        if (std::chrono::duration<double>(clock::now() - start_time).count() > req.time_budget_s) break;
    }
    return prog;
}

template class Network<float>;
template class Network<double>;

}  // namespace nc
