// The kernel set, compiled once per ISA: each kernels_<isa>.cpp includes this inside its own namespace
// after defining Vec<T> and Tile<T>, then exports the tables. Everything here is a template or an inline
// function of that namespace, so no ISA copy can be swapped for another by the linker (numpy#25274).
#include "parallel_impl.h"
#include "math_impl.h"
#include "gemm_impl.h"
#include "activation_impl.h"
#include "loss_impl.h"
#include "optim_impl.h"
#include "layers_impl.h"
#include "conv_impl.h"
#include "pool_impl.h"
#include "recurrent_impl.h"

template <typename T>
const nc::KernelTable<T>* make_table(const char* isa) {
    static const nc::KernelTable<T> table = {
        isa,         Tile<T>::mr,   gemm_detail::kNR<T>, &gemm_workspace_elems<T>, &gemm<T>,
        &act_forward<T>, &act_backward<T>, &bias_grad<T>, &loss<T>, &optim_step<T>, &gather_rows<T>,
        &gelu_backward<T>, &dropout_forward<T>, &multiply<T>, &add<T>, &batchnorm_forward<T>,
        &batchnorm_backward<T>, &gaussian_noise<T>, &sum_squares<T>, &scale<T>, &im2col<T>, &col2im<T>,
        &maxpool_forward<T>, &maxpool_backward<T>, &avgpool_forward<T>, &avgpool_backward<T>,
        {&rnn_step_forward<T>, &rnn_step_backward<T>, &lstm_step_forward<T>, &lstm_step_backward<T>,
         &gru_step_forward<T>, &gru_step_backward<T>},
    };
    return &table;
}
