"""Serving-code call patterns (as vllm-ascend's linear quantisation methods make them, written
fresh) run unmodified through the drop-in mode on an A2 and a 310P SoC: argument kinds, dtypes,
the (out, in) -> (in, out) transpose + FRACTAL_NZ cast of weights, flattened scales, and what
each SoC refuses or does not model. The script runs at the default fidelity, as a user's would
(``program``: every operator output, format casts included, from a program run)."""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

SCRIPT = textwrap.dedent('''
    import torch, torch_npu
    ON_310P = torch_npu.npu.get_device_name(0).startswith("Ascend310P")
    act = torch.float16 if ON_310P else torch.bfloat16
    torch.manual_seed(0)
    out_f, in_f, m = 64, 128, 4

    def to_nz(w):  # what a serving stack does after loading when NZ is on (always on 310P)
        return torch_npu.npu_format_cast(w, 29)

    def report(name, fn):
        try:
            fn()
            print(name, "ok")
        except NotImplementedError as exc:
            print(name, "not-modelled", str(exc).split(":")[0])
        except (ValueError, TypeError) as exc:
            print(name, "refused", type(exc).__name__)

    # W8A16: int8 weight, per-channel (out, 1) scale / offset flattened, x in fp16/bf16
    def w8a16():
        layer = torch.nn.Module()
        layer.weight = torch.nn.Parameter(torch.randint(-8, 8, (out_f, in_f), dtype=torch.int8),
                                          requires_grad=False)
        layer.weight_scale = torch.nn.Parameter(torch.rand(out_f, 1).to(act) / 16, False)
        layer.weight_offset = torch.nn.Parameter(torch.randint(-3, 3, (out_f, 1)).to(act), False)
        layer = layer.npu()
        layer.weight.data = layer.weight.data.transpose(0, 1).contiguous()
        layer.weight.data = to_nz(layer.weight.data)
        assert torch_npu.get_npu_format(layer.weight) == 29
        layer.weight_scale.data = torch.flatten(layer.weight_scale.data)
        layer.weight_offset.data = torch.flatten(layer.weight_offset.data)
        x3 = torch.randn(2, m // 2, in_f).to(act).npu()  # (batch, seq, hidden), reshaped
        x = x3.reshape(-1, x3.shape[-1])
        y = torch_npu.npu_weight_quant_batchmatmul(x=x, weight=layer.weight,
                                                   antiquant_scale=layer.weight_scale,
                                                   antiquant_offset=layer.weight_offset,
                                                   bias=None)
        assert y.reshape(x3.shape[0], x3.shape[1], -1).shape == (2, m // 2, out_f)
        want = x.float() @ ((layer.weight.float() + layer.weight_offset.float())
                            * layer.weight_scale.float())
        assert y.shape == (m, out_f) and y.dtype == act
        assert torch.allclose(y.float(), want, rtol=2e-2, atol=2e-2)

    # W4A16 (GPTQ-style keywords): int4 values packed by npu_convert_weight_to_int4pack,
    # per-group scale / offset, a bf16 model's bias passed as float32
    def w4a16():
        g = 32
        w = torch.randint(-8, 8, (in_f, out_f), dtype=torch.int32)
        packed = torch_npu.npu_convert_weight_to_int4pack(w.npu())
        scale = (torch.rand(in_f // g, out_f) / 8).to(act).npu()
        offset = torch.randint(-2, 2, (in_f // g, out_f)).to(act).npu()
        bias = torch.randn(out_f).to(act).npu()
        bias = bias.float() if bias.dtype == torch.bfloat16 else bias
        x = torch.randn(m, in_f).to(act).npu()
        y = torch_npu.npu_weight_quant_batchmatmul(x, packed, antiquant_scale=scale,
                                                   antiquant_offset=offset,
                                                   antiquant_group_size=g, bias=bias)
        deq = (w.float() + offset.float().repeat_interleave(g, 0)) * \\
            scale.float().repeat_interleave(g, 0)
        want = x.float() @ deq + bias.float()
        assert torch.allclose(y.float(), want, rtol=2e-2, atol=2e-2)

    # W8A8 static: per-tensor input scale / int8 offset in the params dtype repeated over the
    # hidden size, npu_quantize with the reciprocal, transposed + NZ weight, int32 quant_bias,
    # deq_scale float32 (bf16 model) or int64 (fp16 model: the encoded FixPipe parameter)
    def w8a8_static():
        w = torch.randint(-8, 8, (out_f, in_f), dtype=torch.int8).npu()
        w = to_nz(w.transpose(0, 1).contiguous())
        input_scale = torch.tensor([0.5]).to(act).repeat(in_f).npu()
        input_offset = torch.tensor([3], dtype=torch.int8).repeat(in_f).to(act).npu()
        xf = (torch.randint(-40, 40, (m, in_f)) / 2).to(act).npu()
        qx = torch_npu.npu_quantize(xf, 1 / input_scale, input_offset, torch.qint8, -1, False)
        assert qx.dtype == torch.int8 and torch.equal(qx.float(), xf.float() * 2 + 3)
        quant_bias = torch.randint(-50, 50, (out_f,), dtype=torch.int32).npu()
        deq = torch.rand(out_f) / 64
        deq_scale = deq.npu() if act == torch.bfloat16 else \\
            torch_npu.npu_trans_quant_param(deq.npu())
        y = torch_npu.npu_quant_matmul(qx, w, deq_scale, bias=quant_bias, output_dtype=act)
        acc = qx.int() @ w.int() + quant_bias
        assert y.dtype == act and torch.allclose(y.float(), acc.float() * deq, rtol=1e-2,
                                                 atol=1e-2)

    # W8A8 dynamic: npu_dynamic_quant per-token int8 activations, per-channel scale in the
    # params dtype (flattened), transposed + NZ weight, pertoken_scale, output x.dtype
    def w8a8_dynamic():
        layer = torch.nn.Module()
        layer.weight = torch.nn.Parameter(torch.randint(-8, 8, (out_f, in_f), dtype=torch.int8),
                                          requires_grad=False)
        layer.weight_scale = torch.nn.Parameter((torch.rand(out_f, 1) / 64).to(act), False)
        layer = layer.npu()
        layer.weight.data = to_nz(layer.weight.data.transpose(0, 1).contiguous())
        layer.weight_scale.data = layer.weight_scale.data.flatten()
        x = (torch.randn(m, in_f) * 3).to(act).npu()
        qx, pertoken = torch_npu.npu_dynamic_quant(x, dst_type=torch.int8)
        assert qx.dtype == torch.int8 and qx.shape == x.shape and pertoken.shape == (m,)
        assert pertoken.dtype == torch.float32 and int(qx.abs().max()) == 127
        bias = torch.randn(out_f).to(act).npu()
        y = torch_npu.npu_quant_matmul(qx, layer.weight, layer.weight_scale,
                                       pertoken_scale=pertoken, bias=bias, output_dtype=x.dtype)
        acc = (qx.int() @ layer.weight.int()).float()
        want = (acc * layer.weight_scale.float() * pertoken[:, None] + bias.float()).to(act)
        assert torch.equal(y.view(torch.int16), want.view(torch.int16))

    print("fidelity", torch_npu.current_fidelity())
    for name, fn in (("w8a16", w8a16), ("w4a16", w4a16), ("w8a8_static", w8a8_static),
                     ("w8a8_dynamic", w8a8_dynamic)):
        report(name, fn)
''')


def _run(tmp_path, soc: str) -> dict[str, str]:
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "NPUSIM_FIDELITY"}  # the default
    done = subprocess.run([sys.executable, "-m", "npusim.dropin", "--soc", soc, str(script)],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = {line.split()[0]: " ".join(line.split()[1:]) for line in done.stdout.splitlines()}
    assert out.pop("fidelity") == "program"
    return out


def test_patterns_on_a2(tmp_path):
    """On Ascend910B2 all four linear methods run and match an independent computation
    (W8A8 dynamic, npu_dynamic_quant included, bit for bit: fp32 acc * scale * pertoken + bias,
    RINT to bf16)."""
    assert _run(tmp_path, "Ascend910B2") == {
        "w8a16": "ok", "w4a16": "ok", "w8a8_static": "ok", "w8a8_dynamic": "ok"}


@pytest.fixture(scope="module")
def on_310p(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("p310"), "Ascend310P3")


def test_patterns_on_310p_refusals(on_310p):
    """On Ascend310P3 int4 weights are refused and npu_dynamic_quant (A2 / A3 only) is refused
    as the docs say."""
    assert on_310p["w4a16"].startswith("refused")
    assert on_310p["w8a8_dynamic"].startswith("refused")


def test_patterns_on_310p_w8a8_static(on_310p):
    """W8A8 static (npu_quantize, transposed + NZ weight, int32 quant_bias, the int64 parameter
    of npu_trans_quant_param, fp16 output) runs on 310P: the L0C -> UB VDEQ16 copy under the
    descriptor's declared rounding model, close to the float reference."""
    assert on_310p["w8a8_static"] == "ok"


def test_patterns_on_310p_w8a16(on_310p):
    """W8A16 with the serving layout ((in, out) contiguous weight cast to NZ, fp16 x, flattened
    per-channel scale and offset) runs on 310P and matches the float reference."""
    assert on_310p["w8a16"] == "ok"
