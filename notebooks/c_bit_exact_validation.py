# %% [markdown]
# # Bit-exact validation with LinearWeightQuant
#
# Random int8 weights behind `LinearWeightQuant`: which kernel the NPU runs for each batch size,
# and how the kernels differ numerically (the MSD kernels decompose x into int8 digits and round
# half away from zero; Custom dequantises the weight and rounds to nearest even).

# %%
import numpy as np

from npusim.torch_npu import explain_weight_quant_batchmatmul, npu_weight_quant_batchmatmul
from npusim.torch_npu.contrib.module import NumpyLinearWeightQuant as LinearWeightQuant

rng = np.random.default_rng(0)
K, N = 512, 256
weight = rng.integers(-128, 128, (N, K), dtype=np.int8)
scale = (rng.uniform(0.5, 1.5, N) * 0.01).astype(np.float16)

layer = LinearWeightQuant(K, N, bias=False, dtype="float16")
layer.weight = weight
layer.antiquant_scale = scale
for m in (1, 16, 64, 96):
    x = rng.standard_normal((m, K)).astype(np.float16)
    y = layer(x)
    print(f"M={m:>3}: kernel {layer.kernel:<10} output {y.shape} {y.dtype}")

# %%
x = rng.standard_normal((16, K)).astype(np.float16)
wt = weight.T  # the transposed view torch_npu recognises from strides
info = explain_weight_quant_batchmatmul(x, wt, scale)
print("capable kernels:", info)
outs = {}
for kern in ("Msd", "Custom"):
    try:
        outs[kern] = npu_weight_quant_batchmatmul(x, wt, scale, kernel=kern)
    except ValueError as exc:
        print(kern, "not capable:", exc)
if len(outs) == 2:
    a, b = (outs[k].astype(np.float64) for k in ("Msd", "Custom"))
    differ = int((outs["Msd"].view(np.uint16) != outs["Custom"].view(np.uint16)).sum())
    print(f"Msd vs Custom: {differ} of {a.size} outputs differ in their bits; "
          f"max |diff| {np.abs(a - b).max():.4g}")
    assert differ > 0  # the kernels are numerically distinct; bit-exact needs the right one
