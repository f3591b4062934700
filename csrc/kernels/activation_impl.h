// Activations forward/backward, row-wise softmax and the bias gradient. Included inside an ISA namespace.
#pragma once

namespace act_detail {

using parallel_detail::row_threads;   // the name row kernels used before parallel_rows

// y[i] = f(x[i]) over n elements; the tail goes through a zero-padded vector so f sees whole vectors.
template <typename T, typename F>
void map1(T* y, const T* x, index_t n, F f) {
    using V = Vec<T>;
    index_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) f(V::load(x + i)).store(y + i);
    if (i < n) {
        T buf[V::lanes] = {};
        for (index_t q = 0; q < n - i; ++q) buf[q] = x[i + q];
        f(V::load(buf)).store(buf);
        for (index_t q = 0; q < n - i; ++q) y[i + q] = buf[q];
    }
}

template <typename T, typename F>
void map2(T* out, const T* a, const T* b, index_t n, F f) {
    using V = Vec<T>;
    index_t i = 0;
    for (; i + V::lanes <= n; i += V::lanes) f(V::load(a + i), V::load(b + i)).store(out + i);
    if (i < n) {
        T ba[V::lanes] = {}, bb[V::lanes] = {};
        for (index_t q = 0; q < n - i; ++q) { ba[q] = a[i + q]; bb[q] = b[i + q]; }
        f(V::load(ba), V::load(bb)).store(ba);
        for (index_t q = 0; q < n - i; ++q) out[i + q] = ba[q];
    }
}

// y (cols,) = softmax(x (cols,)), max-subtracted so exp never overflows.
template <typename T>
void softmax_row(T* y, const T* x, index_t cols) {
    using V = Vec<T>;
    V mv = V::set1(x[0]);
    index_t j = 0;
    for (; j + V::lanes <= cols; j += V::lanes) mv = vmax(mv, V::load(x + j));
    T m = hmax(mv);
    for (; j < cols; ++j) m = x[j] > m ? x[j] : m;
    const V mb = V::set1(m);
    V sv = V::zero();
    j = 0;
    for (; j + V::lanes <= cols; j += V::lanes) {
        const V e = vexp(V::load(x + j) - mb);
        e.store(y + j);
        sv = sv + e;
    }
    T s = hsum(sv);
    if (j < cols) {
        T buf[V::lanes];
        for (int q = 0; q < V::lanes; ++q) buf[q] = j + q < cols ? x[j + q] : m;
        vexp(V::load(buf) - mb).store(buf);
        for (index_t q = 0; q < cols - j; ++q) { y[j + q] = buf[q]; s += buf[q]; }
    }
    const T inv = T(1) / s;
    map1(y, y, cols, [&](V v) { return v * V::set1(inv); });
}

// dx (cols,) = y * (dy - <dy, y>): the softmax Jacobian-vector product from the forward output.
template <typename T>
void softmax_backward_row(T* dx, const T* y, const T* dy, index_t cols) {
    using V = Vec<T>;
    V dv = V::zero();
    index_t j = 0;
    for (; j + V::lanes <= cols; j += V::lanes) dv = fmadd(V::load(dy + j), V::load(y + j), dv);
    T dot = hsum(dv);
    for (; j < cols; ++j) dot += dy[j] * y[j];
    const V dotv = V::set1(dot);
    map2(dx, y, dy, cols, [&](V yv, V dyv) { return yv * (dyv - dotv); });
}

}  // namespace act_detail

// y (rows, cols) = act(x); y may alias x.
template <typename T>
void act_forward(T* y, const T* x, index_t rows, index_t cols, nc::Act act, T alpha, int threads) {
    using namespace act_detail;
    using V = Vec<T>;
    if (act == nc::Act::softmax) {
        parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) softmax_row(y + r * cols, x + r * cols, cols);
        });
        return;
    }
    const V alpha_v = V::set1(alpha);
    parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {   // rows are contiguous: one stream
        map1(y + r0 * cols, x + r0 * cols, (r1 - r0) * cols, [&](V v) { return act_apply(v, act, alpha_v); });
    });
}

// dx (rows, cols) = dL/dx from y = act(x) (rows, cols) and dy; dx may alias dy.
template <typename T>
void act_backward(T* dx, const T* y, const T* dy, index_t rows, index_t cols, nc::Act act, T alpha,
                  int threads) {
    using namespace act_detail;
    using V = Vec<T>;
    if (act == nc::Act::softmax) {
        parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {
            for (index_t r = r0; r < r1; ++r) softmax_backward_row(dx + r * cols, y + r * cols, dy + r * cols, cols);
        });
        return;
    }
    const V alpha_v = V::set1(alpha);
    parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) {
        const index_t off = r0 * cols;
        map2(dx + off, y + off, dy + off, (r1 - r0) * cols,
             [&](V yv, V dyv) { return act_derivative_apply(yv, dyv, act, alpha_v); });
    });
}

// db (cols,) = column sums of dy (rows, cols); each column sums its rows in order, whatever the threads.
// The tasks are blocks of vector-wide columns.
template <typename T>
void bias_grad(T* db, const T* dy, index_t rows, index_t cols, int threads) {
    using V = Vec<T>;
    const index_t vectors = (cols + V::lanes - 1) / V::lanes;
    const index_t work = rows * V::lanes;   // elements summed per vector of columns
    const index_t per = work < kRowBlockElems ? kRowBlockElems / work : 1;   // vectors per task
    const int nt = int(parallel_detail::min_i(index_t(row_threads(rows, cols, threads)), vectors));
    parallel_tasks((vectors + per - 1) / per, nt, [&](index_t task, int) {
        for (index_t b = task * per; b < parallel_detail::min_i(vectors, (task + 1) * per); ++b) {
            const index_t j = b * V::lanes;
            if (j + V::lanes <= cols) {
                V acc = V::zero();
                for (index_t r = 0; r < rows; ++r) acc = acc + V::load(dy + r * cols + j);
                acc.store(db + j);
            } else {
                for (index_t q = j; q < cols; ++q) {
                    T s = T(0);
                    for (index_t r = 0; r < rows; ++r) s += dy[r * cols + q];
                    db[q] = s;
                }
            }
        }
    });
}
