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
int Network<T>::ThreadTuner::preferred(int max_threads) const {
    if (samples[0] < 3 || samples[1] < 3) return max_threads;
    return best_recent(1) <= best_recent(0) ? max_threads : 1;
}

template <typename T>
Network<T>::Lock::Lock(Network& n) : net_(n) {
    if (n.busy_.exchange(true, std::memory_order_acquire))
        throw std::runtime_error("this model is already running in another thread; use one model per thread");
}

// Builds the stages in order, each from the shape the one before produces; an activation right after a
// stage that can fuse it (Dense) becomes that stage's epilogue. Then the buffer plan: every stage that
// does not alias its input gets a column range of acts_ (and of aux_ when it keeps a workspace).
template <typename T>
Network<T>::Network(const Shape& input, const std::vector<LayerSpec>& layers) {
    if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
    if (input.dims.empty()) throw std::invalid_argument("the input shape must have at least one dimension");
    for (index_t d : input.dims)
        if (d < 1) throw std::invalid_argument("every input dimension must be >= 1, got " + input.str());
    in_shape_ = input;
    in_features_ = input.size();
    n_layers_ = index_t(layers.size());
    TensorPlanner planner(sizeof(T));
    Shape shape = input;
    std::vector<index_t> open_blocks;   // stage indices of residual_begin markers not yet closed
    for (std::size_t li = 0; li < layers.size(); ++li) {
        const LayerSpec& l = layers[li];
        std::unique_ptr<Stage<T>> st = make_stage<T>(l);
        Act act;
        if (parse_activation(l.kind, act) && !stages_.empty() && stages_.back()->fuse_activation(act, T(spec_real(l, 0))))
            continue;   // an activation taken by the stage before it (Dense: the GEMM's epilogue)
        st->layer = index_t(li);
        st->index = index_t(stages_.size());
        st->in = shape;
        st->build(planner);
        shape = st->out;
        if (l.kind == "residual_begin") open_blocks.push_back(st->index);
        if (l.kind == "residual_end") {
            if (open_blocks.empty()) throw std::invalid_argument("residual block end without a beginning");
            Stage<T>& begin = *stages_[std::size_t(open_blocks.back())];
            if (begin.in != st->in)
                throw std::invalid_argument("a residual block must keep its input's shape " + begin.in.str() + ", got " +
                                            st->in.str());
            begin.set_partner(st->index);
            st->set_partner(begin.index);
            open_blocks.pop_back();
        }
        if (st->tracked_weight()) tracked_.push_back(st->index);
        stages_.push_back(std::move(st));
    }
    if (!open_blocks.empty()) throw std::invalid_argument("residual block without an end");
    out_shape_ = shape;
    out_features_ = shape.size();
    n_params_ = planner.n_params();
    n_state_ = planner.n_state();
    max_width_ = in_features_;
    out_col_.assign(stages_.size(), -1);
    aux_col_.assign(stages_.size(), -1);
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        const Stage<T>& st = *stages_[s];
        if (!st.aliases_input()) {
            out_col_[s] = act_width_;
            act_width_ = checked_add(act_width_, st.out.size(), "activations");
        }
        if (st.aux_per_sample() > 0) {
            aux_col_[s] = aux_width_;
            aux_width_ = checked_add(aux_width_, st.aux_per_sample(), "workspace");
        }
        max_width_ = st.out.size() > max_width_ ? st.out.size() : max_width_;
    }
    params_.resize(n_params_);
    grads_.resize(n_params_);
    state_.resize(n_state_);
    for (const auto& st : stages_) st->init_state(state_.data());
    outs_.assign(stages_.size(), nullptr);
    auxs_.assign(stages_.size(), nullptr);
    update_trainable_ranges();
}

template <typename T>
const Stage<T>* Network<T>::stage_of(index_t layer) const {
    for (const auto& s : stages_)
        if (s->layer == layer) return s.get();
    return nullptr;
}

template <typename T>
void Network<T>::set_trainable(index_t layer, bool trainable) {
    for (auto& s : stages_)
        if (s->layer == layer) s->trainable = trainable;
    update_trainable_ranges();
}

// The optimizer's ranges: each trainable stage's parameters (allocated contiguously), adjacent ones merged.
template <typename T>
void Network<T>::update_trainable_ranges() {
    trainable_ranges_.clear();
    grad_needed_below_.assign(stages_.size(), 0);
    bool seen = false;
    TensorPlanner pad(sizeof(T));
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        grad_needed_below_[s] = seen;
        const Stage<T>& st = *stages_[s];
        index_t begin = -1, end = -1;
        for (const TensorSlot& t : st.tensors) {
            if (t.state) continue;
            if (begin < 0) begin = t.offset;
            end = t.offset + pad.padded(t.size());
        }
        if (begin < 0 || !st.trainable) continue;
        seen = true;
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
        for (std::size_t s = 0; s < stages_.size(); ++s) {
            auxs_[s] = aux_col_[s] >= 0 ? aux_.data() + rows * aux_col_[s] : nullptr;
            stages_[s]->reserve(rows);
        }
    }
    const KernelTable<T>& kt = *kt_;
    const int threads = num_threads();
    if (ws_table_ != &kt || ws_rows_ < rows || ws_threads_ < threads) {
        index_t need = 0, temp = 0;
        for (const auto& s : stages_) {
            const index_t g = s->gemm_workspace(kt, rows, threads), t = s->temp_elems(rows);
            need = g > need ? g : need;
            temp = t > temp ? t : temp;
        }
        gemm_ws_.grow_to(need);
        temp_.grow_to(temp);
        ws_table_ = &kt;
        ws_rows_ = rows;
        ws_threads_ = threads;
    }
}

template <typename T>
Pass<T> Network<T>::make_pass(index_t rows, bool training) {
    Pass<T> p;
    p.kt = kt_;
    p.threads = threads();
    p.rows = rows;
    p.training = training;
    p.params = params_.data();
    p.grads = grads_.data();
    p.state = state_.data();
    p.gemm_ws = gemm_ws_.data();
    p.gemm_ws_elems = gemm_ws_.size();
    p.temp = temp_.data();
    p.temp_elems = temp_.size();
    p.outs = outs_.data();
    p.auxs = auxs_.data();
    return p;
}

template <typename T>
const T* Network<T>::run_forward(index_t rows, bool training) {
    Pass<T> p = make_pass(rows, training);
    p.key = training ? next_key(1) ^ rank_salt() : 0;
    if (training && syncing()) p.comm = &comm_;
    for (std::size_t s = 0; s < stages_.size(); ++s) {
        Stage<T>& st = *stages_[s];
        const T* in = s == 0 ? stage0_in_ : outs_[s - 1];
        p.in_rows = s == 0 ? stage0_rows_ : nullptr;
        T* out = out_col_[s] >= 0 ? acts_.data() + cap_rows_ * out_col_[s] : const_cast<T*>(in);
        st.forward(p, in, out, auxs_[s]);
        outs_[s] = out;
    }
    forward_rows_ = rows;
    forward_training_ = training;
    return outs_.back();
}

template <typename T>
const T* Network<T>::run_backward(index_t rows, bool want_dx) {
    Pass<T> p = make_pass(rows, forward_training_);
    if (forward_training_ && syncing()) p.comm = &comm_;
    T* g = grad_a_.data();
    T* spare = grad_b_.data();
    for (std::size_t s = stages_.size(); s-- > 0;) {
        Stage<T>& st = *stages_[s];
        const T* in = s == 0 ? stage0_in_ : outs_[s - 1];
        p.in_rows = s == 0 ? stage0_rows_ : nullptr;
        const bool stop_after = !want_dx && !grad_needed_below_[s];   // nothing below needs a gradient
        st.backward(p, in, outs_[s], auxs_[s], g, spare, !stop_after);
        if (stop_after) return nullptr;
    }
    return g;
}

// Inference gets the training loop's choice between one thread and all of them (bitwise the same
// results): calls of one row count are timed with both, then the faster runs, with a re-check every 64
// calls. Another row count starts the comparison over; a call that is not `timed` (predict's short last
// chunk) runs the current favourite.
template <typename T>
const T* Network<T>::run_forward_tuned(index_t rows, bool training, bool timed) {
    const int max_threads = num_threads();
    if (max_threads <= 1) return run_forward(rows, training);
    struct ResetChoice {
        int& choice;
        ~ResetChoice() { choice = 0; }
    } reset{thread_choice_};
    if (!timed) {
        thread_choice_ = infer_tuner_.preferred(max_threads);
        return run_forward(rows, training);
    }
    if (rows != infer_rows_) {
        infer_tuner_ = ThreadTuner{};
        infer_rows_ = rows;
    }
    thread_choice_ = infer_tuner_.pick(max_threads);
    const auto start = std::chrono::steady_clock::now();
    const T* y = run_forward(rows, training);
    infer_tuner_.record(infer_tuner_.option_of(thread_choice_),
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    return y;
}

template <typename T>
const T* Network<T>::forward(const T* x, index_t rows, bool training) {
    reserve(rows);
    std::memcpy(input_.data(), x, sizeof(T) * size_t(rows * in_features_));   // backward() reads it later
    stage0_in_ = input_.data();
    stage0_rows_ = nullptr;
    return run_forward_tuned(rows, training, true);
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
void Network<T>::predict(const InputSource<T>& x, index_t rows, index_t chunk, T* out) {
    // Inference sizes its buffers for about 256 MiB at most, beyond what is already reserved: a long
    // sequence keeps every step's gates (T = 1000, H = 128: 3 MB a sample), so a chunk of 1024 samples
    // would otherwise take gigabytes. Rows are independent in inference: the chunking changes no bits.
    const index_t per_sample = in_features_ + act_width_ + aux_width_ + 2 * max_width_ + out_features_;
    index_t affordable = index_t((std::size_t(256) << 20) / sizeof(T)) / (per_sample > 0 ? per_sample : 1);
    affordable = affordable > cap_rows_ ? affordable : cap_rows_;
    if (chunk > affordable) chunk = affordable > 0 ? affordable : 1;
    reserve(rows < chunk ? rows : chunk);
    for (index_t start = 0; start < rows; start += chunk) {
        const index_t n = rows - start < chunk ? rows - start : chunk;
        if (x.plain()) {
            stage0_in_ = static_cast<const T*>(x.data) + start * in_features_;   // read in place: no backward follows
        } else {
            gather_cast_rows(input_.data(), x, nullptr, start, n);
            stage0_in_ = input_.data();
        }
        stage0_rows_ = nullptr;
        const T* y = run_forward_tuned(n, false, n == chunk || start == 0);
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
    const bool distributed = comm_.active();
    const index_t batch_rows = req.batch_size < req.n ? req.batch_size : req.n;  // the most rows of a step
    const index_t global_batch = req.batch_size * req.split;
    const index_t n_steps = req.n_steps > 0 ? req.n_steps : (req.n + global_batch - 1) / global_batch;
    const index_t last = req.first_step + req.max_steps < n_steps ? req.first_step + req.max_steps : n_steps;
    const int max_threads = num_threads();
    // On every way out: all threads again, and no forward kept that points into the caller's data.
    struct ResetAfterTraining {
        Network& net;
        ~ResetAfterTraining() {
            net.in_step_ = false;
            net.thread_choice_ = 0;
            net.stage0_in_ = net.input_.data();
            net.stage0_rows_ = nullptr;
            net.forward_rows_ = 0;
        }
    } reset{*this};
    in_step_ = true;
    // A first Dense layer reads the batch straight from the data set through its products' gathers;
    // any other first stage (or input noise, which writes the batch) needs the batch copied out.
    const bool gather_in_gemm = stages_.front()->reads_gathered_input() && req.input_noise <= 0 && req.x.plain();
    for (index_t step = req.first_step; step < last; ++step) {
        thread_choice_ = tuner_.pick(max_threads);
        const auto step_start = clock::now();
        reserve(batch_rows);   // allocates only on the first step (or after a kernel-set switch)
        const KernelTable<T>& kt = *kt_;
        // The step's rows of `order`; with split ranks, this rank's even share of them (the first ranks
        // take one more when they do not divide; a rank may have none in a small last step).
        index_t begin = step * global_batch;
        const index_t step_rows = req.n - begin < global_batch ? req.n - begin : global_batch;
        index_t rows = step_rows > 0 ? step_rows : 0;
        if (req.split > 1) {
            const index_t base = rows / req.split, extra = rows % req.split, r = comm_.rank;
            begin += r * base + (r < extra ? r : extra);
            rows = base + (r < extra ? 1 : 0);
        }
        const std::int64_t* idx = req.order + begin;
        double value = 0.0;
        index_t correct = 0, bad_row = -1;
        if (rows > 0) {
            if (gather_in_gemm) {
                stage0_in_ = static_cast<const T*>(req.x.data);
                stage0_rows_ = idx;
            } else {
                if (req.x.plain()) kt.gather_rows(input_.data(), static_cast<const T*>(req.x.data), idx, rows, in_features_);
                else gather_cast_rows(input_.data(), req.x, idx, 0, rows);
                if (req.input_noise > 0)
                    kt.gaussian_noise(input_.data(), rows, in_features_, req.input_noise, next_key(2) ^ rank_salt());
                stage0_in_ = input_.data();
                stage0_rows_ = nullptr;
            }
            if (req.y_labels) {
                for (index_t i = 0; i < rows; ++i) {
                    std::int64_t label = req.y_labels[idx[i]];
                    if (label < 0 || label >= out_features_) {
                        if (!distributed) {
                            prog.bad_label_row = idx[i];
                            return prog;
                        }
                        bad_row = bad_row < 0 ? idx[i] : bad_row;   // reported with the status: every rank stops
                        label = 0;
                    }
                    labels_.data()[i] = label;
                }
            } else {
                kt.gather_rows(targets_.data(), req.y_values, idx, rows, out_features_);
            }
            const T* out = run_forward(rows, true);
            value = kt.loss(grad_a_.data(), out, targets_.data(), labels_.data(), rows, out_features_, req.loss);
            correct = count_correct(out, rows, req.loss);
        } else {
            idle_forward();
        }
        index_t total_rows = rows;
        if (distributed) {   // one small sum: the global batch's loss, size and faults; the mean gradient
            if (!exchange_status(prog, rows, value, correct, bad_row, total_rows)) return prog;
            if (rows > 0 && rows != total_rows)   // weights rows of the global batch: its mean loss
                kt.scale(grad_a_.data(), rows * out_features_, double(rows) / double(total_rows));
        }
        if (!std::isfinite(value)) {
            prog.nonfinite = true;
            prog.bad_loss = value;
            return prog;
        }
        prog.correct += correct;
        prog.rows += total_rows;
        if (rows > 0) run_backward(rows, false);
        else idle_backward();
        if (distributed) sum_gradients();
        if (req.grad_norm_sums)
            for (std::size_t i = 0; i < tracked_.size(); ++i) {
                const Stage<T>& st = *stages_[std::size_t(tracked_[i])];
                const TensorSlot& w = *st.tracked_weight();
                if (st.trainable) req.grad_norm_sums[i] += std::sqrt(kt.sum_squares(grads_.data() + w.offset, w.size()));
            }
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
