"""npu_weight_quant_batchmatmul: kernel selection, per-kernel numerics, tilings and tiled programs."""
