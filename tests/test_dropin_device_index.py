"""The drop-in mode simulates one NPU: ``x.npu(7)`` was refused while ``x.to("npu:3")`` and
``torch.zeros(3, device="npu:7")`` were silently accepted (as device 0); every form now refuses
an index other than 0 the same way (own interpreter: install() patches torch process-wide)."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent('''
    import torch, torch_npu
    x = torch.zeros(3)
    calls = {
        "npu(7)": lambda: x.npu(7),
        "to('npu:3')": lambda: x.to("npu:3"),
        "to(device('npu:3'))": lambda: x.to(torch.device("npu", 3)),
        "to(device='npu:2')": lambda: x.to(device="npu:2"),
        "zeros(device='npu:7')": lambda: torch.zeros(3, device="npu:7"),
        "zeros(device='npu:0')": lambda: torch.zeros(3, device="npu:0"),
        "to('npu')": lambda: x.to("npu"),
    }
    for name, fn in calls.items():
        try:
            fn()
            print(name, "ok")
        except ValueError as exc:
            print(name, "refused", "simulates one NPU, device 0" in str(exc))
''')


def test_every_form_of_a_device_index_other_than_0_is_refused(tmp_path):
    script = tmp_path / "dev.py"
    script.write_text(SCRIPT)
    done = subprocess.run([sys.executable, "-m", "npusim.dropin", str(script)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    got = dict(line.rsplit(" ", 1) if line.endswith("ok") else
               (line.split(" refused ")[0], "refused " + line.split(" refused ")[1])
               for line in done.stdout.splitlines())
    assert got == {"npu(7)": "refused True", "to('npu:3')": "refused True",
                   "to(device('npu:3'))": "refused True", "to(device='npu:2')": "refused True",
                   "zeros(device='npu:7')": "refused True", "zeros(device='npu:0')": "ok",
                   "to('npu')": "ok"}
