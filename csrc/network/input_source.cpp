#include "input_source.h"

#include <cstring>

namespace nc {

namespace {

// IEEE binary16 -> binary32, exact (subnormals, infinities and NaN included).
float half_to_float(std::uint16_t h) {
    const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
    std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {   // subnormal: normalise the mantissa
        exp = 113;
        while ((mant & 0x400u) == 0) { mant <<= 1; --exp; }
        bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

// A stored value as T: exact for uint8, int16 and float16 (all exact in float), rounded once for float64
// rows in a float network, as NumPy's astype does. Plain conversions, so the loops below vectorise.
template <typename T, typename S> inline T load(const S* p, index_t j) { return T(p[j]); }
template <> inline float load<float, std::uint16_t>(const std::uint16_t* p, index_t j) { return half_to_float(p[j]); }
template <> inline double load<double, std::uint16_t>(const std::uint16_t* p, index_t j) { return double(half_to_float(p[j])); }

// dst (cols,) from one stored row.
template <typename T, typename S>
void cast_row(T* dst, const S* row, const InputSource<T>& in) {
    const index_t cols = in.cols;
    if (in.shift) {
        for (index_t j = 0; j < cols; ++j) dst[j] = (load<T>(row, j) - in.shift[j]) / in.divisor[j];
    } else if (in.scale != T(1)) {
        const T scale = in.scale;
        for (index_t j = 0; j < cols; ++j) dst[j] = load<T>(row, j) * scale;
    } else {
        for (index_t j = 0; j < cols; ++j) dst[j] = load<T>(row, j);
    }
}

template <typename T, typename S>
void gather_typed(T* dst, const InputSource<T>& src, const std::int64_t* idx, index_t first, index_t count) {
    const S* base = static_cast<const S*>(src.data);
    for (index_t i = 0; i < count; ++i) {
        const index_t r = idx ? idx[i] : first + i;
        cast_row(dst + i * src.cols, base + r * src.cols, src);
    }
}

}  // namespace

template <typename T>
bool InputSource<T>::plain() const {
    const InputType own = sizeof(T) == 4 ? InputType::float32 : InputType::float64;
    return type == own && shift == nullptr && scale == T(1);
}

template <typename T>
void gather_cast_rows(T* dst, const InputSource<T>& src, const std::int64_t* idx, index_t first, index_t count) {
    switch (src.type) {
        case InputType::uint8: gather_typed<T, std::uint8_t>(dst, src, idx, first, count); break;
        case InputType::int16: gather_typed<T, std::int16_t>(dst, src, idx, first, count); break;
        case InputType::float16: gather_typed<T, std::uint16_t>(dst, src, idx, first, count); break;
        case InputType::float32: gather_typed<T, float>(dst, src, idx, first, count); break;
        case InputType::float64: gather_typed<T, double>(dst, src, idx, first, count); break;
    }
}

template struct InputSource<float>;
template struct InputSource<double>;
template void gather_cast_rows<float>(float*, const InputSource<float>&, const std::int64_t*, index_t, index_t);
template void gather_cast_rows<double>(double*, const InputSource<double>&, const std::int64_t*, index_t, index_t);

}  // namespace nc
