// The one file that knows about Python: converts arrays, releases the GIL around every kernel call and
// turns C++ exceptions into ValueError/RuntimeError/MemoryError. The Python layer (python/neurocore)
// validates arguments with friendly messages first; the checks here guarantee nothing can crash.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "aligned_buffer.h"
#include "dispatch.h"
#include "network/network.h"
#include "reference.h"

namespace py = pybind11;
using nc::index_t;

namespace {

template <typename T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;
using Labels = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;

nc::Act parse_act(const std::string& name) {
    static const std::pair<const char*, nc::Act> names[] = {
        {"identity", nc::Act::identity}, {"sigmoid", nc::Act::sigmoid}, {"tanh", nc::Act::tanh},
        {"relu", nc::Act::relu},         {"leaky_relu", nc::Act::leaky_relu}, {"softmax", nc::Act::softmax},
        {"elu", nc::Act::elu},           {"gelu", nc::Act::gelu}};
    for (const auto& [n, a] : names)
        if (name == n) return a;
    throw py::value_error("unknown activation '" + name + "'; expected identity, sigmoid, tanh, relu, leaky_relu, softmax, elu or gelu");
}

nc::LossKind parse_loss(const std::string& name) {
    if (name == "mse") return nc::LossKind::mse;
    if (name == "bce") return nc::LossKind::bce;
    if (name == "bce_with_logits") return nc::LossKind::bce_with_logits;
    if (name == "cross_entropy") return nc::LossKind::cross_entropy;
    throw py::value_error("unknown loss '" + name + "'; expected mse, bce, bce_with_logits or cross_entropy");
}

void require_2d(const py::array& a, const char* what) {
    if (a.ndim() != 2) throw py::value_error(std::string(what) + " must be 2-D, got ndim=" + std::to_string(a.ndim()));
}

// x is (rows, *shape): the network's per-sample shape behind the batch axis.
void require_batch(const py::array& x, const nc::Shape& shape, const char* what) {
    bool ok = x.ndim() == py::ssize_t(shape.dims.size()) + 1;
    for (std::size_t i = 0; ok && i < shape.dims.size(); ++i) ok = x.shape(py::ssize_t(i) + 1) == shape.dims[i];
    if (ok) return;
    std::string want = "(batch";
    for (index_t d : shape.dims) want += ", " + std::to_string(d);
    throw py::value_error(std::string(what) + " must have shape " + want + ")");
}

template <typename T>
py::array_t<T> new_batch(index_t rows, const nc::Shape& shape) {
    std::vector<py::ssize_t> dims{py::ssize_t(rows)};
    for (index_t d : shape.dims) dims.push_back(py::ssize_t(d));
    return py::array_t<T>(dims);
}

template <typename T>
py::array_t<T> new_matrix(index_t rows, index_t cols) {
    return py::array_t<T>({py::ssize_t(rows), py::ssize_t(cols)});
}

// C = act(op(a) . op(b) + bias), through the active kernel table or the plain reference.
template <typename T>
py::array_t<T> gemm_entry(CArray<T> a, CArray<T> b, bool trans_a, bool trans_b, std::optional<CArray<T>> bias,
                          const std::string& activation, double alpha, bool reference) {
    require_2d(a, "a");
    require_2d(b, "b");
    const index_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
    const index_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
    if (k != kb) throw py::value_error("gemm: inner dimensions differ: " + std::to_string(k) + " vs " + std::to_string(kb));
    if (m < 1 || n < 1 || k < 1) throw py::value_error("gemm: every dimension must be >= 1");
    if (bias && (bias->ndim() != 1 || bias->shape(0) != n))
        throw py::value_error("gemm: bias must have shape (" + std::to_string(n) + ",)");
    const nc::Act act = parse_act(activation);
    auto c = new_matrix<T>(m, n);
    nc::GemmCall<T> g{m, n, k, a.data(), trans_a ? 1 : a.shape(1), trans_a ? a.shape(1) : 1,
                      b.data(), trans_b ? 1 : b.shape(1), trans_b ? b.shape(1) : 1,
                      c.mutable_data(), n, bias ? bias->data() : nullptr, act, T(alpha)};
    if (reference) {
        py::gil_scoped_release nogil;
        nc::reference::gemm(g);
        return c;
    }
    const nc::KernelTable<T>& kt = nc::kernels<T>();
    // The packing workspace is this Python thread's own and only grows (grown here, under the GIL):
    // a fresh allocation per call would page-fault megabytes on every call of a benchmark loop.
    const int threads = nc::num_threads();
    const index_t ws_elems = kt.gemm_workspace_elems(m, n, k, threads);
    thread_local nc::AlignedBuffer<T> ws;
    ws.grow_to(ws_elems);
    {
        py::gil_scoped_release nogil;
        g.act = act == nc::Act::softmax ? nc::Act::identity : act;
        kt.gemm(g, ws.data(), ws.size(), threads);
        if (act == nc::Act::softmax) kt.act_forward(g.c, g.c, m, n, act, T(alpha), nc::num_threads());
    }
    return c;
}

template <typename T>
py::array_t<T> act_forward_entry(const std::string& name, CArray<T> x, double alpha, bool reference) {
    require_2d(x, "x");
    const nc::Act act = parse_act(name);
    auto y = new_matrix<T>(x.shape(0), x.shape(1));
    py::gil_scoped_release nogil;
    if (reference) nc::reference::act_forward(y.mutable_data(), x.data(), x.shape(0), x.shape(1), act, T(alpha));
    else nc::kernels<T>().act_forward(y.mutable_data(), x.data(), x.shape(0), x.shape(1), act, T(alpha), nc::num_threads());
    return y;
}

template <typename T>
py::array_t<T> act_backward_entry(const std::string& name, CArray<T> y, CArray<T> dy, double alpha, bool reference) {
    require_2d(y, "y");
    if (dy.ndim() != 2 || dy.shape(0) != y.shape(0) || dy.shape(1) != y.shape(1))
        throw py::value_error("dy must have the shape of y");
    const nc::Act act = parse_act(name);
    auto dx = new_matrix<T>(y.shape(0), y.shape(1));
    py::gil_scoped_release nogil;
    // GELU's derivative is a function of its input: for "gelu", `y` is the forward's input x.
    if (reference) nc::reference::act_backward(dx.mutable_data(), y.data(), dy.data(), y.shape(0), y.shape(1), act, T(alpha));
    else if (act == nc::Act::gelu) nc::kernels<T>().gelu_backward(dx.mutable_data(), y.data(), dy.data(), y.shape(0), y.shape(1), nc::num_threads());
    else nc::kernels<T>().act_backward(dx.mutable_data(), y.data(), dy.data(), y.shape(0), y.shape(1), act, T(alpha), nc::num_threads());
    return dx;
}

// (value, d value / d out); target is (rows, cols) values, or (rows,) integer labels for cross-entropy.
template <typename T>
py::tuple loss_entry(const std::string& kind_name, CArray<T> out, py::array target) {
    require_2d(out, "output");
    const nc::LossKind kind = parse_loss(kind_name);
    const index_t rows = out.shape(0), cols = out.shape(1);
    if (rows < 1 || cols < 1) throw py::value_error("output must not be empty");
    auto grad = new_matrix<T>(rows, cols);
    double value;
    if (kind == nc::LossKind::cross_entropy) {
        Labels labels = Labels::ensure(target);
        if (!labels || labels.ndim() != 1 || labels.shape(0) != rows) throw py::value_error("labels must have shape (rows,)");
        for (index_t i = 0; i < rows; ++i)
            if (labels.data()[i] < 0 || labels.data()[i] >= cols) throw py::value_error("label out of range");
        py::gil_scoped_release nogil;
        value = nc::kernels<T>().loss(grad.mutable_data(), out.data(), nullptr, labels.data(), rows, cols, kind);
    } else {
        CArray<T> t = CArray<T>::ensure(target);
        if (!t || t.ndim() != 2 || t.shape(0) != rows || t.shape(1) != cols) throw py::value_error("target must have the output's shape");
        py::gil_scoped_release nogil;
        value = nc::kernels<T>().loss(grad.mutable_data(), out.data(), t.data(), nullptr, rows, cols, kind);
    }
    return py::make_tuple(value, grad);
}

// A data set read in place: a C-contiguous, aligned (rows, *shape) array of uint8/int16/float16/float32/float64
// (a np.memmap too), with an optional scale, or per-value (shift, divisor) arrays of the network's dtype
// (shape.size() values: one per feature, or per pixel and channel of an image).
// The arrays must outlive the call (the caller holds them).
template <typename T>
nc::InputSource<T> input_source(const py::array& x, const nc::Shape& shape, double scale, const std::optional<py::array>& shift,
                                const std::optional<py::array>& divisor, const char* what) {
    require_batch(x, shape, what);
    const index_t cols = shape.size();
    if (!(x.flags() & py::array::c_style) || reinterpret_cast<std::uintptr_t>(x.data()) % std::uintptr_t(x.itemsize()) != 0)
        throw py::value_error(std::string(what) + " must be C-contiguous and aligned");
    nc::InputSource<T> in;
    const py::dtype dt = x.dtype();
    if (dt.is(py::dtype::of<float>())) in.type = nc::InputType::float32;
    else if (dt.is(py::dtype::of<double>())) in.type = nc::InputType::float64;
    else if (dt.is(py::dtype::of<std::uint8_t>())) in.type = nc::InputType::uint8;
    else if (dt.is(py::dtype::of<std::int16_t>())) in.type = nc::InputType::int16;
    else if (dt.kind() == 'f' && dt.itemsize() == 2) in.type = nc::InputType::float16;
    else throw py::type_error(std::string(what) + " must be uint8, int16, float16, float32 or float64");
    in.data = x.data();
    in.cols = cols;
    in.scale = T(scale);
    if (shift.has_value() != divisor.has_value()) throw py::value_error("give both the mean and the std, or neither");
    if (shift) {
        for (const py::array* a : {&*shift, &*divisor})
            if (!py::isinstance<py::array_t<T>>(*a) || a->ndim() != 1 || a->shape(0) != cols || !(a->flags() & py::array::c_style))
                throw py::value_error("the mean and the std must be contiguous (cols,) arrays of the model's dtype");
        in.shift = static_cast<const T*>(shift->data());
        in.divisor = static_cast<const T*>(divisor->data());
    }
    return in;
}

template <typename T>
T* state_ptr(const py::dict& d, const char* key, index_t n) {
    if (!d.contains(key) || d[key].is_none()) return nullptr;
    py::object obj = d[key];
    if (!py::isinstance<py::array_t<T>>(obj)) throw py::type_error(std::string("optimizer ") + key + " has the wrong dtype");
    auto a = obj.cast<py::array_t<T>>();
    if (a.ndim() != 1 || a.shape(0) != n || !a.writeable() || !(a.flags() & py::array::c_style))
        throw py::value_error(std::string("optimizer ") + key + " must be a writable contiguous 1-D array of n_params elements");
    return a.mutable_data();
}

// The optimizer as a dict: kind, lr, momentum, weight_decay, nesterov, beta1, beta2, eps, clip_norm, step,
// state1, state2, decay (the arrays it owns; kept alive by the dict during the call).
template <typename T>
nc::OptimizerRef<T> optimizer_ref(const py::dict& d, index_t n_params) {
    nc::OptimizerRef<T> o;
    const std::string kind = d["kind"].cast<std::string>();
    o.params.kind = kind == "sgd" ? nc::OptimKind::sgd : kind == "adam" ? nc::OptimKind::adam
                  : kind == "adamw" ? nc::OptimKind::adamw
                  : throw py::value_error("unknown optimizer kind '" + kind + "'");
    o.params.lr = d["lr"].cast<double>();
    o.params.weight_decay = d["weight_decay"].cast<double>();
    if (o.params.kind == nc::OptimKind::sgd) {
        o.params.momentum = d["momentum"].cast<double>();
        o.params.nesterov = d["nesterov"].cast<bool>();
    } else {
        o.params.beta1 = d["beta1"].cast<double>();
        o.params.beta2 = d["beta2"].cast<double>();
        o.params.eps = d["eps"].cast<double>();
    }
    o.clip_norm = d["clip_norm"].cast<double>();
    auto counter = d["step"].cast<py::array_t<std::int64_t>>();
    if (counter.ndim() != 1 || counter.shape(0) != 1 || !counter.writeable())
        throw py::value_error("optimizer step counter must be a writable int64 array of one element");
    o.step = counter.mutable_data();
    o.state1 = state_ptr<T>(d, "state1", n_params);
    o.state2 = state_ptr<T>(d, "state2", n_params);
    o.decay = state_ptr<T>(d, "decay", n_params);
    const bool needs1 = o.params.kind != nc::OptimKind::sgd || o.params.momentum != 0.0;
    const bool needs2 = o.params.kind != nc::OptimKind::sgd;
    if ((needs1 && !o.state1) || (needs2 && !o.state2)) throw py::value_error("optimizer state arrays are missing");
    return o;
}

template <typename T>
void bind_network(py::module_& m, const char* name) {
    using Net = nc::Network<T>;
    py::class_<Net>(m, name)
        // input_shape: the per-sample shape; specs: (kind, ints, reals) per layer (stage.h's LayerSpec).
        .def(py::init([](const std::vector<index_t>& input_shape, const std::vector<py::tuple>& specs) {
            std::vector<nc::LayerSpec> layers;
            for (const py::tuple& t : specs) {
                if (t.size() != 3) throw py::value_error("a layer spec is (kind, ints, reals)");
                layers.push_back({t[0].cast<std::string>(), t[1].cast<std::vector<index_t>>(), t[2].cast<std::vector<double>>()});
            }
            try {
                return new Net(nc::Shape{input_shape}, layers);
            } catch (const std::invalid_argument& e) {
                throw py::value_error(e.what());
            }
        }))
        .def_property_readonly("in_features", &Net::in_features)
        .def_property_readonly("out_features", &Net::out_features)
        .def_property_readonly("input_shape", [](const Net& n) { return py::tuple(py::cast(n.input_shape().dims)); })
        .def_property_readonly("output_shape", [](const Net& n) { return py::tuple(py::cast(n.output_shape().dims)); })
        .def_property_readonly("n_params", &Net::n_params)
        .def_property_readonly("forward_rows", &Net::forward_rows)
        // Per layer: [(name, offset, shape, is_state), ...] of its tensors in the flat buffers, and the
        // per-sample output shape of its stage (None for an activation fused into the stage before).
        .def("layer_tensors", [](const Net& n) {
            py::list out;
            for (index_t i = 0; i < n.n_layers(); ++i) {
                const nc::Stage<T>* st = n.stage_of(i);
                py::list tensors;
                if (st)
                    for (const nc::TensorSlot& t : st->tensors)
                        tensors.append(py::make_tuple(t.name, t.offset, py::tuple(py::cast(t.shape)), t.state));
                out.append(py::make_tuple(tensors, st ? py::object(py::tuple(py::cast(st->out.dims))) : py::object(py::none())));
            }
            return out;
        })
        // Flat views of the network's own memory; the array keeps the network alive.
        .def("params_array", [](py::object self) {
            Net& n = self.cast<Net&>();
            return py::array_t<T>({py::ssize_t(n.n_params())}, {py::ssize_t(sizeof(T))}, n.params(), self);
        })
        .def("state_array", [](py::object self) {
            Net& n = self.cast<Net&>();
            return py::array_t<T>({py::ssize_t(n.n_state())}, {py::ssize_t(sizeof(T))}, n.state(), self);
        })
        .def_property_readonly("n_tracked", &Net::n_tracked)
        // Consistent copies of the parameters and state, taken under the model's lock (refused while
        // another thread trains), for save.
        .def("snapshot", [](Net& n) {
            typename Net::Lock lock(n);
            py::array_t<T> p(py::ssize_t(n.n_params())), st(py::ssize_t(n.n_state()));
            std::memcpy(p.mutable_data(), n.params(), sizeof(T) * size_t(n.n_params()));
            if (n.n_state() > 0) std::memcpy(st.mutable_data(), n.state(), sizeof(T) * size_t(n.n_state()));
            return py::make_tuple(p, st);
        })
        .def("set_trainable", [](Net& n, index_t layer, bool trainable) {
            if (layer < 0 || layer >= n.n_layers()) throw py::value_error("layer index out of range");
            typename Net::Lock lock(n);
            n.set_trainable(layer, trainable);
        })
        .def("set_seed", [](Net& n, std::uint64_t seed) {
            typename Net::Lock lock(n);
            n.set_seed(seed);
        })
        .def("grads_array", [](py::object self) {
            Net& n = self.cast<Net&>();
            return py::array_t<T>({py::ssize_t(n.n_params())}, {py::ssize_t(sizeof(T))}, n.grads(), self);
        })
        .def("forward", [](Net& n, CArray<T> x, bool training) {
            require_batch(x, n.input_shape(), "x");
            if (x.shape(0) < 1) throw py::value_error("x has the wrong shape");
            typename Net::Lock lock(n);
            auto y = new_batch<T>(x.shape(0), n.output_shape());
            {
                py::gil_scoped_release nogil;
                const T* out = n.forward(x.data(), x.shape(0), training);
                std::memcpy(y.mutable_data(), out, sizeof(T) * size_t(x.shape(0) * n.out_features()));
            }
            return y;
        })
        .def("backward", [](Net& n, CArray<T> dy) {
            require_batch(dy, n.output_shape(), "grad_output");
            if (!n.has_forward()) throw py::value_error("backward() needs a forward() first");
            if (dy.shape(0) != n.forward_rows()) throw py::value_error("grad_output has the wrong shape");
            typename Net::Lock lock(n);
            const index_t rows = n.forward_rows();
            auto dx = new_batch<T>(rows, n.input_shape());
            {
                py::gil_scoped_release nogil;
                const T* g = n.backward(dy.data());
                std::memcpy(dx.mutable_data(), g, sizeof(T) * size_t(rows * n.in_features()));
            }
            return dx;
        })
        .def("predict", [](Net& n, py::array x, index_t chunk, double scale, std::optional<py::array> shift,
                           std::optional<py::array> divisor) {
            const nc::InputSource<T> in = input_source<T>(x, n.input_shape(), scale, shift, divisor, "x");
            if (chunk < 1) throw py::value_error("batch_size must be >= 1");
            typename Net::Lock lock(n);
            auto y = new_batch<T>(x.shape(0), n.output_shape());
            if (x.shape(0) > 0) {
                py::gil_scoped_release nogil;
                n.predict(in, x.shape(0), chunk, y.mutable_data());
            }
            return y;
        }, py::arg("x"), py::arg("chunk"), py::arg("scale") = 1.0, py::arg("shift") = py::none(),
           py::arg("divisor") = py::none())
        // Data-parallel training: MPI_Allreduce's address and the handles, from mpi4py (None: off).
        .def("set_collective", [](Net& n, std::optional<py::tuple> t) {
            nc::Collective c;
            if (t) {
                if (t->size() != 9) throw py::value_error("set_collective takes 9 values");
                c.allreduce = reinterpret_cast<void*>((*t)[0].cast<std::uintptr_t>());
                c.handle_bytes = (*t)[1].cast<int>();
                c.comm = (*t)[2].cast<std::uint64_t>();
                c.op_sum = (*t)[3].cast<std::uint64_t>();
                c.type_float = (*t)[4].cast<std::uint64_t>();
                c.type_double = (*t)[5].cast<std::uint64_t>();
                c.in_place = (*t)[6].cast<std::uint64_t>();
                c.rank = (*t)[7].cast<int>();
                c.size = (*t)[8].cast<int>();
                if (!c.allreduce || (c.handle_bytes != 4 && c.handle_bytes != 8) || c.size < 1 || c.rank < 0 || c.rank >= c.size)
                    throw py::value_error("invalid collective");
            }
            typename Net::Lock lock(n);
            n.set_collective(c);
        })
        .def("sync_point", [](Net& n, py::array_t<double, py::array::c_style> status) {
            if (status.ndim() != 1 || status.shape(0) != nc::kStatusSize || !status.writeable())
                throw py::value_error("status must be a writable float64 array of " + std::to_string(nc::kStatusSize));
            if (!n.collective().active()) throw py::value_error("sync_point needs a collective");
            typename Net::Lock lock(n);
            py::gil_scoped_release nogil;
            n.sync_point(status.mutable_data());
        })
        .def("zero_grad", [](Net& n) {
            typename Net::Lock lock(n);
            n.zero_grad();
        })
        .def("optimizer_step", [](Net& n, const py::dict& opt, double lr) {
            nc::OptimizerRef<T> o = optimizer_ref<T>(opt, n.n_params());
            typename Net::Lock lock(n);
            double norm;
            {
                py::gil_scoped_release nogil;
                norm = n.optimizer_step(o, lr, true);
            }
            return norm;
        })
        .def("train_steps", [](Net& n, py::array x, py::array y, Labels order, index_t batch_size, index_t first_step,
                               index_t max_steps, double time_budget, double loss_sum, const std::string& loss, const py::dict& opt,
                               std::optional<py::array_t<double, py::array::c_style>> lr_per_step, double input_noise,
                               std::optional<py::array_t<double, py::array::c_style>> grad_norm_sums, double scale,
                               std::optional<py::array> shift, std::optional<py::array> divisor, index_t split,
                               index_t steps_per_epoch, std::optional<py::array_t<std::int64_t, py::array::c_style>> more) {
            if (more && (more->ndim() != 1 || more->shape(0) != 5 || !more->writeable()))
                throw py::value_error("more must be a writable int64 array of 5");
            nc::TrainRequest<T> req;
            req.x = input_source<T>(x, n.input_shape(), scale, shift, divisor, "X");
            const index_t rows = x.shape(0);
            if (rows < 1) throw py::value_error("X has the wrong shape");
            // order visits rows of X (all of them, or a subset such as a validation split's training part)
            if (order.ndim() != 1 || order.shape(0) < 1 || order.shape(0) > rows) throw py::value_error("order must have 1 to n_samples entries");
            for (index_t i = 0; i < order.shape(0); ++i)
                if (order.data()[i] < 0 || order.data()[i] >= rows) throw py::value_error("order holds an index out of range");
            if (batch_size < 1 || first_step < 0 || max_steps < 0) throw py::value_error("batch_size must be >= 1");
            if (split < 1 || split > (index_t(1) << 20) || batch_size > INT64_MAX / split || steps_per_epoch < 0)
                throw py::value_error("invalid split or steps_per_epoch");
            if (split > 1 && split != n.collective().size) throw py::value_error("split must equal the world size");
            req.loss = parse_loss(loss);
            Labels labels;
            CArray<T> values;
            if (req.loss == nc::LossKind::cross_entropy) {
                labels = Labels::ensure(y);
                if (!labels || labels.ndim() != 1 || labels.shape(0) != rows) throw py::value_error("y must hold one label per sample");
                req.y_labels = labels.data();
            } else {
                values = CArray<T>::ensure(y);
                if (!values || values.ndim() != 2 || values.shape(0) != rows || values.shape(1) != n.out_features())
                    throw py::value_error("y must have shape (n_samples, out_features)");
                req.y_values = values.data();
            }
            req.order = order.data();
            req.n = order.shape(0);
            req.split = split;
            req.n_steps = steps_per_epoch;
            req.batch_size = batch_size;
            req.first_step = first_step;
            req.max_steps = max_steps;
            req.time_budget_s = time_budget;
            req.loss_sum = loss_sum;
            req.opt = optimizer_ref<T>(opt, n.n_params());
            const index_t n_steps = steps_per_epoch > 0 ? steps_per_epoch : (req.n + batch_size * split - 1) / (batch_size * split);
            if (steps_per_epoch > 0 && steps_per_epoch > (req.n + batch_size - 1) / batch_size)
                throw py::value_error("steps_per_epoch exceeds the batches of the data");
            if (lr_per_step) {
                if (lr_per_step->ndim() != 1 || lr_per_step->shape(0) != n_steps) throw py::value_error("lr_per_step must have one entry per step");
                req.lr_per_step = lr_per_step->data();
            }
            if (grad_norm_sums) {
                if (grad_norm_sums->ndim() != 1 || grad_norm_sums->shape(0) != n.n_tracked() || !grad_norm_sums->writeable())
                    throw py::value_error("grad_norm_sums must have one entry per Dense/Conv2D layer");
                req.grad_norm_sums = grad_norm_sums->mutable_data();
            }
            if (!(input_noise >= 0.0)) throw py::value_error("input noise must be >= 0");
            req.input_noise = input_noise;
            typename Net::Lock lock(n);
            nc::TrainProgress p;
            {
                py::gil_scoped_release nogil;
                p = n.train(req);
            }
            if (more) {   // what a distributed fit also needs
                const std::int64_t values[5] = {p.rows, p.bad_label_rank, p.stops, p.stop_rank, p.stop_kind};
                std::memcpy(more->mutable_data(), values, sizeof values);
            }
            return py::make_tuple(p.steps, p.loss_sum, p.nonfinite, p.bad_loss, p.bad_label_row, p.correct);
        }, py::arg("x"), py::arg("y"), py::arg("order"), py::arg("batch_size"), py::arg("first_step"), py::arg("max_steps"),
           py::arg("time_budget"), py::arg("loss_sum"), py::arg("loss"), py::arg("opt"), py::arg("lr_per_step"),
           py::arg("input_noise"), py::arg("grad_norm_sums"), py::arg("scale") = 1.0, py::arg("shift") = py::none(),
           py::arg("divisor") = py::none(), py::arg("split") = 1, py::arg("steps_per_epoch") = 0,
           py::arg("more") = py::none(),
           "Runs steps [first_step, first_step + max_steps) of an epoch; returns (steps, loss_sum, nonfinite, "
           "bad_loss, bad_label_row, correct). `more` (int64 (5,)) receives rows, bad_label_rank, stops, stop_rank, "
           "stop_kind.");
}

template <typename F32, typename F64>
py::object by_dtype(const py::array& a, F32 f32, F64 f64) {
    const char kind = a.dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
        throw py::type_error(std::string("expected an array of real numbers, got dtype kind '") + kind + "'");
    if (a.dtype().is(py::dtype::of<double>())) return f64();
    return f32();
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "neurocore's compiled core: kernels, dispatch and the network engine";
    bind_network<float>(m, "Network_float32");
    bind_network<double>(m, "Network_float64");
    m.attr("status_size") = int(nc::kStatusSize);
    py::dict fields;
    fields["rows"] = int(nc::kStatusRows);
    fields["loss_sum"] = int(nc::kStatusLossSum);
    fields["correct"] = int(nc::kStatusCorrect);
    fields["bad_label_ranks"] = int(nc::kStatusBadLabelRanks);
    fields["stops"] = int(nc::kStatusStops);
    fields["stop_rank"] = int(nc::kStatusStopRank);
    fields["stop_kind"] = int(nc::kStatusStopKind);
    fields["payload"] = int(nc::kStatusPayload);
    m.attr("status_fields") = fields;

    m.def("gemm", [](py::array a, py::array b, bool trans_a, bool trans_b, std::optional<py::array> bias,
                     const std::string& activation, double alpha) {
        return by_dtype(a,
            [&] { return py::object(gemm_entry<float>(a, b, trans_a, trans_b, bias ? std::optional<CArray<float>>(CArray<float>::ensure(*bias)) : std::nullopt, activation, alpha, false)); },
            [&] { return py::object(gemm_entry<double>(a, b, trans_a, trans_b, bias ? std::optional<CArray<double>>(CArray<double>::ensure(*bias)) : std::nullopt, activation, alpha, false)); });
    }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("bias") = py::none(),
       py::arg("activation") = "identity", py::arg("alpha") = 0.01,
       "activation(op(a) @ op(b) + bias) with the active kernel set; float64 if a is float64, else float32.");
    m.def("reference_gemm", [](py::array a, py::array b, bool trans_a, bool trans_b, std::optional<py::array> bias,
                               const std::string& activation, double alpha) {
        return by_dtype(a,
            [&] { return py::object(gemm_entry<float>(a, b, trans_a, trans_b, bias ? std::optional<CArray<float>>(CArray<float>::ensure(*bias)) : std::nullopt, activation, alpha, true)); },
            [&] { return py::object(gemm_entry<double>(a, b, trans_a, trans_b, bias ? std::optional<CArray<double>>(CArray<double>::ensure(*bias)) : std::nullopt, activation, alpha, true)); });
    }, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("bias") = py::none(),
       py::arg("activation") = "identity", py::arg("alpha") = 0.01, "The plain-loop oracle for gemm().");
    m.def("activation_forward", [](const std::string& name, py::array x, double alpha, bool reference) {
        return by_dtype(x, [&] { return py::object(act_forward_entry<float>(name, x, alpha, reference)); },
                           [&] { return py::object(act_forward_entry<double>(name, x, alpha, reference)); });
    }, py::arg("name"), py::arg("x"), py::arg("alpha") = 0.01, py::arg("reference") = false);
    m.def("activation_backward", [](const std::string& name, py::array y, py::array dy, double alpha, bool reference) {
        return by_dtype(y, [&] { return py::object(act_backward_entry<float>(name, y, dy, alpha, reference)); },
                           [&] { return py::object(act_backward_entry<double>(name, y, dy, alpha, reference)); });
    }, py::arg("name"), py::arg("y"), py::arg("dy"), py::arg("alpha") = 0.01, py::arg("reference") = false);
    m.def("loss", [](const std::string& kind, py::array out, py::array target) {
        return by_dtype(out, [&] { return py::object(loss_entry<float>(kind, out, target)); },
                             [&] { return py::object(loss_entry<double>(kind, out, target)); });
    }, py::arg("kind"), py::arg("output"), py::arg("target"));

    m.def("set_isa", [](const std::string& name) {
        try { nc::set_isa(name); } catch (const std::invalid_argument& e) { throw py::value_error(e.what()); }
    });
    m.def("get_isa", &nc::isa_active);
    m.def("isa_available", &nc::isa_available);
    m.def("cpu_features", &nc::cpu_features);
    m.def("set_num_threads", [](int n) {
        if (n < 1 || n > 1024) throw py::value_error("the number of threads must be in [1, 1024], got " + std::to_string(n));
        nc::set_num_threads(n);
    });
    m.def("get_num_threads", &nc::num_threads);
    m.def("has_openmp", &nc::has_openmp);
    m.def("tile_shape", [](const std::string& dtype) {
        if (dtype == "float64") return py::make_tuple(nc::kernels<double>().mr, nc::kernels<double>().nr);
        return py::make_tuple(nc::kernels<float>().mr, nc::kernels<float>().nr);
    });
#if defined(__clang__)
    m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
    m.attr("compiler") = "gcc " __VERSION__;
#else
    m.attr("compiler") = "unknown";
#endif
}
