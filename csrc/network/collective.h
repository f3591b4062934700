// The collectives of data-parallel training: an in-place sum over all ranks, called through the
// MPI_Allreduce of the MPI library that mpi4py loaded. Python looks the function and the handles up at
// fit time (nothing MPI at build time), so a step calls MPI directly: no Python, no GIL, no allocation.
#pragma once
#include <cstdint>

#include "../core_types.h"

namespace nc {

// The status every rank contributes to each step's one small sum (doubles: exact counts and the loss at
// full precision), and to every synchronisation point between steps; Python reads the same layout.
enum StatusField : int {
    kStatusRows = 0,          // rows of the step on this rank
    kStatusLossSum,           // this rank's mean batch loss x its rows
    kStatusCorrect,           // correct predictions
    kStatusBadLabelRanks,     // 1 when a label of this rank's batch is out of range
    kStatusBadLabelRank,      // ... this rank's number then
    kStatusBadLabelRow,       // ... and the data row
    kStatusStops,             // 1 when this rank stops (an exception, Ctrl-C) at a sync point
    kStatusStopRank,          // ... its rank
    kStatusStopKind,          // ... 1 an exception, 2 an interrupt
    kStatusPayload,           // 3 free slots for Python's sync points (validation sums, votes)
    kStatusSize = kStatusPayload + 3
};

struct Collective {
    void* allreduce = nullptr;    // MPI_Allreduce; nullptr: a single process
    int handle_bytes = 4;         // sizeof(MPI_Comm) etc.: 4 for MPICH-style int handles, 8 for pointer handles
    std::uint64_t comm = 0, op_sum = 0, type_float = 0, type_double = 0;  // handle values (low bytes used)
    std::uint64_t in_place = 0;   // the value of MPI_IN_PLACE
    int rank = 0, size = 1;

    bool active() const { return allreduce != nullptr; }
    // buf (n,) = its sum over every rank, identical on every rank. Throws std::runtime_error when MPI
    // reports an error.
    void sum(float* buf, index_t n) const;
    void sum(double* buf, index_t n) const;

  private:
    void sum_raw(void* buf, index_t n, std::uint64_t type, std::size_t elem) const;
};

}  // namespace nc
