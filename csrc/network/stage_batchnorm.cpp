// Batch normalisation over the last axis: torch.nn.BatchNorm1d on (batch, features), BatchNorm2d on
// channels-last images (every pixel of every sample is a row of C values). Spec: ints (features),
// reals (momentum, eps). Tensors: weight (gamma), bias (beta); state running_mean, running_var.
#include "stage.h"
#include "sync_batchnorm.h"

namespace nc {
namespace {

template <typename T>
class BatchNormStage final : public Stage<T> {
  public:
    explicit BatchNormStage(const LayerSpec& s) : c_(spec_int(s, 0)), momentum_(spec_real(s, 0)), eps_(spec_real(s, 1)) {
        if (c_ < 1) throw std::invalid_argument("BatchNorm features must be >= 1");
    }

    void build(TensorPlanner& planner) override {
        if (this->in.dims.empty() || this->in.dims.back() != c_)
            throw std::invalid_argument("BatchNorm features do not match the previous layer");
        this->out = this->in;
        gamma_ = planner.param(this->tensors, "weight", {c_});
        beta_ = planner.param(this->tensors, "bias", {c_});
        mean_ = planner.state(this->tensors, "running_mean", {c_});
        var_ = planner.state(this->tensors, "running_var", {c_});
        cols_.resize(checked_mul(4, c_, "BatchNorm"));   // batch mean, invstd; frozen dgamma, dbeta
        sums_.resize(checked_add(checked_mul(2, c_, "BatchNorm"), 1, "BatchNorm"));   // the sums over ranks
    }
    void init_state(T* state) const override {
        for (index_t c = 0; c < c_; ++c) state[var_ + c] = T(1);   // as in torch
    }
    index_t aux_per_sample() const override { return this->in.size(); }

    void forward(const Pass<T>& p, const T* x, T* y, T* xhat) override {
        T* cols = cols_.data();
        if (p.comm && p.training)   // SyncBatchNorm: the global batch's statistics
            global_rows_ = sync_batchnorm_forward(*p.comm, y, xhat, cols, cols + c_, p.state + mean_, p.state + var_, x,
                                                  p.params + gamma_, p.params + beta_, p.rows * pixels(), c_, momentum_,
                                                  eps_, sums_.data());
        else
            p.kt->batchnorm_forward(y, xhat, cols, cols + c_, p.state + mean_, p.state + var_, x, p.params + gamma_,
                                    p.params + beta_, p.rows * pixels(), c_, momentum_, eps_, p.training);
    }
    void backward(const Pass<T>& p, const T*, const T*, T* xhat, T*& g, T*&, bool) override {
        T* cols = cols_.data();
        T* dgamma = this->trainable ? p.grads + gamma_ : cols + 2 * c_;
        T* dbeta = this->trainable ? p.grads + beta_ : cols + 3 * c_;
        if (p.comm && p.training)
            sync_batchnorm_backward(*p.comm, g, dgamma, dbeta, g, xhat, cols + c_, p.params + gamma_, p.rows * pixels(), c_,
                                    global_rows_, sums_.data());
        else
            p.kt->batchnorm_backward(g, dgamma, dbeta, g, xhat, cols + c_, p.params + gamma_, p.rows * pixels(), c_,
                                     p.training);
    }
    void idle_forward(const Pass<T>& p) override {   // no rows: only the sums (and the running statistics)
        T* cols = cols_.data();
        global_rows_ = sync_batchnorm_forward<T>(*p.comm, nullptr, nullptr, cols, cols + c_, p.state + mean_, p.state + var_,
                                                 nullptr, p.params + gamma_, p.params + beta_, 0, c_, momentum_, eps_,
                                                 sums_.data());
    }
    void idle_backward(const Pass<T>& p) override {
        T* cols = cols_.data();
        T* dgamma = this->trainable ? p.grads + gamma_ : cols + 2 * c_;
        T* dbeta = this->trainable ? p.grads + beta_ : cols + 3 * c_;
        sync_batchnorm_backward<T>(*p.comm, nullptr, dgamma, dbeta, nullptr, nullptr, cols + c_, p.params + gamma_, 0, c_,
                                   global_rows_, sums_.data());
    }

  private:
    index_t pixels() const { return this->in.size() / c_; }
    index_t c_;
    double momentum_, eps_;
    index_t gamma_ = -1, beta_ = -1, mean_ = -1, var_ = -1;
    AlignedBuffer<T> cols_;
    AlignedBuffer<T> sums_;
    index_t global_rows_ = 0;   // data-parallel: the global batch's rows of the step in progress
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_batchnorm_stage(const LayerSpec& s) { return std::make_unique<BatchNormStage<T>>(s); }
template std::unique_ptr<Stage<float>> make_batchnorm_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_batchnorm_stage<double>(const LayerSpec&);

}  // namespace nc
