// Flatten: (h, w, c) -> (h * w * c,) in row-major (h, w, c) order. The activations are already one
// contiguous block per sample, so the output is the input itself. Spec: no arguments.
#include "stage.h"

namespace nc {
namespace {

template <typename T>
class FlattenStage final : public Stage<T> {
  public:
    void build(TensorPlanner&) override { this->out.dims = {this->in.size()}; }
    bool aliases_input() const override { return true; }
    void forward(const Pass<T>&, const T*, T*, T*) override {}
    void backward(const Pass<T>&, const T*, const T*, T*, T*&, T*&, bool) override {}
};

}  // namespace

template <typename T>
std::unique_ptr<Stage<T>> make_flatten_stage(const LayerSpec&) { return std::make_unique<FlattenStage<T>>(); }
template std::unique_ptr<Stage<float>> make_flatten_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_flatten_stage<double>(const LayerSpec&);

}  // namespace nc
