// Stands in for CUDA's cuda_fp16.h in the CPU emulation: snnc_cuda_emu.h defines __half and its conversions.
#pragma once
