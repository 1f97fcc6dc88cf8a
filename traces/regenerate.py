"""Regenerate the reference traces in this folder (deterministic: byte-identical output)."""

from __future__ import annotations

from pathlib import Path

import npusim
from npusim.spec import spec

HERE = Path(__file__).parent


def main(out: Path = HERE) -> None:
    """Write every reference trace into ``out`` (this folder unless told)."""
    n = 1 << 20
    npusim.simulate("vector_add", "Ascend910B2", "H7", x=spec((n,), "float16"),
                    y=spec((n,), "float16")).write_trace(out / "vector_add_h7_910b2.json")
    npusim.simulate("matmul", "Ascend910B2", a=spec((512, 512), "float16"),
                    b=spec((512, 512), "float16")).write_trace(out / "matmul_fp16_512_910b2.json")
    for ip in (0, 1):
        npusim.simulate(
            "weight_quant_batchmatmul", "Ascend910B2", x=spec((16, 512), "float16"),
            weight=spec((512, 512 // 8), "int32"), antiquant_scale=spec((4, 512), "float16"),
            antiquant_group_size=128, inner_precise=ip,
        ).write_trace(out / f"wqbmm_w4a16_decode_ip{ip}.json")


if __name__ == "__main__":
    main()
