// Dynamic work distribution: a fixed list of tasks handed out from one shared counter. A thread that
// runs slower (its core shared with another program, or with another pool's spinning threads) simply
// takes fewer tasks, instead of holding everyone up at the join as a static split does. Each task runs
// exactly once, on whichever thread takes it; as long as a task's result does not depend on which
// thread runs it or on which tasks ran before (rows of an element-wise kernel, C tiles of the GEMM with
// their fixed K order), results are bitwise identical for any thread count and any timing.
//
// Use it for any loop over independent pieces of work:
//     parallel_tasks(n_blocks, nt, [&](index_t block, int thread) { ... });   // thread: per-thread scratch
//     parallel_rows(rows, cols, threads, [&](index_t r0, index_t r1) { ... }); // row kernels
// Included inside an ISA namespace, first in kernels_body.h (the ISA files include <atomic> and <omp.h>).
#pragma once

namespace parallel_detail {
inline index_t min_i(index_t a, index_t b) { return a < b ? a : b; }

// Elements per thread below which a fork/join costs more than it saves.
constexpr index_t kRowElemsPerThread = 16384;

// Threads worth starting for rows x cols elements of element-wise work (1 below kRowElemsPerThread).
inline int row_threads(index_t rows, index_t cols, int threads) {
    index_t t = rows * cols / kRowElemsPerThread;
    t = min_i(min_i(t, index_t(threads)), rows);
    return t < 1 ? 1 : int(t);
}
}  // namespace parallel_detail
using parallel_detail::row_threads;

// Runs task(t, thread) for every t in [0, tasks) on up to `threads` threads (thread in [0, threads)).
// One thread, or one task, runs inline: no parallel region, so no fork/join cost.
template <typename F>
void parallel_tasks(index_t tasks, int threads, F&& task) {
    const int nt = int(parallel_detail::min_i(index_t(threads), tasks));
#ifdef _OPENMP
    if (nt > 1) {
        std::atomic<index_t> next{0};
#pragma omp parallel num_threads(nt)
        {
            const int me = omp_get_thread_num();
            for (index_t t = next.fetch_add(1, std::memory_order_relaxed); t < tasks;
                 t = next.fetch_add(1, std::memory_order_relaxed))
                task(t, me);
        }
        return;
    }
#endif
    (void)nt;
    for (index_t t = 0; t < tasks; ++t) task(t, 0);
}

// Work per row block, in elements: small enough that a slow thread's last block is a short wait
// (a few microseconds), large enough that the shared counter costs nothing (one atomic per block).
constexpr index_t kRowBlockElems = 8192;
// body(r0, r1) over row blocks of [0, rows) (rows of `cols` elements), shared out dynamically. The
// blocks depend only on the shape, never on the threads.
template <typename F>
void parallel_rows(index_t rows, index_t cols, int threads, F&& body) {
    const index_t per = cols > 0 && cols < kRowBlockElems ? kRowBlockElems / cols : 1;
    const index_t blocks = (rows + per - 1) / per;
    parallel_tasks(blocks, row_threads(rows, cols, threads),
                   [&](index_t b, int) { body(b * per, parallel_detail::min_i(rows, (b + 1) * per)); });
}
