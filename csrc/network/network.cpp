#include "network.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../dispatch.h"

namespace nc {

namespace {
std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}
// Each tensor starts on a 64-byte boundary so the NumPy views are aligned.
index_t padded(index_t n, std::size_t elem) {
    const index_t align = index_t(64 / elem);
    return checked_add(n, align - 1, "parameters") / align * align;
}
}  // namespace

template <typename T>
int Network<T>::threads() const { return thread_choice_ > 0 ? thread_choice_ : num_threads(); }

// Both options are tried until each has a few timed steps; then the one with the faster recent step runs,
// with one step of the other every 64 steps. The minimum of the last few steps is the estimate: noise
// (another process taking a core for a while) only ever slows a step down, so one unlucky step cannot
// exclude an option, while a lasting change of load shows within a few steps.
template <typename T>
int Network<T>::ThreadTuner::pick(int max_threads) {
    if (max_threads <= 1) return 1;
    const index_t s = step++;
    int option;
    if (samples[0] < 3 || samples[1] < 3) option = int(s % 2 == 0);
    else {
        const int best = best_recent(1) <= best_recent(0) ? 1 : 0;
        option = s % 64 == 0 ? 1 - best : best;
    }
    return option == 1 ? max_threads : 1;
}

template <typename T>
double Network<T>::ThreadTuner::best_recent(int option) const {
    const index_t n = samples[option] < kWindow ? samples[option] : kWindow;
    double best = recent_s[option][0];
    for (index_t i = 1; i < n; ++i) best = recent_s[option][i] < best ? recent_s[option][i] : best;
    return best;
}

template <typename T>
void Network<T>::ThreadTuner::record(int option, double seconds) {
    if (step <= 2) return;   // warm-up steps allocate, fault in pages and start the thread pool
    recent_s[option][samples[option] % kWindow] = seconds;
    samples[option] += 1;
}

template <typename T>
Network<T>::Lock::Lock(Network& n) : net_(n) {
    if (n.busy_.exchange(true, std::memory_order_acquire))
        throw std::runtime_error("this model is already running in another thread; use one model per thread");
}

template <typename T>
Network<T>::Network(const std::vector<LayerSpec>& layers) {
    if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
    // The first Dense fixes the input width (layers before it keep their input's width).
    index_t width = -1;
    for (const LayerSpec& l : layers)
        if (l.kind == LayerKind::dense) { width = l.in; break; }
    if (width == -1) throw std::invalid_argument("a network needs at least one Dense layer");
    in_features_ = width;
    std::vector<index_t> open_blocks;   // stage indices of residual_begin markers not yet closed
    for (std::size_t li = 0; li < layers.size(); ++li) {
        const LayerSpec& l = layers[li];
        ParamSlot slot;
        Stage st{};
        st.kind = l.kind;
        st.layer = index_t(li);
        st.in = st.out = width;
        switch (l.kind) {
            case LayerKind::dense:
                if (l.in < 1 || l.out < 1) throw std::invalid_argument("Dense sizes must be >= 1");
                if (width != l.in) throw std::invalid_argument("Dense input size does not match the previous layer");
                st.in = l.in;
                st.out = l.out;
                st.weight = slot.weight = n_params_;
                n_params_ = checked_add(n_params_, padded(checked_mul(l.in, l.out, "Dense weight"), sizeof(T)), "parameters");
                if (l.bias) {
                    st.bias = slot.bias = n_params_;
                    n_params_ = checked_add(n_params_, padded(l.out, sizeof(T)), "parameters");
                }
                st.dense_ordinal = n_dense_++;
                slot.in = l.in;
                slot.out = l.out;
                break;
            case LayerKind::activation:
                // An activation right after a Dense becomes that Dense's epilogue.
                if (!stages_.empty() && stages_.back().kind == LayerKind::dense && stages_.back().act == Act::identity) {
                    stages_.back().act = l.act;
                    stages_.back().alpha = T(l.alpha);
                    slots_.push_back(slot);
                    continue;
                }
                st.act = l.act;
                st.alpha = T(l.alpha);
                break;
            case LayerKind::dropout:
                st.p = l.p;
                break;
            case LayerKind::batchnorm:
                if (l.out != width) throw std::invalid_argument("BatchNorm features do not match the previous layer");
                st.weight = slot.weight = n_params_;
                n_params_ = checked_add(n_params_, padded(width, sizeof(T)), "parameters");
                st.bias = slot.bias = n_params_;
                n_params_ = checked_add(n_params_, padded(width, sizeof(T)), "parameters");
                st.state = slot.state = n_state_;
                n_state_ = checked_add(n_state_, padded(checked_mul(2, width, "BatchNorm"), sizeof(T)), "state");
                st.momentum = l.momentum;
                st.eps = l.eps;
                slot.in = slot.out = width;
                break;
            case LayerKind::residual_begin:
                open_blocks.push_back(index_t(stages_.size()));
                break;
            case LayerKind::residual_end:
                if (open_blocks.empty()) throw std::invalid_argument("residual block end without a beginning");
                st.partner = open_blocks.back();
                if (stages_[std::size_t(st.partner)].in != width)
                    throw std::invalid_argument("a residual block must keep its width");
                stages_[std::size_t(st.partner)].partner = index_t(stages_.size());
                open_blocks.pop_back();
                break;
        }
        width = st.out;
        stages_.push_back(st);
        slots_.push_back(slot);
    }
    if (!open_blocks.empty()) throw std::invalid_argument("residual block without an end");
    out_features_ = width;
    max_width_ = in_features_;
    index_t scratch = 0;
    for (Stage& s : stages_) {
        if (s.kind != LayerKind::residual_begin) {
            s.out_col = act_width_;
            act_width_ = checked_add(act_width_, s.out, "activations");
        }
        const bool has_aux = (s.kind == LayerKind::dense && s.act == Act::gelu) || s.kind == LayerKind::dropout ||
                             s.kind == LayerKind::batchnorm || s.kind == LayerKind::residual_end;
        if (has_aux) {
            s.aux_col = aux_width_;
            aux_width_ = checked_add(aux_width_, s.out, "workspace");
        }
        if (s.kind == LayerKind::batchnorm) {
            s.cols_off = scratch;
            scratch = checked_add(scratch, checked_mul(4, s.out, "BatchNorm"), "workspace");
        }
        max_width_ = s.out > max_width_ ? s.out : max_width_;
    }
    params_.resize(n_params_);
    grads_.resize(n_params_);
    state_.resize(n_state_);
    col_scratch_.resize(scratch);
    for (const Stage& s : stages_)   // running variance starts at 1, as in torch
        if (s.kind == LayerKind::batchnorm)
            for (index_t c = 0; c < s.out; ++c) state_.data()[s.state + s.out + c] = T(1);
    outs_.assign(stages_.size(), nullptr);
    update_trainable_ranges();
}

template <typename T>
void Network<T>::set_trainable(index_t layer, bool trainable) {
    for (Stage& s : stages_)
        if (s.layer == layer) s.trainable = trainable;
    update_trainable_ranges();
}

template <typename T>
void Network<T>::update_trainable_ranges() {
    trainable_ranges_.clear();
    grad_needed_below_.assign(stages_.size(), 0);
    bool seen = false;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        grad_needed_below_[s] = seen;
        const Stage& st = stages_[s];
        if (st.weight < 0 || !st.trainable) continue;
        seen = true;
        const index_t begin = st.weight;
        const index_t end = st.bias >= 0 ? st.bias + padded(st.out, sizeof(T))
                                         : st.weight + padded(st.in * st.out, sizeof(T));
        if (!trainable_ranges_.empty() && trainable_ranges_.back().first + trainable_ranges_.back().second == begin)
            trainable_ranges_.back().second += end - begin;
        else
            trainable_ranges_.emplace_back(begin, end - begin);
    }
}

template <typename T>
std::uint64_t Network<T>::next_key(std::uint64_t stream) {
    return splitmix64(splitmix64(seed_ ^ (stream * 0x632be59bd9b4e019ULL)) + draws_++);
}

// Pins the kernel table for the work that follows (tests may switch tables from another thread: a step
// must be computed, and its workspace sized, by one table) and sizes the workspaces for `rows`.
template <typename T>
void Network<T>::reserve(index_t rows) {
    kt_ = &kernels<T>();
    if (rows > cap_rows_) {
        // Stage outputs are laid out by capacity; growing discards the kept forward.
        input_.resize(checked_mul(rows, in_features_, "input"));
        acts_.resize(checked_mul(rows, act_width_, "activations"));
        aux_.resize(checked_mul(rows, aux_width_, "workspace"));
        grad_a_.resize(checked_mul(rows, max_width_, "gradients"));
        grad_b_.resize(checked_mul(rows, max_width_, "gradients"));
        targets_.resize(checked_mul(rows, out_features_, "targets"));
        labels_.resize(rows);
        cap_rows_ = rows;
        forward_rows_ = 0;
    }
    const KernelTable<T>& kt = *kt_;
    const int threads = num_threads();
    if (ws_table_ != &kt || ws_rows_ < rows || ws_threads_ < threads) {
        index_t need = 0;
        for (const Stage& s : stages_) {
            if (s.kind != LayerKind::dense) continue;
            const index_t forms[3] = {kt.gemm_workspace_elems(rows, s.out, s.in, threads),   // Y = X W
                                      kt.gemm_workspace_elems(s.in, s.out, rows, threads),   // dW = X^T dY
                                      kt.gemm_workspace_elems(rows, s.in, s.out, threads)};  // dX = dY W^T
            for (index_t f : forms) need = f > need ? f : need;
        }
        gemm_ws_.grow_to(need);
        ws_table_ = &kt;
        ws_rows_ = rows;
        ws_threads_ = threads;
    }
}

template <typename T>
const T* Network<T>::run_forward(index_t rows, bool training) {
    const KernelTable<T>& kt = *kt_;
    const int nt = threads();
    const std::uint64_t key = training ? next_key(1) : 0;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        const Stage& st = stages_[s];
        const T* in = s == 0 ? stage0_in_ : outs_[s - 1];
        T* out = st.out_col >= 0 ? acts_.data() + cap_rows_ * st.out_col : nullptr;
        T* aux = st.aux_col >= 0 ? aux_.data() + cap_rows_ * st.aux_col : nullptr;
        const index_t n = rows * st.out;
        switch (st.kind) {
            case LayerKind::dense: {
                // GELU keeps its input for backward; softmax is row-wise: both run after the product.
                const bool after = st.act == Act::softmax || st.act == Act::gelu;
                T* z = st.act == Act::gelu ? aux : out;
                GemmCall<T> g{rows, st.out, st.in, in, st.in, 1, params_.data() + st.weight, st.out, 1, z, st.out,
                              st.bias >= 0 ? params_.data() + st.bias : nullptr, after ? Act::identity : st.act, st.alpha};
                if (s == 0) g.gather_i = stage0_rows_;
                kt.gemm(g, gemm_ws_.data(), gemm_ws_.size(), nt);
                if (after) kt.act_forward(out, z, rows, st.out, st.act, st.alpha, nt);
                break;
            }
            case LayerKind::activation:
                kt.act_forward(out, in, rows, st.out, st.act, st.alpha, nt);
                break;
            case LayerKind::dropout:
                if (training && st.p > 0) kt.dropout_forward(out, aux, in, rows, st.out, st.p, key ^ std::uint64_t(s) * 0x9e3779b97f4a7c15ULL, nt);
                else std::memcpy(out, in, sizeof(T) * size_t(n));
                break;
            case LayerKind::batchnorm: {
                T* cols = col_scratch_.data() + st.cols_off;
                T* st_buf = state_.data() + st.state;
                kt.batchnorm_forward(out, aux, cols, cols + st.out, st_buf, st_buf + st.out, in, params_.data() + st.weight,
                                     params_.data() + st.bias, rows, st.out, st.momentum, st.eps, training);
                break;
            }
            case LayerKind::residual_begin:
                out = const_cast<T*>(in);   // a marker: its output is the block's input
                break;
            case LayerKind::residual_end:
                kt.add(out, in, outs_[std::size_t(st.partner)], n);
                break;
        }
        outs_[s] = out;
    }
    forward_rows_ = rows;
    forward_training_ = training;
    return outs_.back();
}

template <typename T>
const T* Network<T>::run_backward(index_t rows, bool want_dx) {
    const KernelTable<T>& kt = *kt_;
    const int nt = threads();
    T* g = grad_a_.data();
    T* spare = grad_b_.data();
    for (std::size_t s = stages_.size(); s-- > 0;) {
        const Stage& st = stages_[s];
        const T* in = s == 0 ? stage0_in_ : outs_[s - 1];
        T* aux = st.aux_col >= 0 ? aux_.data() + cap_rows_ * st.aux_col : nullptr;
        const bool stop_after = !want_dx && !grad_needed_below_[s];   // nothing below needs a gradient
        switch (st.kind) {
            case LayerKind::dense: {
                if (st.act == Act::gelu) kt.gelu_backward(g, aux, g, rows, st.out, nt);
                else if (st.act != Act::identity) kt.act_backward(g, outs_[s], g, rows, st.out, st.act, st.alpha, nt);
                if (st.trainable) {
                    if (st.bias >= 0) kt.bias_grad(grads_.data() + st.bias, g, rows, st.out, nt);
                    GemmCall<T> dw{st.in, st.out, rows, in, 1, st.in, g, st.out, 1, grads_.data() + st.weight, st.out,
                                   nullptr, Act::identity, T(0)};
                    if (s == 0) dw.gather_k = stage0_rows_;   // op(A) = Xᵀ: its columns are the batch's rows
                    kt.gemm(dw, gemm_ws_.data(), gemm_ws_.size(), nt);
                }
                if (stop_after) return nullptr;
                GemmCall<T> dx{rows, st.in, st.out, g, st.out, 1, params_.data() + st.weight, 1, st.out, spare, st.in,
                               nullptr, Act::identity, T(0)};
                kt.gemm(dx, gemm_ws_.data(), gemm_ws_.size(), nt);
                std::swap(g, spare);
                break;
            }
            case LayerKind::activation:
                if (st.act == Act::gelu) kt.gelu_backward(g, in, g, rows, st.out, nt);
                else kt.act_backward(g, outs_[s], g, rows, st.out, st.act, st.alpha, nt);
                break;
            case LayerKind::dropout:
                if (forward_training_ && st.p > 0) kt.multiply(g, g, aux, rows * st.out);
                break;
            case LayerKind::batchnorm: {
                T* cols = col_scratch_.data() + st.cols_off;
                T* dgamma = st.trainable ? grads_.data() + st.weight : cols + 2 * st.out;
                T* dbeta = st.trainable ? grads_.data() + st.bias : cols + 3 * st.out;
                kt.batchnorm_backward(g, dgamma, dbeta, g, aux, cols + st.out, params_.data() + st.weight, rows, st.out,
                                      forward_training_);
                break;
            }
            case LayerKind::residual_end:
                std::memcpy(aux, g, sizeof(T) * size_t(rows * st.out));   // the skip path's gradient
                break;
            case LayerKind::residual_begin: {
                const Stage& end = stages_[std::size_t(st.partner)];
                kt.add(g, g, aux_.data() + cap_rows_ * end.aux_col, rows * st.out);
                break;
            }
        }
        if (stop_after) return nullptr;
    }
    return g;
}

template <typename T>
const T* Network<T>::forward(const T* x, index_t rows, bool training) {
    reserve(rows);
    std::memcpy(input_.data(), x, sizeof(T) * size_t(rows * in_features_));   // backward() reads it later
    stage0_in_ = input_.data();
    stage0_rows_ = nullptr;
    return run_forward(rows, training);
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
        stage0_in_ = x + start * in_features_;   // read in place: no backward follows
        stage0_rows_ = nullptr;
        const T* y = run_forward(n, false);
        std::memcpy(out + start * out_features_, y, sizeof(T) * size_t(n * out_features_));
    }
    stage0_in_ = input_.data();
    forward_rows_ = 0;
}

template <typename T>
void Network<T>::zero_grad() {
    std::memset(grads_.data(), 0, sizeof(T) * size_t(n_params_));
}

template <typename T>
double Network<T>::optimizer_step(OptimizerRef<T>& opt, double lr, bool want_norm) {
    const KernelTable<T>& kt = kernels<T>();   // no workspace involved
    double norm = 0.0;
    if (want_norm || opt.clip_norm > 0) {   // an extra pass over the gradients: only when asked
        double sq = 0.0;
        for (const auto& [off, len] : trainable_ranges_) sq += kt.sum_squares(grads_.data() + off, len);
        norm = std::sqrt(sq);
    }
    if (opt.clip_norm > 0 && norm > opt.clip_norm)   // torch.nn.utils.clip_grad_norm_'s rule
        for (const auto& [off, len] : trainable_ranges_) kt.scale(grads_.data() + off, len, opt.clip_norm / (norm + 1e-6));
    OptimParams p = opt.params;
    p.lr = lr;
    const std::int64_t t = *opt.step + 1;
    if (p.kind != OptimKind::sgd) {
        p.bias_correction1 = 1.0 - std::pow(p.beta1, double(t));
        p.bias_correction2 = 1.0 - std::pow(p.beta2, double(t));
    }
    const int nt = threads();
    for (const auto& [off, len] : trainable_ranges_)
        kt.optim_step(params_.data() + off, grads_.data() + off, opt.state1 ? opt.state1 + off : nullptr,
                      opt.state2 ? opt.state2 + off : nullptr, opt.decay ? opt.decay + off : nullptr, len, p, nt);
    *opt.step = t;
    return norm;
}

// Correct predictions in a batch for the classification losses (argmax / threshold), else 0.
template <typename T>
index_t Network<T>::count_correct(const T* out, index_t rows, LossKind loss) const {
    index_t correct = 0;
    const index_t cols = out_features_;
    if (loss == LossKind::cross_entropy) {
        for (index_t r = 0; r < rows; ++r) {
            const T* z = out + r * cols;
            index_t best = 0;
            for (index_t j = 1; j < cols; ++j) best = z[j] > z[best] ? j : best;
            correct += best == labels_.data()[r];
        }
    } else if (loss == LossKind::bce || loss == LossKind::bce_with_logits) {
        const T threshold = loss == LossKind::bce ? T(0.5) : T(0);
        for (index_t i = 0; i < rows * cols; ++i) correct += (out[i] >= threshold) == (targets_.data()[i] >= T(0.5));
    }
    return correct;
}

template <typename T>
TrainProgress Network<T>::train(TrainRequest<T>& req) {
    using clock = std::chrono::steady_clock;
    const auto start_time = clock::now();
    TrainProgress prog;
    prog.loss_sum = req.loss_sum;
    const index_t batch_rows = req.batch_size < req.n ? req.batch_size : req.n;  // the rows that exist
    const index_t n_steps = (req.n + req.batch_size - 1) / req.batch_size;
    const index_t last = req.first_step + req.max_steps < n_steps ? req.first_step + req.max_steps : n_steps;
    const int max_threads = num_threads();
    // On every way out: all threads again, and no forward kept that points into the caller's data.
    struct ResetAfterTraining {
        Network& net;
        ~ResetAfterTraining() {
            net.thread_choice_ = 0;
            net.stage0_in_ = net.input_.data();
            net.stage0_rows_ = nullptr;
            net.forward_rows_ = 0;
        }
    } reset{*this};
    // The first Dense layer reads the batch straight from the data set through its products' gathers;
    // any other first stage (or input noise, which writes the batch) needs the batch copied out.
    const bool gather_in_gemm = !stages_.empty() && stages_.front().kind == LayerKind::dense && req.input_noise <= 0;
    for (index_t step = req.first_step; step < last; ++step) {
        thread_choice_ = tuner_.pick(max_threads);
        const auto step_start = clock::now();
        reserve(batch_rows);   // allocates only on the first step (or after a kernel-set switch)
        const KernelTable<T>& kt = *kt_;
        const index_t begin = step * req.batch_size;
        const index_t rows = req.n - begin < req.batch_size ? req.n - begin : req.batch_size;
        const std::int64_t* idx = req.order + begin;
        if (gather_in_gemm) {
            stage0_in_ = req.x;
            stage0_rows_ = idx;
        } else {
            kt.gather_rows(input_.data(), req.x, idx, rows, in_features_);
            if (req.input_noise > 0) kt.gaussian_noise(input_.data(), rows, in_features_, req.input_noise, next_key(2));
            stage0_in_ = input_.data();
            stage0_rows_ = nullptr;
        }
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
        const T* out = run_forward(rows, true);
        const double value = kt.loss(grad_a_.data(), out, targets_.data(), labels_.data(), rows, out_features_, req.loss);
        if (!std::isfinite(value)) {
            prog.nonfinite = true;
            prog.bad_loss = value;
            return prog;
        }
        prog.correct += count_correct(out, rows, req.loss);
        run_backward(rows, false);
        if (req.grad_norm_sums)
            for (const Stage& st : stages_)
                if (st.kind == LayerKind::dense && st.trainable)
                    req.grad_norm_sums[st.dense_ordinal] += std::sqrt(kt.sum_squares(grads_.data() + st.weight, st.in * st.out));
        optimizer_step(req.opt, req.lr_per_step ? req.lr_per_step[step] : req.opt.params.lr, false);
        prog.steps += 1;
        prog.loss_sum += value;
        const auto now = clock::now();
        if (rows == req.batch_size)   // a smaller last batch would skew the timing
            tuner_.record(tuner_.option_of(thread_choice_), std::chrono::duration<double>(now - step_start).count());
        if (std::chrono::duration<double>(now - start_time).count() > req.time_budget_s) break;
    }
    return prog;
}

template class Network<float>;
template class Network<double>;

}  // namespace nc
