"""``torch_npu.testing.common_utils`` helpers the operator tests import, in npusim's words."""

from __future__ import annotations

import os
import unittest
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    import torch


class _NpuTensor(Protocol):
    """A tensor with the ``.npu()`` the drop-in adds to torch.Tensor (torch's stubs lack it)."""

    def npu(self, device: Any = None) -> torch.Tensor: ...


def get_npu_device() -> str:
    """``npu:<SET_NPU_DEVICE>`` (default ``npu:0``)."""
    index = os.environ.get("SET_NPU_DEVICE")
    return "npu:0" if index is None else f"npu:{index}"


def set_npu_device() -> str:
    from npusim.torch_npu import npu

    device = get_npu_device()
    npu.set_device(device)
    return device


def device_family(name: str) -> str:
    """The family string torch_npu's device checks compare: the first 10 characters
    (``Ascend910B``, ``Ascend310P``), 12 for ``Ascend910_93``-style names, 9 for Ascend950."""
    short = name[:10]
    if short == "Ascend910_":
        return name[:12]
    if short.startswith("Ascend950"):
        return name[:9]
    return short


class SupportedDevices:
    """Skip the test unless the simulated device's family is in the list."""

    def __init__(self, supported_devices: list[str]) -> None:
        self.supported_devices = supported_devices

    def __call__(self, fn: Any) -> Any:
        @wraps(fn)
        def run(test: Any, *args: Any, **kwargs: Any) -> Any:
            from npusim.torch_npu import npu

            family = device_family(npu.get_device_name(0))
            if family not in self.supported_devices:
                raise unittest.SkipTest(f"only for {self.supported_devices}; the simulated "
                                        f"device is {family}")
            return fn(test, *args, **kwargs)

        return run


def create_common_tensor(item: Any, min_value: float, max_value: float,
                         device: Any = None) -> tuple[Any, Any]:
    """(cpu tensor, npu tensor) of uniform values for ``item = [dtype, format, shape]``; the NPU
    copy is cast to ``format`` unless it is -1."""
    import numpy as np
    import torch

    from npusim.torch_npu import npu_format_cast

    dtype, npu_format, shape = item[0], item[1], item[2]
    values = np.random.uniform(min_value, max_value, shape).astype(dtype)
    cpu = torch.from_numpy(values)
    dev = cast(_NpuTensor, torch.from_numpy(values.copy())).npu()
    if npu_format != -1:
        dev = npu_format_cast(dev, npu_format)
    return cpu, dev
