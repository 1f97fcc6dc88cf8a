"""Transfer paths: pipes per path, and the bandwidth curve (piecewise linear, clamped)."""

from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from npusim.hw import TransferSpec, load_soc

SPEC = TransferSpec(
    pipe="MTE2",
    latency_cycles=0,
    peak_bytes_per_cycle=100.0,
    curve=((1024, 4.0), (2048, 8.0), (8192, 32.0), (65536, 64.0)),
    source="test",
)


def _oracle(points, size):
    """Exact piecewise-linear interpolation with end clamping, in fractions."""
    pts = [(Fraction(s), Fraction(b)) for s, b in points]
    x = Fraction(size)
    if x <= pts[0][0]:
        return pts[0][1]
    if x >= pts[-1][0]:
        return pts[-1][1]
    for (s0, b0), (s1, b1) in pairwise(pts):
        if s0 <= x <= s1:
            return b0 + (b1 - b0) * (x - s0) / (s1 - s0)
    raise AssertionError("unreachable")


def test_curve_points_are_returned_exactly():
    """At a measured size the curve value itself is returned."""
    for size, bw in SPEC.curve:
        assert SPEC.bytes_per_cycle(size) == bw


def test_interpolation_between_points_and_clamping():
    """Between points: linear (5120 B -> midway between 8 and 32 = 20); outside: clamped."""
    assert SPEC.bytes_per_cycle(5120) == 20.0
    assert SPEC.bytes_per_cycle(1) == 4.0
    assert SPEC.bytes_per_cycle(10**9) == 64.0


@given(st.integers(min_value=1, max_value=1 << 20))
def test_interpolation_matches_exact_oracle(size):
    """bytes_per_cycle equals the exact rational interpolation to double precision."""
    want = _oracle(SPEC.curve, size)
    assert abs(Fraction(SPEC.bytes_per_cycle(size)) - want) <= want * Fraction(1, 10**14)


def test_peak_without_curve_and_bad_sizes():
    """Without a curve every size gets the peak; a non-positive or non-numeric size is refused."""
    flat = TransferSpec(pipe="V", latency_cycles=0, peak_bytes_per_cycle=256.0, source="t")
    assert flat.bytes_per_cycle(1) == flat.bytes_per_cycle(10**7) == 256.0
    with pytest.raises(ValueError, match="size_bytes=0"):
        SPEC.bytes_per_cycle(0)
    with pytest.raises(TypeError, match="size_bytes"):
        SPEC.bytes_per_cycle("1 KiB")


def test_shipped_paths_and_pipes():
    """220x: GM->L1/GM->UB on MTE2, UB->GM on MTE3, L1->L0A/B on MTE1, L0C->GM on FIX;
    GM->UB at 8 KiB gives the msKPP 910b1 value 24.8 B/cyc (matches calibration H2)."""
    soc = load_soc("Ascend910B2")
    aic, aiv = soc.core("aic"), soc.core("aiv")
    assert aic.transfer("GM", "L1").pipe == "MTE2"
    assert aic.transfer("L1", "L0A").pipe == "MTE1" and aic.transfer("L1", "L0B").pipe == "MTE1"
    assert aic.transfer("L0C", "GM").pipe == "FIX" and aic.transfer("L1", "BT").pipe == "MTE1"
    assert aiv.transfer("GM", "UB").pipe == "MTE2" and aiv.transfer("UB", "GM").pipe == "MTE3"
    assert aiv.transfer("GM", "UB").bytes_per_cycle(8192) == 24.8
    assert aic.transfer("L1", "L0A").peak_bytes_per_cycle == 256.0
    assert aic.transfer("L1", "L0A").latency_cycles == 28
    assert aiv.transfer("GM", "L1") is None and aic.transfer("GM", "UB") is None


def test_shipped_curves_never_exceed_their_peak():
    """On every shipped SoC and path, the curve stays at or below the declared peak."""
    from npusim.hw import list_socs

    for name in list_socs():
        soc = load_soc(name)
        for kind in soc.core_counts():
            for key, t in soc.core(kind).transfers.items():
                for size in (1, 512, 4096, 65536, 1 << 22):
                    assert 0 < t.bytes_per_cycle(size) <= t.peak_bytes_per_cycle, (name, key)
