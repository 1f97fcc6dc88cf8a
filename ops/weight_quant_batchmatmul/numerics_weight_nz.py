"""Numerics of the 310P ``WeightNz`` kernel (Atlas inference series, coupled AI Core): the
oracle the API uses on 310P and the model the tiled program's replay
(``weight_quant_program_weight_nz``) equals bit for bit.

Order of operations, from the structure of CANN's 310P kernel
(``weight_quant_batch_matmul_v2_weight_nz_performance*.h`` in ops-nn, read for behaviour):

1. the int8 weight tile is cast to fp16 in UB (exact), the antiquant offset added and the scale
   multiplied on the vector unit in fp16 (per-channel parameters broadcast, per-tensor as
   scalars; each operation RNE), then moved to L1 in NZ;
2. x (fp16) is moved GM -> UB -> L1 (ND -> NZ by a vector copy, exact);
3. the cube multiplies fp16 x fp16 into fp32 L0C over the whole K, in the SoC's declared cube
   accumulation model; the fp16 bias is cast to fp32 on the vector unit (exact) and is the
   accumulator's initial value (the cube bias path of a core without a BiasTable);
4. there is no FixPipe: the fp32 result leaves L0C for UB as fp16 through the vector pipe
   (``GetTensorC`` into an fp16 UB tile), is reordered NZ -> ND by a vector multiply by 1.0
   (exact) and copied to GM.

Declared models (the hardware behaviour is not published; named in ``NUMERICS_MODELS`` and in
every run's notes): ``BIAS_MODEL`` - the bias enters as the accumulator's initial value, as a
BiasTable would load it; ``L0C_TO_UB_CAST`` - the fp32 -> fp16 conversion on the L0C -> UB
move rounds to nearest even and saturates on overflow (the 310P has only the saturation mode).
"""

from __future__ import annotations

import numpy as np

from npusim.numerics.cube import cube_matmul_float
from npusim.ops.weight_quant_batchmatmul.args import WqbmmArgs
from npusim.ops.weight_quant_batchmatmul.numerics_common import bias_f32, saturating_round
from npusim.ops.weight_quant_batchmatmul.numerics_custom import dequant_weight_fp16
from npusim.ops.weight_quant_batchmatmul.soc_facts import SocFacts

BIAS_MODEL = "weight_nz_310p_bias_as_initial_accumulator"
L0C_TO_UB_CAST = "weight_nz_310p_l0c_to_ub_fp16_rne_saturating"
MODEL = (
    "310P WeightNz: w16 = fp16(fp16(half(w) + off) * scale) on the vector unit (each RNE), fp16 "
    f"matmul into fp32 L0C in the cube model with the fp32 bias as initial value ({BIAS_MODEL}, "
    f"declared), L0C -> UB as fp16 ({L0C_TO_UB_CAST}, declared), NZ -> ND exact"
)


def weight_nz_310p(args: WqbmmArgs, facts: SocFacts) -> np.ndarray:
    """(M, N) float16 output of the 310P WeightNz kernel under the declared model."""
    if facts.split:
        raise NotImplementedError(
            "kernel 'WeightNz' on A2/A3 (weight_quant_batch_matmul_v2_custom_weight_nz): its "
            "numerics are not modelled; the 310P oracle covers the coupled core only"
        )
    if args.x_dtype != "float16" or args.weight_dtype != "int8" or args.out_dtype != "float16":
        raise NotImplementedError(
            f"310P WeightNz numerics: x {args.x_dtype}, weight {args.weight_dtype}, output "
            f"{args.out_dtype} (the 310P kernel takes fp16 x, int8 weight, fp16 output)"
        )
    w = dequant_weight_fp16(args)
    acc = cube_matmul_float(args.x, w, model=facts.cube_model, bias=bias_f32(args))
    return saturating_round(acc, "float16")
