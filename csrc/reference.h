// Plain-loop reference kernels: the oracle the tests hold the fast kernels to, and nothing else.
#pragma once
#include "core_types.h"

namespace nc::reference {

template <typename T> void gemm(const GemmCall<T>& g);   // accumulates in double
template <typename T> void act_forward(T* y, const T* x, index_t rows, index_t cols, Act act, T alpha);
template <typename T> void act_backward(T* dx, const T* y, const T* dy, index_t rows, index_t cols, Act act, T alpha);

}  // namespace nc::reference
