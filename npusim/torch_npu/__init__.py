"""torch_npu-named operator API on numpy arrays (and torch CPU tensors)."""
