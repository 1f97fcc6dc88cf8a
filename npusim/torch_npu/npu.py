"""``torch.npu`` / ``torch_npu.npu`` for the drop-in mode: device basics as CPU no-ops.

There is one simulated device, 0, named after the simulated SoC (``get_device_name`` returns
e.g. ``Ascend910B2``, so torch_npu tests' device checks see the SoC npusim simulates).
Synchronisation, streams and caches are no-ops because every npusim call completes on return.
Anything else raises AttributeError naming the missing attribute.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

config = SimpleNamespace(allow_internal_format=True)
matmul = SimpleNamespace(allow_hf32=False)
conv = SimpleNamespace(allow_hf32=True)
_device = 0


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1


def current_device() -> int:
    return _device


def _check_index(device: Any) -> int:
    if device is None:
        return _device
    text = str(device)
    index = text.split(":", 1)[1] if ":" in text else (text if text.isdigit() else "0")
    if not text.startswith(("npu", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")) and \
            not hasattr(device, "type"):
        raise ValueError(f"device: {device!r} is not an NPU device")
    if int(index) != 0:
        raise ValueError(f"device: {device!r}; npusim simulates one NPU, device 0")
    return 0


def set_device(device: Any) -> None:
    _check_index(device)


def get_device_name(device: Any = None) -> str:
    from npusim.torch_npu._state import current_soc

    _check_index(device)
    return current_soc()


def get_soc_version() -> str:
    return get_device_name()


def synchronize(device: Any = None) -> None:
    """No-op: npusim calls complete before they return."""


def empty_cache() -> None:
    """No-op: there is no device memory pool."""


def manual_seed(seed: int) -> None:
    """No-op: the simulated device draws from torch's CPU generator, which torch.manual_seed
    seeds itself (and calls this hook for the custom device)."""


manual_seed_all = manual_seed


def memory_allocated(device: Any = None) -> int:
    return 0


class Stream:
    """A stream that runs everything immediately."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_stream(self, other: Any) -> None:
        pass


def current_stream(device: Any = None) -> Stream:
    return Stream()


def _is_in_bad_fork() -> bool:
    return False


def __getattr__(name: str) -> Any:
    raise AttributeError(f"torch.npu.{name} is not provided by npusim's drop-in mode (it models "
                         "devices as CPU no-ops: is_available, device_count, current_device, "
                         "set_device, get_device_name, synchronize, empty_cache, manual_seed, "
                         "Stream, current_stream, config, matmul)")
