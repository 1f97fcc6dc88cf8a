"""``torch_npu.testing.testcase`` for the drop-in mode: ``TestCase`` and ``run_tests``.

``assertRtolEqual(x, y, prec=1e-4, prec16=1e-3)`` applies torch_npu's comparison rule:
bf16 pairs go through ``torch.allclose(rtol=atol=prec16)``; otherwise both become numpy arrays
of the same shape and dtype, and an element passes when ``|y - x| <= p`` (absolute) or
``|y - x| / (max(|x|, |y|) + tiny) <= p`` (relative), with ``p = prec16`` and
``tiny = 6e-8`` for float16, else ``p = prec`` and ``tiny = 1e-9``; the call fails only
when both tests fail for more than ``size * p`` elements. NaNs must sit in the same places.
``assertEqual`` on tensors compares the maximum absolute difference with ``prec``
(default 1e-5) after a dtype promotion.
"""

from __future__ import annotations

import operator
import os
import random
import unittest
from collections.abc import Sequence
from numbers import Number
from typing import Any

import numpy as np


def run_tests() -> None:
    unittest.main()


_RTOL_DTYPES = (np.bool_, np.uint16, np.int16, np.int32, np.float16, np.float32, np.int8,
                np.uint8, np.int64, np.float64)


class TestCase(unittest.TestCase):
    """unittest.TestCase with torch_npu's seeding and comparison helpers."""

    _precision = 1e-5
    maxDiff = None
    npu_device: str  # set by setUpClass

    @property
    def precision(self) -> float:
        return self._precision

    @classmethod
    def setUpClass(cls) -> None:
        from npusim.torch_npu.testing.common_utils import set_npu_device

        cls.npu_device = set_npu_device()

    def setUp(self) -> None:
        import torch

        seed = int(os.getenv("SEED", "666"))
        torch.manual_seed(seed)
        random.seed(seed)

    def _close(self, x: np.ndarray, y: np.ndarray, p: float, tiny: float) -> None:
        nan = np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, bool)
        if not np.array_equal(nan, np.isnan(y) if y.dtype.kind == "f" else nan):
            self.fail("NaNs differ")
        diff = y.astype(np.float64) - x.astype(np.float64)
        diff[nan] = 0
        err = np.abs(diff)
        deno = np.maximum(np.abs(x.astype(np.float64)), np.abs(y.astype(np.float64)))
        abs_ok = err <= p
        rel_ok = err / (deno + tiny) <= p
        if not rel_ok.all() and not abs_ok.all():
            limit = x.size * p
            if np.sum(~rel_ok) > limit and np.sum(~abs_ok) > limit:
                self.fail("result error")

    def assertRtolEqual(self, x: Any, y: Any, prec: float = 1.0e-4, prec16: float = 1.0e-3,
                        auto_trans_dtype: bool = False, message: Any = None) -> None:
        import torch

        if isinstance(x, Sequence) and isinstance(y, Sequence):
            for a, b in zip(x, y, strict=False):
                self.assertRtolEqual(a, b, prec, prec16, auto_trans_dtype, message)
            return
        if isinstance(x, torch.Tensor) and isinstance(y, Sequence):
            y = torch.as_tensor(y, dtype=x.dtype)
        elif isinstance(x, Sequence) and isinstance(y, torch.Tensor):
            x = torch.as_tensor(x, dtype=y.dtype)
        if torch.is_tensor(x) and torch.is_tensor(y):
            if auto_trans_dtype:
                x = x.to(y.dtype)
            if x.dtype == torch.bfloat16 and y.dtype == torch.bfloat16:
                if x.shape != y.shape:
                    self.fail("shape error!")
                if not torch.allclose(x.cpu(), y.cpu(), rtol=prec16, atol=prec16):
                    self.fail("result error!")
                return
            x = x.detach().cpu().numpy()
            y = y.detach().cpu().numpy()
        elif isinstance(x, Number) and isinstance(y, Number):
            x, y = np.array(x), np.array(y)
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            self.fail("shape error")
        if x.dtype != y.dtype:
            self.fail("dtype error")
        if x.dtype not in _RTOL_DTYPES:
            self.fail(f"dtype {x.dtype} is not one assertRtolEqual compares")
        if x.dtype == np.bool_:
            if not np.array_equal(x, y):
                self.fail("result error")
        elif x.dtype == np.float16:
            self._close(x, y, prec16, 6e-8)
        else:
            self._close(x, y, prec, 10e-10)

    def assertEqual(self, x: Any, y: Any, prec: Any = None, message: Any = "",
                    allow_inf: bool = False, exact_dtype: Any = None) -> None:
        import torch

        if isinstance(prec, str) and not message:
            message, prec = prec, None
        prec = self.precision if prec is None else prec
        if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor):
            super().assertEqual(tuple(x.shape), tuple(y.shape), message)
            if x.numel() == 0:
                return
            a = x.detach().cpu()
            if a.dtype in (torch.float16, torch.bfloat16):
                a = a.float()
            b = y.detach().cpu().to(a.dtype)
            if a.dtype == torch.bool:
                a, b = a.int(), b.int()
            diff = (a - b).abs() if a.dtype.is_floating_point or a.dtype.is_signed else a - b
            if a.dtype.is_floating_point:
                nan = torch.isnan(a)
                self.assertTrue(torch.equal(nan, torch.isnan(b)), message)
                diff[nan] = 0
            self.assertLessEqual(float(diff.max()), prec, message)
            return
        if isinstance(x, torch.Tensor) and x.numel() == 1 and isinstance(y, Number):
            x = x.item()
        if isinstance(y, torch.Tensor) and y.numel() == 1 and isinstance(x, Number):
            y = y.item()
        if isinstance(x, Number) and isinstance(y, Number) and not isinstance(x, bool) and \
                not isinstance(y, bool):
            # operator.sub: x - y (numbers.Number declares no arithmetic)
            self.assertLessEqual(abs(operator.sub(x, y)), prec, message)
            return
        super().assertEqual(x, y, message or None)
