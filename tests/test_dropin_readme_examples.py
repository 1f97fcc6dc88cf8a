"""The README's "run your torch_npu script on CPU" examples run through the drop-in mode as
written and print what their comments say; their results equal the numpy API's bits."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    text = README.read_text()
    section = text.split("## Run your torch_npu script on CPU", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def _run(tmp_path, body: str) -> str:
    script = tmp_path / "example.py"
    script.write_text(body)
    done = subprocess.run([sys.executable, "-m", "npusim.dropin", str(script)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_section_has_both_examples():
    """Rule: the section keeps its two worked examples (a W8A8 op call, a serving layer)."""
    blocks = _examples()
    assert len(blocks) == 2 and "npu_quant_matmul" in blocks[0]
    assert "npu_dynamic_quant" in blocks[1]


def test_w8a8_example_prints_its_comments(tmp_path):
    """Rule: the first example prints the logical NZ shape, format 29, fp16 and the SoC, and y
    is the bits of the numpy API on the same operands."""
    body = _examples()[0] + (
        "import numpy as np\n"
        "from npusim.torch_npu import npu_quant_matmul as np_qmm, npu_storage_array\n"
        "from npusim.layouts import FormattedArray\n"
        "wz = FormattedArray(npu_storage_array(w), 29, tuple(w.shape))\n"
        "ref = np_qmm(x.numpy(), wz, scale.numpy(), output_dtype='float16')\n"
        "print('same bits', np.array_equal(y.numpy().view(np.uint16), ref.view(np.uint16)))\n")
    out = _run(tmp_path, body).splitlines()
    assert out[0] == "torch.Size([320, 2560]) 29"
    assert out[1] == "torch.float16 torch.Size([8, 2560]) Ascend910B2"
    assert out[2] == "same bits True"


def test_serving_example_prints_its_comment(tmp_path):
    """Rule: the W8A8-dynamic layer prints the dtypes and shapes its comment gives."""
    block = _examples()[1]
    comment = block.strip().splitlines()[-1].removeprefix("# ")
    assert _run(tmp_path, block).strip() == comment
