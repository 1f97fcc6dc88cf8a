"""Numerics of the ``Fixpipe`` kernel (int64 antiquant scale; ops-semantics 5.6,
``op_kernel/fixpipe/weight_quant_batch_matmul_v2_fixpipe*.h``).

Stage 1 (per weight tile, AIC only): the int8 weight is multiplied by an int8 identity matrix
on the cube with the int32 antiquant offset preloaded in the bias table, giving ``w + off``
exactly in int32 in L0C; fixpipe VDEQF16 with the per-channel 19-bit scale ``M1`` (bits 31..13
of the uint64 parameter from npu_trans_quant_param) writes ``w16 = fp16(float(w + off) * M1)``
to L1 (``npusim.numerics.deqf16``: fp32 product RNE, then fp16 RNE saturating - a declared
model, the hardware product rounding is undocumented). The offset bits 37..45 and the sign bit
of the parameter are not used by DEQF16 [INF].

Stage 2: ``acc = bias + x16 @ w16`` in fp32 in the declared cube model (fp16 bias from the bias
table), out through fixpipe F322F16 (RNE). So the scale is applied to the weight before the
matmul, not after (the official golden's ``(x @ (w+off)) * M1`` is not bit-equivalent).
"""

from __future__ import annotations

import numpy as np

from npusim.numerics.cube import cube_matmul_float
from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_common import bias_f32, fixpipe_round
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts


def dequant_weight_fixpipe(args: WqbmmArgs) -> np.ndarray:
    """(K, N) float16 weight of stage 1."""
    from npusim.numerics import decode_quant_param, deqf16

    qp = decode_quant_param(args.antiquant_scale.reshape(-1).astype(np.int64))
    m1 = np.asarray(qp.m1, dtype=np.float32)
    w = args.weight.astype(np.int32)
    if args.antiquant_offset is not None:
        w = w + args.antiquant_offset.astype(np.int32)
    return np.asarray(deqf16(w, m1), dtype=np.float16)


def fixpipe(args: WqbmmArgs, facts: SocFacts) -> np.ndarray:
    """Output of the Fixpipe kernel (float16)."""
    w16 = dequant_weight_fixpipe(args)
    acc = cube_matmul_float(args.x, w16, model=facts.cube_model, bias=bias_f32(args))
    return fixpipe_round(acc, "float16")
