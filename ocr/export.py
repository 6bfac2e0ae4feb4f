"""Export a trained recogniser to TorchScript and ONNX, and check both against eager PyTorch.

    paths = export_recognizer(model, meta, "out/")   # model.torchscript.pt, model.onnx, model.json
    assert_parity(check_parity(model, "out/", images))

Both formats wrap the model in ``_Exported``: ``images`` (B, C, H, W) float32 -> ``outputs``.

* TorchScript: ``torch.jit.trace`` of the wrapper (works for every preset; sizes stay symbolic).
* ONNX: opset 17 via the TorchScript-based exporter, ``torch.onnx.export(..., dynamo=False)``
  (deprecated but present in torch 2.13). The default dynamo exporter also handles LSTM and
  grid_sample, but takes 10-15 s per *tiny* model on CPU and kept ``fast``'s width static;
  the TorchScript-based one takes < 1 s and honours ``dynamic_axes``.
* Batch is dynamic ("B"); width ("W", output "T") too when the transformation passes the
  width through, i.e. not for TPS models, whose grid is fixed at (height, width).

Attention: eager decoding stops once every sample has emitted [EOS], a data-dependent
length that tracing would freeze. The export always runs all ``max_length + 1`` steps (the
same ``_step``/``generator`` calls, no early stop): outputs (B, max_length + 1, num_classes + 1).
Eager's steps are a prefix of these, and the extra ones follow every sample's [EOS], which
``decode`` cuts off, so decoding (indices and confidence) is identical. ``check_parity``
measures ``max_abs_diff`` against that fixed-step function run eagerly and ``same_decoding``
against ``model.decode(model(images))``, the eager model itself.
"""

from __future__ import annotations

import copy
import json
import math
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
OPSET = 17
INPUT, OUTPUT = "images", "outputs"


class _Exported(nn.Module):
    """The recogniser without input checks; attention decodes a fixed max_length + 1 steps."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        m, head = self.model, self.model.head
        x = m.sequence(m.features(m.transformation(images)))
        if m.prediction == "ctc":
            return head(x)
        proj = head.i2h(x)
        zeros = x.new_zeros(x.size(0), head.hidden)
        state, token = (zeros, zeros), zeros[:, 0].long()  # [GO] = 0
        logits = []
        for _ in range(head.max_length + 1):
            state = head._step(state, x, proj, token)
            logits.append(head.generator(state[0]))
            token = logits[-1].argmax(1)
        return torch.stack(logits, 1)


def _shapes(model, height: int, width: int) -> tuple[list, list]:
    dyn = all(model.transformation.out_width(w) == w for w in (64, 128))  # not TPS
    inp = ["B", model.features.in_channels, height, "W" if dyn else width]
    if model.prediction == "ctc":
        return inp, ["B", "T" if dyn else model.time_steps(width), model.num_classes]
    return inp, ["B", model.head.max_length + 1, model.head.num_outputs]


def export_recognizer(model, meta: dict, out_dir, formats=("torchscript", "onnx")) -> dict[str, str]:
    """Write ``formats`` of ``model`` (eval mode) and ``model.json`` (``meta`` + "export") to ``out_dir``.

    Returns {format: path}. ``meta["arch"]`` gives the input height/width (default 32x100).
    """
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [f for f in formats if f not in FILES]
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown or list(formats)}: "
                         f"expected some of {list(FILES)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    arch = meta.get("arch", {})
    height, width = int(arch.get("height", 32)), int(arch.get("width", 100))
    wrapper = _Exported(model.eval()).eval()
    example = torch.randn(2, model.features.in_channels, height, width,
                          generator=torch.Generator().manual_seed(0))
    in_shape, out_shape = _shapes(model, height, width)
    section, paths = {}, {}
    for fmt in formats:
        path = out / FILES[fmt]
        with torch.no_grad(), warnings.catch_warnings():  # nn.LSTM's shape checks and the exporter's
            # LSTM batch-size caveat; tests/test_export.py runs other batches/widths through both.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size")
            if fmt == "torchscript":
                torch.jit.trace(wrapper, example, check_trace=False).save(str(path))
            else:
                axes = {i: n for i, n in enumerate(in_shape) if isinstance(n, str)}
                out_axes = {i: n for i, n in enumerate(out_shape) if isinstance(n, str)}
                torch.onnx.export(wrapper, (example,), str(path), input_names=[INPUT],
                                  output_names=[OUTPUT], opset_version=OPSET, dynamo=False,
                                  dynamic_axes={INPUT: axes, OUTPUT: out_axes})
        section[fmt] = {"file": path.name, "input": {"name": INPUT, "shape": in_shape},
                        "output": {"name": OUTPUT, "shape": out_shape}, "dtype": "float32",
                        "torch": torch.__version__}
        if fmt == "onnx":
            section[fmt].update(opset=OPSET, exporter="torchscript-based (dynamo=False)")
        if model.prediction == "attn":
            section[fmt]["decode_steps"] = model.head.max_length + 1  # no early stop
        paths[fmt] = str(path)
    meta = copy.deepcopy(meta)
    meta["export"] = section
    (out / "model.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), "utf-8")
    return paths


def _same_decoding(a, b, atol: float) -> bool:
    return len(a) == len(b) and all(
        ia == ib and math.isclose(ca, cb, rel_tol=1e-3, abs_tol=atol) for (ia, ca), (ib, cb) in zip(a, b))


def check_parity(model, out_dir, images: Tensor, atol: float = 1e-4) -> dict:
    """Run eager and every exported format in ``out_dir`` on ``images``; report, never raise.

    Returns {format: {"max_abs_diff": float, "same_decoding": bool}} (plus "error" when a file
    failed to run); decodings match when the indices are equal and the confidences agree
    (``rel_tol=1e-3``, ``abs_tol=atol``).
    """
    out = Path(out_dir)
    section = json.loads((out / "model.json").read_text("utf-8"))["export"]
    model.eval()
    images = images.float().contiguous()
    with torch.no_grad():
        reference = _Exported(model).eval()(images)
        expected = model.decode(model(images))
    report = {}
    for fmt in (f for f in FILES if f in section):
        try:
            got = _run(fmt, out / section[fmt]["file"], images)
        except Exception as e:  # e.g. a width a fixed-size (TPS) model does not take
            report[fmt] = {"max_abs_diff": math.inf, "same_decoding": False, "error": repr(e)}
            continue
        diff = float((got - reference).abs().max()) if got.shape == reference.shape else math.inf
        report[fmt] = {"max_abs_diff": diff,
                       "same_decoding": _same_decoding(expected, model.decode(got), atol)}
    return report


def _run(fmt: str, path: Path, images: Tensor) -> Tensor:
    if fmt == "torchscript":
        with torch.no_grad():
            return torch.jit.load(str(path))(images)
    import onnxruntime as ort  # lazy: only the ONNX parity check runs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run([OUTPUT], {INPUT: images.numpy()})[0])


def assert_parity(report: dict, atol: float = 1e-4) -> None:
    """Raise ValueError naming each format whose difference exceeds ``atol`` or whose decoding differs."""
    bad = []
    for fmt, r in report.items():
        if "error" in r:
            bad.append(f"{fmt}: failed to run: {r['error']}")
            continue
        if not r["max_abs_diff"] <= atol:  # NaN fails too
            bad.append(f"{fmt}: max_abs_diff {r['max_abs_diff']:.3g} > atol {atol:g}")
        if not r["same_decoding"]:
            bad.append(f"{fmt}: decoding differs from eager")
    if bad:
        raise ValueError("exported model differs from eager: " + "; ".join(bad))
