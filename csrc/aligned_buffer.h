// A zero-initialised, 64-byte aligned array owned by the network: parameters, gradients, workspaces.
#pragma once
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include "core_types.h"

namespace nc {

// a * b, or std::length_error (ValueError in Python) when the product does not fit.
inline index_t checked_mul(index_t a, index_t b, const char* what) {
    index_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) throw std::length_error(std::string(what) + ": size overflows");
    return r;
}
inline index_t checked_add(index_t a, index_t b, const char* what) {
    index_t r;
    if (__builtin_add_overflow(a, b, &r)) throw std::length_error(std::string(what) + ": size overflows");
    return r;
}

template <typename T>
class AlignedBuffer {
  public:
    AlignedBuffer() = default;
    explicit AlignedBuffer(index_t n) { resize(n); }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { std::free(data_); }

    // Discards the contents; the new buffer is zeroed.
    void resize(index_t n) {
        if (n == size_) return;
        const index_t bytes = checked_mul(n < 1 ? 1 : n, index_t(sizeof(T)), "buffer");
        const index_t rounded = checked_add(bytes, 63, "buffer") / 64 * 64;
        void* p = std::aligned_alloc(64, size_t(rounded));
        if (p == nullptr) throw std::bad_alloc();
        std::memset(p, 0, size_t(rounded));
        std::free(data_);
        data_ = static_cast<T*>(p);
        size_ = n;
    }
    void grow_to(index_t n) { if (n > size_) resize(n); }
    T* data() { return data_; }
    const T* data() const { return data_; }
    index_t size() const { return size_; }

  private:
    T* data_ = nullptr;
    index_t size_ = 0;
};

}  // namespace nc
