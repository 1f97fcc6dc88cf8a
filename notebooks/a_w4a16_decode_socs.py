# %% [markdown]
# # W4A16 decode layers of a 7B-class model across SoCs, vs fp16
#
# One decode step (M = 1 token... here M = 16 tokens of a small batch) through the linear layers of
# a 7B-class transformer block (hidden 4096, MLP 11008): weights int4 per-group 128
# (`npu_weight_quant_batchmatmul`) vs plain fp16 (`matmul`). Timing-only runs on shape specs.
# The 310P takes int8 weights only (seed 002: no int4 on the inference series), so it shows the
# fp16 baseline only - the run says why instead of inventing a number. (Its WeightNz kernel has a
# timing-only program in npusim; an int8 study can use it.)

# %%
import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt

import npusim
from npusim.spec import spec

OUT = Path(os.environ.get("NPUSIM_NOTEBOOK_OUT", "out/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
M = 16
LAYERS = {"o_proj (4096 -> 4096)": (4096, 4096), "down_proj (11008 -> 4096)": (11008, 4096)}
SOCS = ["Ascend910B2", "Ascend910B4", "Ascend910_9391", "Ascend310P3"]


def w4a16(soc: str, k: int, n: int):
    return npusim.simulate(
        "weight_quant_batchmatmul", soc, check_races=False, x=spec((M, k), "float16"),
        weight=spec((k, n // 8), "int32"), antiquant_scale=spec((k // 128, n), "float16"),
        antiquant_group_size=128)


def fp16(soc: str, k: int, n: int):
    return npusim.simulate("matmul", soc, check_races=False, a=spec((M, k), "float16"),
                           b=spec((k, n), "float16"))


# %%
rows = []
for soc in SOCS:
    for layer, (k, n) in LAYERS.items():
        base = fp16(soc, k, n)
        try:
            q = w4a16(soc, k, n)
            q_us, kern = q.microseconds, q.kernel_name
        except (NotImplementedError, TypeError, ValueError) as exc:
            # 310P: int8 weights only (seed 002)
            q_us, kern = float("nan"), f"not available: {exc}"[:90]
        rows.append((soc, layer, base.microseconds, q_us, kern))
        print(f"{soc:<15} {layer:<26} fp16 {base.microseconds:8.1f} us   W4A16 {q_us:8.1f} us"
              f"   {kern}")

# %% [markdown]
# The W4A16 layers move a quarter of the fp16 weight bytes; on the A2 / A3 parts the MsdGroup
# kernel's time is set by the weight stream and the vector recombination, not the cube.

# %%
matplotlib.use("Agg")
fig, ax = plt.subplots(figsize=(8, 3.5))
labels = [f"{s}\n{layer.split()[0]}" for s, layer, *_ in rows]
xs = range(len(rows))
ax.bar([x - 0.2 for x in xs], [r[2] for r in rows], width=0.4, label="fp16 matmul")
ax.bar([x + 0.2 for x in xs], [r[3] for r in rows], width=0.4, label="W4A16")
ax.set_xticks(list(xs), labels, fontsize=6)
ax.set_ylabel("us")
ax.legend()
fig.tight_layout()
fig.savefig(OUT / "a_w4a16_decode_socs.png", dpi=120)
assert all(r[2] > 0 for r in rows)

# %% [markdown]
# What-if: the o_proj layer on a 910B2 with twice its HBM bandwidth, as a sweep study variant
# (`what_if` in a study file; `*=2` scales the descriptor's own value). Whether more bandwidth
# helps depends on what bounds the kernel: the per-pipe busy time in the CSV's summary says which.

# %%
from npusim.sweep import Study, run_sweep  # noqa: E402

study = Study("weight_quant_batchmatmul", [{"name": "Ascend910B2"}],
              [{"m": M, "k": 4096, "n": 4096, "weight_dtype": "int4", "group_size": 128}],
              what_if=[{"label": "hbm_x2", "overrides": ["memory.hbm.bandwidth_gb_per_s*=2"]}])
wi_csv = OUT / "a_what_if.csv"
wi_csv.unlink(missing_ok=True)
run_sweep(study, wi_csv, workers=2, progress=False)
import csv  # noqa: E402

with open(wi_csv, newline="") as f:
    what_if = {r["variant"]: r for r in csv.DictReader(f)}
for label, r in what_if.items():
    print(f"{label:<9} {r['overrides'] or '-':<40} {r['us']:>8} us  {r['kernel']}")
    print("   busy %:", r["summary"])
speed = float(what_if["baseline"]["us"]) / float(what_if["hbm_x2"]["us"])
print(f"speed-up from 2x HBM: {speed:.3f}x")
assert speed >= 0.999  # more bandwidth never costs time in this model
