"""Export: every tiny preset to TorchScript and ONNX, with parity against eager PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from ocr.charset import Charset, load_charset
from ocr.data.images import Preprocess
from ocr.export import assert_parity, check_parity, export_recognizer
from ocr.models.recognition import RECOGNIZERS

CHARSET = load_charset("digits")
NC = CHARSET.num_classes  # 11
TINY = ["tiny_crnn", "tiny_trbc", "tiny_trba", "tiny_fast"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _export(name, path, formats=("torchscript", "onnx")):
    torch.manual_seed(0)
    model = RECOGNIZERS.create(name, num_classes=NC)
    meta = {"format": "ocr-on-ray/1", "task": "recognition", "arch": model.arch_config(),
            "charset": CHARSET.to_json(), "preprocess": Preprocess().to_json()}
    return model, meta, export_recognizer(model, meta, path, formats)


def _onnx(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", TINY)
def test_export_parity(name, tmp_path):
    model, meta, paths = _export(name, tmp_path)
    assert paths == {"torchscript": str(tmp_path / "model.torchscript.pt"),
                     "onnx": str(tmp_path / "model.onnx")}
    images = torch.randn(3, 1, 32, 100, generator=torch.Generator().manual_seed(1))
    report = check_parity(model, tmp_path, images)
    assert set(report) == {"torchscript", "onnx"}
    for fmt, r in report.items():
        assert r["max_abs_diff"] <= 1e-4 and r["same_decoding"], (fmt, r)
    assert_parity(report, atol=1e-4)

    saved = json.loads((tmp_path / "model.json").read_text())
    for key in ("format", "task", "arch", "charset", "preprocess"):
        assert saved[key] == meta[key]
    assert "export" not in meta  # meta is not modified
    for fmt in ("torchscript", "onnx"):
        sec = saved["export"][fmt]
        assert sec["file"] == paths[fmt].rsplit("/", 1)[1]
        assert sec["input"]["name"] == "images" and sec["output"]["name"] == "outputs"
        assert sec["input"]["shape"][0] == "B" and sec["dtype"] == "float32"
        assert sec["torch"] == torch.__version__
    assert saved["export"]["onnx"]["opset"] >= 17

    # Other batch sizes (and widths where dynamic) run through both exported files.
    dynamic_width = saved["export"]["onnx"]["input"]["shape"][3] == "W"
    assert dynamic_width == (name in ("tiny_crnn", "tiny_fast"))
    sess, ts = _onnx(tmp_path / "model.onnx"), torch.jit.load(paths["torchscript"])
    for batch in (1, 5):
        x = torch.randn(batch, 1, 32, 64 if dynamic_width else 100)
        with torch.no_grad():
            eager, got_ts = model(x), ts(x)
        got = sess.run(["outputs"], {"images": x.numpy()})[0]
        if model.prediction == "ctc":
            assert got.shape == tuple(eager.shape) == (batch, model.time_steps(x.size(3)), NC)
            assert np.abs(got - eager.numpy()).max() <= 1e-4
            assert (got_ts - eager).abs().max() <= 1e-4
        else:  # fixed max_length + 1 steps; eager's (possibly early-stopped) steps are a prefix
            assert got.shape == tuple(got_ts.shape) == (batch, model.head.max_length + 1, NC + 1)
            s = eager.size(1)
            assert np.abs(got[:, :s] - eager.numpy()).max() <= 1e-4
            decoded = zip(model.decode(torch.from_numpy(got)), model.decode(eager), strict=True)
            for (i1, c1), (i2, c2) in decoded:
                assert i1 == i2 and c1 == pytest.approx(c2, rel=1e-3)

def test_attention_prefix_matches_early_stop(tmp_path):
    """A trained-looking head that emits [EOS] at once: eager stops after 1 step, export runs all."""
    torch.manual_seed(0)
    model = RECOGNIZERS.create("tiny_trba", num_classes=NC)
    with torch.no_grad():
        model.head.generator.bias[NC] = 50.0  # [EOS] dominates every step
    images = torch.randn(2, 1, 32, 100)
    export_recognizer(model, {"arch": model.arch_config()}, tmp_path, formats=["onnx"])
    with torch.no_grad():
        eager = model(images)
    assert eager.shape[1] == 1
    got = _onnx(tmp_path / "model.onnx").run(["outputs"], {"images": images.numpy()})[0]
    assert got.shape == (2, model.head.max_length + 1, NC + 1)
    assert np.abs(got[:, :1] - eager.numpy()).max() <= 1e-4
    assert_parity(check_parity(model, tmp_path, images))
    assert model.decode(eager) == [([], pytest.approx(1.0))] * 2


def test_a_jamo_head_exports_with_parity(tmp_path):
    """Hangul scored by jamo: the fixed jamo -> class matrix travels in both exported files."""
    charset = CHARSET.union(Charset.from_string("가각나한힣", spec="ko"))
    torch.manual_seed(0)
    model = RECOGNIZERS.create("tiny_fast", num_classes=charset.num_classes,
                               jamo="".join(charset.symbols))
    export_recognizer(model, {"arch": model.arch_config()}, tmp_path, formats=("torchscript", "onnx"))
    report = check_parity(model, tmp_path, torch.randn(2, 1, 32, 64))
    assert set(report) == {"torchscript", "onnx"}
    assert_parity(report, atol=1e-4)


def test_unknown_format_raises(tmp_path):
    model = RECOGNIZERS.create("tiny_fast", num_classes=NC)
    with pytest.raises(ValueError, match="unknown export format.*tflite"):
        export_recognizer(model, {"arch": model.arch_config()}, tmp_path, formats=("onnx", "tflite"))
    assert not (tmp_path / "model.onnx").exists()


def test_assert_parity_names_the_format():
    assert_parity({"onnx": {"max_abs_diff": 1e-6, "same_decoding": True}})
    with pytest.raises(ValueError, match="onnx: max_abs_diff 0.5"):
        assert_parity({"onnx": {"max_abs_diff": 0.5, "same_decoding": True}}, atol=1e-4)
    with pytest.raises(ValueError, match="torchscript: decoding differs"):
        assert_parity({"torchscript": {"max_abs_diff": 0.0, "same_decoding": False}})
    with pytest.raises(ValueError, match="onnx: max_abs_diff nan"):
        assert_parity({"onnx": {"max_abs_diff": float("nan"), "same_decoding": True}})


def test_check_parity_reports_run_failures(tmp_path):
    """A width a TPS model's ONNX graph does not take is reported, then raised by assert_parity."""
    model, _, _ = _export("tiny_trbc", tmp_path, formats="onnx")
    report = check_parity(model, tmp_path, torch.randn(2, 1, 32, 64))
    assert set(report) == {"onnx"} and report["onnx"]["same_decoding"] is False
    with pytest.raises(ValueError, match="onnx: failed to run"):
        assert_parity(report)
