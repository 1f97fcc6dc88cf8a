"""``npusim model``: one decode step and one prefill of a transformer's quantised linear layers.

A config file (YAML; shipped ones in ``npusim/workloads/``, named by file stem) gives the hidden
size, intermediate size, attention heads, KV heads and layers. Each decoder layer has seven linear
layers (q, k, v, o, gate, up, down; a Llama-style gated MLP), run through the quantised operators
of the chosen scheme, timing-only:

- ``w4a16``: ``weight_quant_batchmatmul``, int4 weights per-group 128, fp16 activations;
- ``w8a16``: ``weight_quant_batchmatmul``, int8 weights per-channel, fp16 activations;
- ``w8a8``: ``quant_matmul`` (int8 x int8, DEQF16 fp16 output), each distinct activation first
  quantised to int8 by ``group_quant`` with one group (a static per-channel scale; four per layer:
  the q/k/v input, the o input, the gate/up input, the down input).

Every layer of these configs has the same shapes, so one layer is simulated and its time counted
``num_hidden_layers`` times (identical ops inside a layer are simulated once too); each op starts
from a cold L2 (weights come from HBM). The ops run back to back: a layer's time is the sum of its
ops. Attention, norms, activations, residual adds, RoPE, embedding and the LM head are not
modelled and are listed as such in every report.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    from npusim.result_cache import TimingSummary

#: the parser class of the subparsers (the CLI's NpusimParser)
_P = TypeVar("_P", bound=argparse.ArgumentParser)

QUANT_SCHEMES = ("w4a16", "w8a16", "w8a8")
NOT_MODELLED = (
    "attention (Q K^T, softmax, P V) and the KV-cache writes",
    "RMSNorm (2 per layer), SiLU x up, residual adds, RoPE",
    "embedding lookup and the LM head (not quantised)",
)
_FIELDS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
           "num_hidden_layers")


@dataclass(frozen=True)
class ModelConfig:
    """The shapes of a decoder-only transformer that its linear layers need."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    num_key_value_heads: int
    num_hidden_layers: int
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def linears(self) -> list[tuple[str, int, int]]:
        """(name, K, N) of each linear layer of one decoder layer, in execution order."""
        h, d = self.hidden_size, self.head_dim
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        i = self.intermediate_size
        return [("q_proj", h, q), ("k_proj", h, kv), ("v_proj", h, kv), ("o_proj", q, h),
                ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]


def workloads_dir() -> Path:
    return Path(__file__).parent / "workloads"


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in workloads_dir().glob("*.yaml"))


def load_config(ref: str | Path) -> ModelConfig:
    """A config from a YAML file path or a shipped name (``llama-2-7b``). Read as the SoC
    descriptors are (:func:`npusim.hw.loader.read_yaml_file`: plain YAML only, bounded aliases,
    UTF-8); every error is a ``DescriptorError`` (a ValueError) naming the file, the field and
    the rule. Fields other than the five sizes, ``name`` and ``source`` are ignored (a Hugging
    Face config.json, which YAML reads, carries many)."""
    from npusim.hw.errors import DescriptorError
    from npusim.hw.loader import read_yaml_file

    path = Path(ref)
    if not path.exists():
        shipped = workloads_dir() / f"{ref}.yaml"
        if not shipped.exists():
            raise ValueError(f"CONFIG={str(ref)!r}: neither a file nor a shipped config "
                             f"({', '.join(shipped_configs())})")
        path = shipped
    data = read_yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DescriptorError(f"{path}: a model config must be a mapping of fields, got "
                              f"{type(data).__name__}")
    missing = [f for f in _FIELDS if f not in data]
    if missing:
        raise DescriptorError(f"{path}: field {missing[0]}: missing (required: "
                              f"{', '.join(missing)})")
    vals = {}
    for f in _FIELDS:
        v = data[f]
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise DescriptorError(f"{path}: field {f}: {v!r} must be a positive integer")
        vals[f] = v
    for f in ("name", "source"):
        if f in data and not isinstance(data[f], str):
            raise DescriptorError(f"{path}: field {f}: {data[f]!r} must be a string")
    if vals["hidden_size"] % vals["num_attention_heads"]:
        raise DescriptorError(
            f"{path}: field hidden_size: {vals['hidden_size']} is not a multiple of "
            f"num_attention_heads={vals['num_attention_heads']}")
    if vals["num_attention_heads"] % vals["num_key_value_heads"]:
        raise DescriptorError(
            f"{path}: field num_attention_heads: {vals['num_attention_heads']} is not a "
            f"multiple of num_key_value_heads={vals['num_key_value_heads']}")
    return ModelConfig(name=str(data.get("name", path.stem)), source=str(data.get("source", "")),
                       **vals)


def op_calls(cfg: ModelConfig, quant: str, m: int
             ) -> list[tuple[str, str, tuple[int, int, int], dict[str, Any]]]:
    """(label, operator, (M, K, N), timing-only arguments) of one decoder layer with M tokens."""
    from npusim.spec import spec

    if quant not in QUANT_SCHEMES:
        raise ValueError(f"--quant={quant!r}: must be one of {', '.join(QUANT_SCHEMES)}")
    calls: list[tuple[str, str, tuple[int, int, int], dict[str, Any]]] = []
    quantised_inputs: set[str] = set()
    for name, k, n in cfg.linears():
        mkn = (m, k, n)
        if quant == "w4a16":
            if n % 8 or k % 128:
                raise ValueError(f"{cfg.name} {name}: w4a16 needs N % 8 == 0 and K % 128 == 0 "
                                 f"(K={k}, N={n})")
            args = {"x": spec((m, k), "float16"), "weight": spec((k, n // 8), "int32"),
                    "antiquant_scale": spec((k // 128, n), "float16"),
                    "antiquant_group_size": 128}
            calls.append((name, "weight_quant_batchmatmul", mkn, args))
        elif quant == "w8a16":
            args = {"x": spec((m, k), "float16"), "weight": spec((k, n), "int8"),
                    "antiquant_scale": spec((n,), "float16")}
            calls.append((name, "weight_quant_batchmatmul", mkn, args))
        else:
            source = {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "gate_proj": "mlp",
                      "up_proj": "mlp"}.get(name, name)
            if source not in quantised_inputs:
                quantised_inputs.add(source)
                calls.append((f"quant({source} in)", "group_quant", (m, k, 0), {
                    "x": spec((m, k), "float16"), "scale": spec((1, k), "float32"),
                    "group_index": np.array([m], np.int64), "dst_dtype": "int8"}))
            args = {"x1": spec((m, k), "int8"), "x2": spec((k, n), "int8"),
                    "scale": np.full(n, 1e-3, np.float32), "output_dtype": "float16"}
            calls.append((name, "quant_matmul", mkn, args))
    return calls


@dataclass
class OpTime:
    label: str
    op: str
    mkn: tuple[int, int, int]
    summary: TimingSummary


@dataclass
class PhaseResult:
    """One decode step or one prefill on one SoC variant."""

    phase: str
    tokens: int
    layers: int
    ops: list[OpTime] = field(default_factory=list)
    simulated: int = 0  # distinct op calls simulated (or read from the cache)

    @property
    def layer_us(self) -> float:
        return sum(o.summary.microseconds for o in self.ops)

    @property
    def layer_hbm_bound_us(self) -> float:
        return sum(o.summary.hbm_bound_us for o in self.ops)

    @property
    def total_us(self) -> float:
        return self.layer_us * self.layers

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / (self.total_us * 1e-6) if self.total_us else math.inf


def run_phase(cfg: ModelConfig, quant: str, phase: str, tokens: int, soc: str,
              overrides: Sequence[str] = (), use_cache: bool | None = None) -> PhaseResult:
    """Simulate one layer's ops (each distinct call once) and scale to the model."""
    from npusim.result_cache import cache_key, timing_summary
    from npusim.runner import resolve_soc

    desc = resolve_soc(soc, overrides)
    res = PhaseResult(phase, tokens, cfg.num_hidden_layers)
    seen: dict[str, TimingSummary] = {}
    for label, op, mkn, args in op_calls(cfg, quant, tokens):
        key = cache_key(op, desc, None, None, args)
        if key not in seen:
            seen[key] = timing_summary(op, desc, use_cache=use_cache, **args)
        res.ops.append(OpTime(label, op, mkn, seen[key]))
    res.simulated = len(seen)
    return res


def _variant_label(soc: str, overrides: Sequence[str]) -> str:
    return soc + (" [" + ", ".join(overrides) + "]" if overrides else "")


def format_phase(cfg: ModelConfig, r: PhaseResult, label: str) -> str:
    lines = [f"## {r.phase} ({r.tokens} token{'s' if r.tokens != 1 else ''}) on {label}",
             "| op | M x K x N | operator / kernel | us | HBM bound us | x bound "
             "| bottleneck pipe |",
             "|---|---|---|---|---|---|---|"]
    for o in r.ops:
        s = o.summary
        shape = " x ".join(str(v) for v in o.mkn if v)
        ratio = s.microseconds / s.hbm_bound_us if s.hbm_bound_us else math.inf
        lines.append(f"| {o.label} | {shape} | {o.op} / {s.kernel_name} | {s.microseconds:.2f} | "
                     f"{s.hbm_bound_us:.2f} | {ratio:.2f} | {s.bottleneck_pipe} "
                     f"({s.bottleneck_busy_pct:.0f}%) |")
    lines.append(f"per layer: {r.layer_us:.2f} us (HBM bound {r.layer_hbm_bound_us:.2f} us); "
                 f"{cfg.num_hidden_layers} identical layers (one simulated, {r.simulated} distinct "
                 f"op calls): {r.total_us / 1e3:.3f} ms = {r.tokens_per_s:,.1f} tokens/s "
                 "(modelled ops only)")
    return "\n".join(lines)


def plot_variants(results: dict[str, dict[str, PhaseResult]], path: str | Path) -> Path:
    """Per-layer time of each op, one group of bars per SoC variant and phase."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - the plot extra is optional
        raise SystemExit("--plot needs matplotlib: pip install -e \".[plot]\" in the npusim "
                         "checkout") from exc
    phases = sorted({p for v in results.values() for p in v})
    fig, axes = plt.subplots(1, len(phases), figsize=(6 * len(phases), 4), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        labels = list(results)
        ops = [o.label for o in results[labels[0]][phase].ops]
        width = 0.8 / len(labels)
        for i, lab in enumerate(labels):
            us = [o.summary.microseconds for o in results[lab][phase].ops]
            ax.bar(np.arange(len(ops)) + i * width, us, width, label=lab)
        ax.set_xticks(np.arange(len(ops)) + 0.4 - width / 2, ops, rotation=45, ha="right")
        ax.set_ylabel("us per layer")
        ax.set_title(phase)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def add_model_parser(sub: argparse._SubParsersAction[_P]) -> None:
    p = sub.add_parser("model", help="a transformer's quantised linear layers: one decode step "
                       "and one prefill, per-op / per-layer time, tokens/s, what-if across SoCs")
    p.add_argument("config", help=f"model YAML or a shipped name ({', '.join(shipped_configs())})")
    p.add_argument("--soc", action="append", default=None,
                   help="SoC (repeatable: a what-if comparison; default Ascend910B2)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                   help="what-if descriptor override; adds each SoC with these overrides")
    p.add_argument("--quant", default="w4a16", choices=QUANT_SCHEMES)
    p.add_argument("--batch", type=int, default=1, help="decode batch (tokens per step)")
    p.add_argument("--prefill-tokens", type=int, default=512, help="prefill length (0: skip)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not read or write the result cache (npusim.result_cache)")
    p.add_argument("--plot", default=None, help="write a bar chart (PNG) here")


def model_command(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    for name, v in (("--batch", args.batch), ("--prefill-tokens", args.prefill_tokens)):
        if v < 0 or (name == "--batch" and v == 0):
            raise SystemExit(f"{name}={v}: must be {'positive' if name == '--batch' else '>= 0'}")
    socs = args.soc or ["Ascend910B2"]
    variants = [(s, ()) for s in socs]
    if args.overrides:
        variants += [(s, tuple(args.overrides)) for s in socs]
    use_cache = False if args.no_cache else None
    print(f"# {cfg.name} {args.quant} (hidden {cfg.hidden_size}, intermediate "
          f"{cfg.intermediate_size}, heads {cfg.num_attention_heads}/{cfg.num_key_value_heads} "
          f"kv, {cfg.num_hidden_layers} layers){'; source ' + cfg.source if cfg.source else ''}")
    print("not modelled (not in the times below): " + "; ".join(NOT_MODELLED))
    results: dict[str, dict[str, PhaseResult]] = {}
    phases = [("decode", args.batch)]
    if args.prefill_tokens:
        phases.append(("prefill", args.prefill_tokens))
    for soc, ov in variants:
        label = _variant_label(soc, ov)
        results[label] = {}
        for phase, tokens in phases:
            r = run_phase(cfg, args.quant, phase, tokens, soc, ov, use_cache)
            results[label][phase] = r
            print()
            print(format_phase(cfg, r, label))
    if len(results) > 1:
        base = next(iter(results))
        print("\n## what-if comparison (modelled ops only)")
        cols = " | ".join(f"{p} ms | {p} tokens/s | {p} speed-up" for p, _ in phases)
        print(f"| variant | {cols} |")
        print("|---|" + "---|" * (3 * len(phases)))
        for label, per in results.items():
            cells = []
            for p, _ in phases:
                r, b = per[p], results[base][p]
                cells.append(f"{r.total_us / 1e3:.3f} | {r.tokens_per_s:,.1f} | "
                             f"{b.total_us / r.total_us:.2f}x")
            print(f"| {label} | {' | '.join(cells)} |")
    if args.plot:
        print(f"\nThe what-if plot is written to {plot_variants(results, args.plot)}.")
    return 0
