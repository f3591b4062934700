// A lone activation (one not fused into the Dense or Conv2D before it), element-wise on any shape
// (softmax: over the last axis). Spec: kind = the activation's name, reals (alpha).
#include "stage.h"

namespace nc {
namespace {

template <typename T>
class ActivationStage final : public Stage<T> {
  public:
    ActivationStage(Act act, T alpha) : act_(act), alpha_(alpha) {}

    void build(TensorPlanner&) override { this->out = this->in; }

    void forward(const Pass<T>& p, const T* x, T* y, T*) override {
        p.kt->act_forward(y, x, p.rows * lead(), last(), act_, alpha_, p.threads);
    }
    void backward(const Pass<T>& p, const T* x, const T* y, T*, T*& g, T*&, bool) override {
        if (act_ == Act::gelu) p.kt->gelu_backward(g, x, g, p.rows * lead(), last(), p.threads);
        else p.kt->act_backward(g, y, g, p.rows * lead(), last(), act_, alpha_, p.threads);
    }

  private:
    // (rows, size) viewed as (rows * lead, last): softmax normalises over the last axis.
    index_t last() const { return this->in.dims.back(); }
    index_t lead() const { return this->in.size() / last(); }
    Act act_;
    T alpha_;
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_activation_stage(Act act, const LayerSpec& s) {
    return std::make_unique<ActivationStage<T>>(act, T(spec_real(s, 0)));
}
template std::unique_ptr<Stage<float>> make_activation_stage<float>(Act, const LayerSpec&);
template std::unique_ptr<Stage<double>> make_activation_stage<double>(Act, const LayerSpec&);

}  // namespace nc
