// The counter-based RNG of snnc's Poisson encoder (see snnc/train/encode.py), shared by the host input kernels.
#include <cstdint>
#include <cstring>
#include <cmath>
#include <vector>

static const uint64_t GAMMA = 0x9E3779B97F4A7C15ULL;
static const uint32_t ONE = 1u << 24;

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t sample_key(uint64_t seed, uint64_t stream, uint64_t epoch, uint64_t index) {
    uint64_t k = mix64(seed ^ 0x5EED5EED5EED5EEDULL);
    k = mix64(k + stream);
    k = mix64(k + epoch);
    return mix64(k + index);
}

// Spike threshold of a pixel: P(spike) = threshold / 2^24. -1 marks a value outside [0, 1] (or NaN).
static inline int64_t threshold(float v) {
    if (!(v >= 0.0f && v <= 1.0f)) return -1;
    return (int64_t)std::ceil(v * 16777216.0f);
}

// Whether pixel j of the sample with RNG key k fires at step t (D pixels per step).
static inline bool fires(uint64_t k, int64_t t, int64_t D, int64_t j, uint32_t th) {
    return (uint32_t)(mix64(k + ((uint64_t)(t * D) + 1 + (uint64_t)j) * GAMMA) >> 40) < th;
}
