"""The trans_quant_param tiled program (one AIV): its output, computed by the scalar loop's typed
steps from the semantics table, equals the operator's reference bit for bit (uint64 views) for
both round modes, every broadcasting rule and every chunking, and a timing-only run costs the
same cycles."""

import numpy as np
import pytest

from npusim.isa.semantics import supplied_semantics
from npusim.ops.trans_quant_param import reference_trans_quant_param
from npusim.ops.trans_quant_param_program import TransQuantParamTiling
from npusim.runner import simulate
from npusim.spec import spec

SOC = "Ascend910B4"


def _scales(rng: np.random.Generator, shape) -> np.ndarray:
    """Random fp32 bit patterns (finite), plus the edge cases of the fp19 rounding."""
    n = int(np.prod(shape))
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    exp = (bits >> 23) & 0xFF
    bits = np.where(exp == 0xFF, bits & np.uint32(0xBFFFFFFF), bits)  # no inf / NaN
    edges = np.array([0x00000000, 0x80000000, 0x00001000, 0x3F801000, 0x3F803000,
                      0x3F801001, 0x3F800FFF, 0x7F7FFFFF, 0xFF7FF000, 0x007FFFFF,
                      0x3FFFF000, 0x3F7FF000], dtype=np.uint32)
    k = min(n, edges.size)
    bits[:k] = edges[:k]
    return bits.view(np.float32).reshape(shape)


def _offsets(rng: np.random.Generator, shape) -> np.ndarray:
    n = int(np.prod(shape))
    o = rng.uniform(-600, 600, n).astype(np.float32)
    edges = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 255.5, -256.5, 254.5, 1e30, -1e30],
                     dtype=np.float32)
    k = min(n, edges.size)
    o[:k] = edges[:k]
    return o.reshape(shape)


CASES = [  # scale shape, offset shape (None: no offset), round_mode, chunk, double_buffer
    ((1000,), (1000,), 0, 256, True),
    ((1000,), (1000,), 1, 248, True),
    ((777,), (1,), 1, 64, True),       # offset broadcast
    ((1,), (300,), 1, 64, False),      # scale broadcast, output takes the offset's shape
    ((1,), (1,), 0, 8, True),
    ((1, 40), (1, 40), 1, 16, True),   # 2-D scale and offset
    ((33,), None, 1, 8, True),
    ((1, 12), None, 0, 2048, False),
]


@pytest.mark.parametrize("sshape,oshape,mode,chunk,db", CASES)
def test_program_equals_reference_bit_for_bit(sshape, oshape, mode, chunk, db):
    """Rule: the program's uint64 words equal reference_trans_quant_param's for every shape
    rule, both round modes, ties and range edges of scale and offset, every chunking."""
    rng = np.random.default_rng(hash((sshape, oshape, mode, chunk)) % 2**32)
    s = _scales(rng, sshape)
    o = None if oshape is None else _offsets(rng, oshape)
    res = simulate("trans_quant_param", SOC, TransQuantParamTiling(chunk, db), scale=s,
                   offset=o, round_mode=mode)
    want = reference_trans_quant_param(s, o, mode)
    assert res.outputs.dtype == np.int64 and res.outputs.shape == want.shape
    assert np.array_equal(res.outputs.view(np.uint64), want.view(np.uint64))
    assert res.run.kernel.meta["count"] == want.size
    assert len(res.run.kernel.cores) == 1 and res.run.kernel.cores[0].kind == "aiv"
    assert supplied_semantics(res.run.kernel) == {}  # the scalar loop's steps are typed


def test_round_modes_differ_where_rne_rounds_up():
    """Rule: round_mode 1 rounds bit 12 up (carry into the exponent at 0x3FFFF000), mode 0 cuts."""
    s = np.array([0x3F801000 | 0x1, 0x3FFFF000], dtype=np.uint32).view(np.float32)
    outs = [simulate("trans_quant_param", SOC, scale=s, round_mode=m).outputs.view(np.uint64)
            for m in (0, 1)]
    low = [o & np.uint64(0xFFFFFFFF) for o in outs]
    assert low[0].tolist() == [0x3F800000, 0x3FFFE000]
    assert low[1].tolist() == [0x3F802000, 0x40000000]


def test_timing_only_same_cycles_as_functional():
    """Rule: a spec run (no data) schedules the same instructions, so it costs the same cycles."""
    rng = np.random.default_rng(3)
    s, o = _scales(rng, (600,)), _offsets(rng, (1,))
    t = TransQuantParamTiling(128)
    fun = simulate("trans_quant_param", SOC, t, scale=s, offset=o, round_mode=1)
    tim = simulate("trans_quant_param", SOC, t, scale=spec((600,), "float32"),
                   offset=spec((1,), "float32"), round_mode=1)
    assert tim.outputs is None and tim.cycles == fun.cycles > 0


def test_cost_grows_with_elements_and_rne():
    """Rule: the scalar assembly dominates - more elements or the RNE step cost more cycles."""
    def cyc(n, mode):
        return simulate("trans_quant_param", SOC, scale=spec((n,), "float32"),
                        round_mode=mode).cycles

    assert cyc(64, 0) < cyc(4096, 0) < cyc(4096, 1)


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"scale": spec((4, 8), "float32")}, ValueError, "scale: shape"),
    ({"scale": spec((8,), "float16")}, TypeError, "scale: dtype"),
    ({"scale": spec((8,), "float32"), "offset": spec((3,), "float32")}, ValueError, "lengths"),
    ({"scale": spec((1, 8), "float32"), "offset": spec((8,), "float32")}, ValueError, "2-D"),
    ({"scale": spec((8,), "float32"), "round_mode": 2}, ValueError, "round_mode"),
    ({"scale": np.array([np.inf], np.float32)}, ValueError, "not finite"),
])
def test_bad_arguments(kwargs, exc, msg):
    """Rule: spec and array inputs get the operator's checks, naming the argument."""
    with pytest.raises(exc, match=msg):
        simulate("trans_quant_param", SOC, **kwargs)


def test_bad_tiling():
    """Rule: a chunk that is not a multiple of 8 elements would misalign UB buffers."""
    with pytest.raises(ValueError, match=r"tiling\.chunk"):
        simulate("trans_quant_param", SOC, TransQuantParamTiling(12),
                 scale=spec((64,), "float32"))
