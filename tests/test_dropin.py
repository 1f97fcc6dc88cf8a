"""Drop-in mode: an unmodified torch_npu-style script runs on CPU against npusim (each script
runs in its own interpreter because install() patches torch for the whole process)."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")


def _run(tmp_path, body: str, *args: str, env_soc: str | None = None) -> str:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = None
    if env_soc is not None:
        import os

        env = {**os.environ, "NPUSIM_SOC": env_soc}
    done = subprocess.run([sys.executable, "-m", "npusim.dropin", *args, str(script)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_devices_are_cpu_no_ops_and_torch_npu_resolves(tmp_path):
    """import torch_npu works, .npu() / .to("npu") / device="npu" give CPU tensors that report
    NPU formats, torch.npu basics answer, and .cpu() is a plain copy."""
    out = _run(tmp_path, """
        import torch, torch_npu
        from torch_npu.contrib.module import LinearWeightQuant
        from torch_npu.testing.testcase import TestCase
        a = torch.rand(4, 32).half().npu()
        b = torch.zeros(2, 3, device="npu")
        c = torch.rand(16, 32).to("npu")
        assert torch.device("npu:0").type == "npu"
        assert torch.npu.is_available() and torch.npu.device_count() == 1
        torch.npu.synchronize(); torch.npu.set_device(0)
        z = torch_npu.npu_format_cast(c, 29)
        assert torch_npu.get_npu_format(z) == 29 and z.npu() is z
        assert torch_npu.get_npu_format(z.cpu()) == 2 and torch.equal(z.cpu(), c)
        assert a.is_npu and b.is_npu and not torch.rand(2).is_npu
        print(torch_npu.npu.get_device_name(0))
    """)
    assert out.strip() == "Ascend910B2"


def test_soc_from_environment_or_flag(tmp_path):
    """NPUSIM_SOC or --soc picks the simulated device name."""
    body = "import torch_npu\nprint(torch_npu.npu.get_device_name(0))\n"
    assert _run(tmp_path, body, env_soc="Ascend310P3").strip() == "Ascend310P3"
    assert _run(tmp_path, body, "--soc", "Ascend910B4").strip() == "Ascend910B4"


def test_missing_names_raise_naming_them(tmp_path):
    """Anything npusim lacks raises AttributeError naming the attribute."""
    out = _run(tmp_path, """
        import torch, torch_npu
        for obj, name in ((torch_npu, "npu_rms_norm"), (torch.npu, "mem_get_info")):
            try:
                getattr(obj, name)
            except AttributeError as exc:
                print(name in str(exc))
    """)
    assert out.split() == ["True", "True"]


def test_testcase_rtol_rule(tmp_path):
    """assertRtolEqual passes within prec (absolute or relative) and fails beyond it; float16
    uses prec16."""
    out = _run(tmp_path, """
        import numpy as np, torch
        from torch_npu.testing.testcase import TestCase
        t = TestCase()
        t.assertRtolEqual(np.float32([1.0, 2.0]), np.float32([1.00005, 2.0]))
        t.assertRtolEqual(torch.tensor([100.0], dtype=torch.float16),
                          torch.tensor([100.05], dtype=torch.float16))
        for x, y in ((np.float32([1.0]), np.float32([1.01])),
                     (np.float16([1.0]), np.float16([1.01]))):
            try:
                t.assertRtolEqual(x, y)
                print("passed")
            except AssertionError:
                print("failed")
    """)
    assert out.split() == ["failed", "failed"]


def test_refuses_to_shadow_a_real_torch_npu(tmp_path):
    """With a torch_npu package importable, install() raises instead of replacing it."""
    fake = tmp_path / "torch_npu"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    script = tmp_path / "s.py"
    script.write_text("import npusim.dropin\nnpusim.dropin.install()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert done.returncode != 0 and "a real torch_npu is installed" in done.stderr
