"""Drop-in mode: run an unmodified torch_npu script on CPU against npusim.

    import npusim.dropin; npusim.dropin.install(soc="Ascend310P3")   # or NPUSIM_SOC=...
    python -m npusim.dropin [--soc NAME] script.py [args...]          # or: -m module [args...]

``install()`` (opt-in, idempotent) makes:

- ``import torch_npu`` (and ``torch_npu.npu``, ``torch_npu.contrib[.module]``,
  ``torch_npu.testing[.testcase|.common_utils]``) resolve to :mod:`npusim.torch_npu`: the
  operators npusim models, bit-exact for the chosen SoC. An attribute npusim lacks raises
  AttributeError naming it;
- ``torch.device("npu")`` valid (torch's privateuse1 backend renamed to ``npu``), ``torch.npu``
  the CPU no-op device module :mod:`npusim.torch_npu.npu`;
- ``tensor.npu()``, ``tensor.to("npu")``, ``module.npu()`` and ``device="npu"`` in factory
  functions produce CPU tensors whose storage carries an NPU descriptor (format, base sizes;
  :mod:`npusim.torch_npu._tensor`), ``.cpu()`` of such a tensor a plain copy.

It refuses to run when a real ``torch_npu`` is importable: it never shadows the real one. The
simulated SoC is ``soc=``, else ``NPUSIM_SOC``, else ``Ascend910B2``; :func:`npusim.torch_npu.
set_soc` changes it later.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any, cast

_installed = False
_ALIASES = {
    "torch_npu": "npusim.torch_npu",
    "torch_npu.npu": "npusim.torch_npu.npu",
    "torch_npu.contrib": "npusim.torch_npu.contrib",
    "torch_npu.contrib.module": "npusim.torch_npu.contrib.module",
    "torch_npu.testing": "npusim.torch_npu.testing",
    "torch_npu.testing.testcase": "npusim.torch_npu.testing.testcase",
    "torch_npu.testing.common_utils": "npusim.torch_npu.testing.common_utils",
}


def is_installed() -> bool:
    return _installed


def _real_torch_npu() -> str | None:
    """Where a real torch_npu lives, or None."""
    mod = sys.modules.get("torch_npu")
    if mod is not None:
        return None if mod.__name__ == "npusim.torch_npu" else str(getattr(mod, "__file__", mod))
    spec = importlib.util.find_spec("torch_npu")
    return None if spec is None else str(spec.origin)


def _is_npu_device(dev: Any) -> bool:
    if isinstance(dev, str):
        return dev == "npu" or dev.startswith("npu:")
    return getattr(dev, "type", None) == "npu"


def as_npu(t: Any, copy: bool = True) -> Any:
    """``t`` on the simulated NPU: itself when its storage already has a descriptor, else a
    contiguous copy (``copy=False``: ``t`` itself, registered) with the default format."""
    from npusim.torch_npu._tensor import is_npu, register

    if is_npu(t):
        return t
    if copy:
        with _no_mode():
            out = t.detach().clone(memory_format=_contiguous()).requires_grad_(t.requires_grad)
        return register(out)
    return register(t)


def _contiguous() -> Any:
    import torch

    return torch.contiguous_format


class _no_mode:
    """Run torch calls with the device mode suspended."""

    def __enter__(self) -> None:
        import torch

        self._guard = torch._C.DisableTorchFunction()
        self._guard.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._guard.__exit__(*exc)


def _to_cpu_copy(t: Any) -> Any:
    from npusim.torch_npu._tensor import is_npu

    if not is_npu(t):
        return t
    with _no_mode():
        return t.detach().clone().requires_grad_(t.requires_grad)


def _make_mode() -> Any:
    import torch
    from torch.overrides import TorchFunctionMode

    from npusim.torch_npu.npu import _check_index as check_index

    tensor_to = torch.Tensor.to
    tensor_cpu = torch.Tensor.cpu

    class NpuDeviceMode(TorchFunctionMode):
        """Rewrites ``device="npu"`` to CPU and registers the results as NPU tensors."""

        def __torch_function__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            kwargs = dict(kwargs or {})
            to_npu = to_cpu = False
            dev = kwargs.get("device")
            if dev is not None and _is_npu_device(dev):
                check_index(dev)  # device="npu:7" as x.npu(7): one simulated NPU
                kwargs["device"] = "cpu"
                to_npu = True
            if func is tensor_to:
                args = list(args)
                for i, a in enumerate(args[1:], start=1):
                    if isinstance(a, str | torch.device):
                        if _is_npu_device(a):
                            check_index(a)
                            args[i] = "cpu"
                            to_npu = True
                        elif str(a).startswith("cpu"):
                            to_cpu = True
                if str(kwargs.get("device", "")).startswith("cpu") and not to_npu:
                    to_cpu = True
                args = tuple(args)
            if func is tensor_cpu:
                return _to_cpu_copy(args[0])
            out = func(*args, **kwargs)
            if to_cpu and isinstance(out, torch.Tensor) and out is args[0]:
                return _to_cpu_copy(out)
            if to_npu and isinstance(out, torch.Tensor):
                src = args[0] if args and isinstance(args[0], torch.Tensor) else None
                shared = src is not None and out.untyped_storage().data_ptr() == \
                    src.untyped_storage().data_ptr()
                return as_npu(out, copy=shared)
            return out

    return NpuDeviceMode()


def _tensor_npu(self: Any, device: Any = None, non_blocking: bool = False,
                memory_format: Any = None) -> Any:
    from npusim.torch_npu.npu import _check_index

    _check_index(device)
    return as_npu(self)


def _module_npu(self: Any, device: Any = None) -> Any:
    from npusim.torch_npu.npu import _check_index

    _check_index(device)
    return self._apply(lambda t: as_npu(t))


def install(soc: str | None = None) -> None:
    """Enter the drop-in mode (see the module docstring); ``soc`` picks the simulated SoC."""
    global _installed
    from npusim.torch_npu import _state

    if soc is not None:
        _state.set_soc(soc)
    _state.current_soc()  # validates NPUSIM_SOC now rather than at the first call
    if _installed:
        return
    real = _real_torch_npu()
    if real is not None:
        raise RuntimeError(f"a real torch_npu is installed ({real}); npusim's drop-in mode never "
                           "shadows it - run without it, or use npusim.torch_npu directly")
    try:
        import torch
    except ImportError as exc:
        raise RuntimeError("npusim's drop-in mode needs torch: pip install -e \".[torch]\" in "
                           "the npusim checkout") \
            from exc
    from torch.utils.backend_registration import rename_privateuse1_backend

    from npusim.torch_npu import npu

    if torch._C._get_privateuse1_backend_name() != "npu":
        rename_privateuse1_backend("npu")
    if not hasattr(torch, "npu"):  # torch._register_device_module has no annotations
        cast(Callable[[str, Any], None], torch._register_device_module)("npu", npu)
    # torch_npu's methods, which torch's classes (and stubs) do not have
    methods: tuple[tuple[type, str, object], ...] = (
        (torch.Tensor, "npu", _tensor_npu),
        (torch.Tensor, "is_npu", property(lambda self: _is_registered(self))),
        (torch.nn.Module, "npu", _module_npu))
    for cls, name, method in methods:
        setattr(cls, name, method)
    for alias, target in _ALIASES.items():
        sys.modules[alias] = importlib.import_module(target)
    mode = _make_mode()
    mode.__enter__()
    _installed = True


def _is_registered(t: Any) -> bool:
    from npusim.torch_npu._tensor import is_npu

    return is_npu(t)


USAGE = "usage: python -m npusim.dropin [--soc NAME] (script.py | -m module) [args...]"


def _error(message: str) -> int:
    """A set-up error of the drop-in launcher: one line on stderr, status 2 (no traceback)."""
    print(f"npusim.dropin: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m npusim.dropin [--soc NAME] script.py [args]`` or ``... -m module [args]``.

    What goes wrong before the script starts (usage, an unknown SoC, no torch, a real
    torch_npu, a missing script or module) is one ``npusim.dropin: error:`` line and status 2;
    the script's own exceptions propagate as usual."""
    import importlib.util
    import runpy
    from pathlib import Path

    args = list(sys.argv[1:] if argv is None else argv)
    soc = None
    if args[:1] == ["--soc"]:
        if len(args) < 2:
            return _error("--soc needs a SoC name; " + USAGE)
        soc, args = args[1], args[2:]
    elif args and args[0].startswith("--soc="):
        soc, args = args[0].split("=", 1)[1], args[1:]
    if not args:
        return _error(USAGE)
    if args[0] == "-m":
        if len(args) < 2:
            return _error("-m needs a module name; " + USAGE)
        try:
            found = importlib.util.find_spec(args[1]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return _error(f"no module named {args[1]!r}")
    elif not Path(args[0]).is_file():
        return _error(f"{args[0]}: no such script file")
    try:
        install(soc)
    except (RuntimeError, ValueError) as exc:  # no torch, a real torch_npu, an unknown SoC
        return _error(str(exc))
    if args[0] == "-m":
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
