"""npu_weight_quant_batchmatmul: kernel selection, per-kernel numerics and tilings."""
