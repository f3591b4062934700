// The stage kinds by name: a new kind adds its factory declaration and one line here.
#include <sstream>

#include "stage.h"

namespace nc {

template <typename T> std::unique_ptr<Stage<T>> make_dense_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_activation_stage(Act, const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_dropout_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_batchnorm_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_residual_stage(bool begin);
template <typename T> std::unique_ptr<Stage<T>> make_rnn_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_lstm_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_gru_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_conv2d_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_pool2d_stage(const LayerSpec&);
template <typename T> std::unique_ptr<Stage<T>> make_flatten_stage(const LayerSpec&);

std::string Shape::str() const {
    std::ostringstream s;
    s << '(';
    for (std::size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
    s << (dims.size() == 1 ? ",)" : ")");
    return s.str();
}

bool parse_activation(const std::string& name, Act& act) {
    static const std::pair<const char*, Act> activations[] = {
        {"identity", Act::identity}, {"sigmoid", Act::sigmoid}, {"tanh", Act::tanh}, {"relu", Act::relu},
        {"leaky_relu", Act::leaky_relu}, {"softmax", Act::softmax}, {"elu", Act::elu}, {"gelu", Act::gelu}};
    for (const auto& [n, a] : activations)
        if (name == n) { act = a; return true; }
    return false;
}

template <typename T>
std::unique_ptr<Stage<T>> make_stage(const LayerSpec& s) {
    Act act;
    if (parse_activation(s.kind, act)) return make_activation_stage<T>(act, s);
    if (s.kind == "dense") return make_dense_stage<T>(s);
    if (s.kind == "dropout") return make_dropout_stage<T>(s);
    if (s.kind == "batchnorm") return make_batchnorm_stage<T>(s);
    if (s.kind == "residual_begin") return make_residual_stage<T>(true);
    if (s.kind == "residual_end") return make_residual_stage<T>(false);
    if (s.kind == "rnn") return make_rnn_stage<T>(s);
    if (s.kind == "lstm") return make_lstm_stage<T>(s);
    if (s.kind == "gru") return make_gru_stage<T>(s);
    if (s.kind == "conv2d") return make_conv2d_stage<T>(s);
    if (s.kind == "maxpool2d" || s.kind == "avgpool2d" || s.kind == "globalavgpool2d") return make_pool2d_stage<T>(s);
    if (s.kind == "flatten") return make_flatten_stage<T>(s);
    throw std::invalid_argument("unknown layer kind '" + s.kind + "'");
}

template std::unique_ptr<Stage<float>> make_stage<float>(const LayerSpec&);
template std::unique_ptr<Stage<double>> make_stage<double>(const LayerSpec&);

}  // namespace nc
