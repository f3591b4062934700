#include "collective.h"

#include <climits>
#include <stdexcept>
#include <string>

namespace nc {

namespace {
// MPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm) with the two handle ABIs in use: MPICH and
// its derivatives pass int handles, Open MPI and the MPI-5 standard ABI pass pointers.
using AllreduceInt = int (*)(const void*, void*, int, int, int, int);
using AllreducePtr = int (*)(const void*, void*, int, void*, void*, void*);
}  // namespace

void Collective::sum_raw(void* buf, index_t n, std::uint64_t type, std::size_t elem) const {
    void* const in_place = reinterpret_cast<void*>(static_cast<std::uintptr_t>(this->in_place));
    char* p = static_cast<char*>(buf);
    while (n > 0) {   // MPI counts are int: larger buffers go in pieces
        const int count = n > INT_MAX / 2 ? INT_MAX / 2 : int(n);
        int err;
        if (handle_bytes == 4)
            err = reinterpret_cast<AllreduceInt>(allreduce)(in_place, p, count, int(std::uint32_t(type)),
                                                            int(std::uint32_t(op_sum)), int(std::uint32_t(comm)));
        else
            err = reinterpret_cast<AllreducePtr>(allreduce)(in_place, p, count, reinterpret_cast<void*>(type),
                                                            reinterpret_cast<void*>(op_sum), reinterpret_cast<void*>(comm));
        if (err != 0) throw std::runtime_error("MPI_Allreduce failed with error code " + std::to_string(err));
        p += std::size_t(count) * elem;
        n -= count;
    }
}

void Collective::sum(float* buf, index_t n) const { sum_raw(buf, n, type_float, sizeof(float)); }
void Collective::sum(double* buf, index_t n) const { sum_raw(buf, n, type_double, sizeof(double)); }

}  // namespace nc
