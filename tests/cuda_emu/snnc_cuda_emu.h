// Host C++ stand-ins for the CUDA built-ins that snnc's generated kernels use, so that
// tests/test_cuda_emulation.py can compile the generated .cu source with g++ and run its threads one after
// another on the CPU. The kernels never communicate within a block (no shared memory, barriers, shuffles or
// atomics), so running the threads sequentially, in any order, computes what the GPU computes.
//
// Arithmetic is the CPU's, to compare with eager PyTorch on the CPU: SNNC_DIVS divides (CUDA multiplies by
// the reciprocal, as eager PyTorch does there) and SNNC_RSQRT is 1 / sqrt. Compile without FMA contraction
// (-ffp-contract=off), as the CUDA forward is compiled with --fmad=false.
#pragma once
#include <cmath>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

#define SNNC_DIVS(a, b) ((a) / (b))
#define SNNC_RSQRT(a) (1.0f / sqrtf(a))

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};
// Set by the launcher before each emulated thread.
inline dim3 blockIdx, threadIdx, blockDim, gridDim;

struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }

// Cache hints change nothing on the CPU.
template <typename T>
inline T __ldg(const T* p) { return *p; }
template <typename T>
inline void __stcs(T* p, T v) { *p = v; }

inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }

// IEEE binary16; conversions round to nearest even, as CUDA's __float2half_rn and Tensor.half() do.
typedef _Float16 __half;
inline float __half2float(__half h) { return (float)h; }
inline __half __float2half(float f) { return (__half)f; }
inline __half __float2half_rn(float f) { return (__half)f; }
inline unsigned short __half_as_ushort(__half h) {
    unsigned short u;
    std::memcpy(&u, &h, sizeof u);
    return u;
}
inline __half __ushort_as_half(unsigned short u) {
    __half h;
    std::memcpy(&h, &u, sizeof h);
    return h;
}
