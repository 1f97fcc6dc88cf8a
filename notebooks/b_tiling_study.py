# %% [markdown]
# # A tiling-strategy study of one shape
#
# fp16 matmul M = 256, K = N = 2048 on a 910B2: enumerate the legal tilings, rank them with the
# analytical bound, simulate the best candidates and the worst-bound one, and keep both traces.

# %%
import os
from pathlib import Path

from npusim.hw import load_soc
from npusim.ops import matmul_sweep
from npusim.sweep import Study, run_sweep

OUT = Path(os.environ.get("NPUSIM_NOTEBOOK_OUT", "out/notebooks"))
OUT.mkdir(parents=True, exist_ok=True)
soc = load_soc("Ascend910B2")
case = {"m": 256, "k": 2048, "n": 2048, "dtype": "float16"}
tilings = list(matmul_sweep.enumerate_tilings(soc, case))
bounds = sorted((matmul_sweep.bound_us(soc, case, t), i) for i, t in enumerate(tilings))
print(f"{len(tilings)} legal tilings; bound range {bounds[0][0]:.2f} .. {bounds[-1][0]:.2f} us")

# %%
study = Study("matmul", [{"name": "Ascend910B2"}], [case], simulate_top=6)
csv_path = OUT / "b_tiling_study.csv"
csv_path.unlink(missing_ok=True)
run_sweep(study, csv_path, workers=1, progress=False)
import csv  # noqa: E402
import json  # noqa: E402

with open(csv_path, newline="") as f:
    results = [r for r in csv.DictReader(f) if r["status"] == "ok"]
best = min(results, key=lambda r: float(r["us"]))
print("best simulated:", best["us"], "us", best["tiling"])

# %%
from npusim.ops.matmul_tiling import tiling_from_dict  # noqa: E402

worst_t = tilings[bounds[-1][1]]
best_t = tiling_from_dict(json.loads(best["tiling"]))
for label, t in (("best", best_t), ("worst", worst_t)):
    res = matmul_sweep.simulate_case({"name": "Ascend910B2"}, case, t.as_dict())
    res.write_trace(OUT / f"b_trace_{label}.json")
    print(f"{label:>5}: {res.microseconds:8.2f} us  base {t.base_m}x{t.base_n}x{t.base_k} "
          f"grid {t.m_dim}x{t.n_dim}  stepK {t.step_ka}/{t.step_kb}")
assert float(best["us"]) <= res.microseconds

# %%
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(5, 3))
ax.scatter([float(r["bound_us"]) for r in results], [float(r["us"]) for r in results])
ax.set_xlabel("analytical bound (us)")
ax.set_ylabel("simulated (us)")
fig.tight_layout()
fig.savefig(OUT / "b_bound_vs_simulated.png", dpi=120)

# %% [markdown]
# The same CSV through the comparison report (`npusim report b_tiling_study.csv --out DIR`):
# the best point's per-pipe busy time, its place under the roofline and the time over the two
# tiling fields that vary most among the simulated candidates.

# %%
from npusim.report.compare import write_report  # noqa: E402

report = write_report(csv_path, OUT / "b_report")
lines = report.read_text().splitlines()
print("\n".join(lines[lines.index("## Time over two tiling fields"):][:12]))
assert (OUT / "b_report" / "roofline.png").exists() and (OUT / "b_report" / "pipes.png").exists()
