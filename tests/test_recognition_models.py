"""Recognition models: every preset builds, runs forward/backward, and keeps its contracts."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ocr.charset import Charset, ctc_min_steps, load_charset
from ocr.models.recognition import (
    RECOGNIZERS,
    TPS,
    FastFeatures,
    ResNetFeatures,
    VGGFeatures,
    attention_gold,
    attention_greedy_decode,
    ctc_feasible,
    ctc_greedy_decode,
    hangul_jamo,
)

CHARSET = load_charset("digits")
NC = CHARSET.num_classes  # 11
TINY = ["tiny_crnn", "tiny_trbc", "tiny_trba", "tiny_fast"]
FULL = ["crnn", "trbc", "trba", "fast"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _targets(labels):
    enc = [CHARSET.encode(s) for s in labels]
    out = torch.zeros(len(enc), max(map(len, enc)), dtype=torch.long)
    for i, e in enumerate(enc):
        out[i, : len(e)] = torch.tensor(e)
    return out


def test_registry_lists_every_preset():
    assert set(TINY + FULL) <= set(RECOGNIZERS.names())


@pytest.mark.parametrize("name", TINY)
def test_tiny_forward_backward(name):
    torch.manual_seed(0)
    model = RECOGNIZERS.create(name, num_classes=NC).train()
    images = torch.randn(3, 1, 32, 100)
    targets = _targets(["123", "4", "5566"])
    lengths = (targets != 0).sum(1)
    out = model(images, targets)
    if model.prediction == "ctc":
        t = model.time_steps(100)
        assert out.shape == (3, t, NC)
        assert torch.allclose(out.exp().sum(-1), torch.ones(3, t), atol=1e-4)  # log-probabilities
        loss = F.ctc_loss(out.transpose(0, 1), targets, torch.full((3,), t), lengths, blank=0)
    else:
        assert out.shape == (3, targets.size(1) + 1, NC + 1)
        loss = F.cross_entropy(out.flatten(0, 1), attention_gold(targets, NC).flatten(), ignore_index=0)
    assert torch.isfinite(loss)
    assert torch.allclose(loss, model.loss(out, targets))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", ["tiny_fast", "tiny_trba"])
def test_tiny_models_learn(name):
    torch.manual_seed(0)
    model = RECOGNIZERS.create(name, num_classes=NC).train()
    images, targets = torch.randn(4, 1, 32, 64), _targets(["12", "345", "6", "7890"])
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        loss = model.loss(model(images, targets), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("name", FULL)
def test_full_presets_forward(name):
    model = RECOGNIZERS.create(name, num_classes=NC).eval()
    with torch.inference_mode():
        out = model(torch.rand(1, 1, 32, 100))
    if model.prediction == "ctc":
        assert out.shape == (1, model.time_steps(100), NC)
    else:
        assert out.shape[0] == 1 and 1 <= out.shape[1] <= 26 and out.shape[2] == NC + 1
    assert len(model.decode(out)) == 1


@pytest.mark.parametrize("name", TINY)
def test_time_steps_match_output(name):
    model = RECOGNIZERS.create(name, num_classes=NC).eval()
    for width in (16, 37, 64, 100, 101, 203):
        with torch.inference_mode():
            x = model.features(model.transformation(torch.rand(2, 1, 32, width)))
        assert x.shape[1] == model.time_steps(width), (name, width)


@pytest.mark.parametrize("cls, formula", [
    (VGGFeatures, lambda w: w // 4 - 1),
    (ResNetFeatures, lambda w: w // 4 + 1),
    (FastFeatures, lambda w: math.ceil(w / 4)),
])
def test_backbone_time_steps(cls, formula):
    kwargs = {"widths": (4, 8, 8, 8)} if cls is FastFeatures else {}
    net = cls(3, 16, **kwargs).eval()
    for h in (32, 48):
        for w in (8, 31, 32, 33, 34, 35, 100, 257):
            with torch.inference_mode():
                y = net(torch.rand(1, 3, h, w))
            assert y.shape == (1, net.time_steps(w), 16) and net.time_steps(w) == formula(w)


def test_tps_starts_as_identity_and_resizes():
    tps = TPS(20, in_size=(32, 100), in_channels=1, channels=(4, 8, 8, 16)).eval()
    x = torch.rand(2, 1, 32, 100)
    assert torch.allclose(tps(x), x, atol=1e-4)
    tps2 = TPS(6, in_size=(48, 160), out_size=(32, 100), in_channels=3, channels=(4, 4, 4, 4))
    assert tps2(torch.rand(2, 3, 48, 160)).shape == (2, 3, 32, 100)
    assert "grid_matrix" not in tps2.state_dict()


@pytest.mark.parametrize("name", TINY + ["trba"])
def test_arch_config_round_trip(name):
    model = RECOGNIZERS.create(name, num_classes=NC, height=32, width=128, hidden=24)
    cfg = json.loads(json.dumps(model.arch_config()))
    assert cfg["name"] == name and cfg["hidden"] == 24 and cfg["width"] == 128
    again = RECOGNIZERS.create(**cfg)
    a, b = model.state_dict(), again.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    assert again.arch_config() == cfg


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown recognizer 'nope'"):
        RECOGNIZERS.create("nope", num_classes=NC)
    with pytest.raises(ValueError, match="no parameter"):
        RECOGNIZERS.create("tiny_crnn", num_classes=NC, depth=3)
    with pytest.raises(TypeError):
        RECOGNIZERS.create("tiny_crnn", NC)  # keyword-only
    model = RECOGNIZERS.create("tiny_crnn", num_classes=NC)
    with pytest.raises(ValueError, match=r"expected images of shape \(B, 1, H, W\)"):
        model(torch.rand(1, 3, 32, 100))
    with pytest.raises(ValueError, match="too small"):
        model(torch.rand(1, 1, 16, 100))


def test_attention_greedy_decode_shapes():
    torch.manual_seed(0)
    model = RECOGNIZERS.create("tiny_trba", num_classes=NC, max_length=6).eval()
    with torch.inference_mode():
        out = model(torch.rand(5, 1, 32, 100))
    assert out.shape[0] == 5 and 1 <= out.shape[1] <= 7 and out.shape[2] == NC + 1
    decoded = model.decode(out)
    assert len(decoded) == 5
    assert all(len(ix) <= 6 and all(1 <= i < NC for i in ix) and 0 < c <= 1 for ix, c in decoded)


def test_attention_gold_and_decode_by_hand():
    eos = NC
    targets = torch.tensor([[3, 4, 0], [5, 0, 0], [1, 2, 3]])
    assert attention_gold(targets, eos).tolist() == [[3, 4, eos, 0], [5, eos, 0, 0], [1, 2, 3, eos]]
    logits = torch.full((2, 4, NC + 1), -10.0)
    for b, row in enumerate([[3, 4, eos, 7], [2, 2, 2, 2]]):
        for t, i in enumerate(row):
            logits[b, t, i] = 10.0
    (ix0, c0), (ix1, c1) = attention_greedy_decode(logits, eos)
    assert ix0 == [3, 4] and ix1 == [2, 2, 2, 2]
    assert c0 == pytest.approx(1.0, abs=1e-6) and c1 == pytest.approx(1.0, abs=1e-6)
    assert CHARSET.decode(ix0) == "23"


def test_ctc_greedy_decode_by_hand():
    # frames: a a _ a b b _  -> "a a b"   (a = class 1, b = class 2, _ = blank 0)
    best = [1, 1, 0, 1, 2, 2, 0]
    p = torch.full((1, 7, 3), 0.1)
    for t, i in enumerate(best):
        p[0, t, i] = 0.8
    (ix, conf), = ctc_greedy_decode(p.log())
    assert ix == [1, 1, 2]
    assert conf == pytest.approx(0.8 ** 7, rel=1e-5)
    (ix, conf), = ctc_greedy_decode(p.log(), lengths=torch.tensor([3]))
    assert ix == [1] and conf == pytest.approx(0.8 ** 3, rel=1e-5)
    assert CHARSET.decode([1, 1, 2]) == "001"


def test_ctc_feasible():
    assert ctc_feasible(ctc_min_steps("1122"), 6) and not ctc_feasible(ctc_min_steps("1122"), 5)
    assert ctc_feasible([3, 24, 25], 24).tolist() == [True, True, False]


# --- Hangul syllables scored by their jamo ---------------------------------------------

JAMO_CHARSET = load_charset("digits").union(Charset.from_string("가각갂나낙한힣 ab", spec="ko"))


def _jamo_model(charset=JAMO_CHARSET):
    torch.manual_seed(0)
    return RECOGNIZERS.create("tiny_fast", num_classes=charset.num_classes,
                              jamo="".join(charset.symbols))


def test_hangul_jamo_by_hand():
    assert hangul_jamo("가") == (0, 0, 0) and hangul_jamo("각") == (0, 0, 1)
    assert hangul_jamo("한") == (18, 0, 4) and hangul_jamo("힣") == (18, 20, 27)
    assert hangul_jamo("a") is None and hangul_jamo("ㄱ") is None  # a jamo letter is no syllable


def test_jamo_head_scores_syllables_by_their_parts():
    model = _jamo_model().eval()
    cls = {s: JAMO_CHARSET.encode(s)[0] for s in "가각갂나낙"}
    with torch.inference_mode():
        out = model(torch.rand(2, 1, 32, 64))
    assert out.shape == (2, model.time_steps(64), JAMO_CHARSET.num_classes)
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-4)
    # 가/각 and 나/낙 differ by the same final: their log-ratios are equal frame by frame
    assert torch.allclose(out[..., cls["각"]] - out[..., cls["가"]],
                          out[..., cls["낙"]] - out[..., cls["나"]], atol=1e-4)
    assert not torch.allclose(out[..., cls["갂"]] - out[..., cls["가"]],
                              out[..., cls["각"]] - out[..., cls["가"]], atol=1e-4)
    # the head's weights: 19 + 21 + 28 jamo rows and one row per other symbol, not per class
    assert model.head.jamo.weight.shape[0] == 68
    assert model.head.kind.weight.shape[0] == 1 + 1 + 10 + 3   # syllable, blank, digits, " ab"


def test_jamo_model_learns_round_trips_and_refuses_a_bare_flag():
    model = _jamo_model().train()
    labels = ["가각 12", "한힣", "나낙 ab"]
    enc = [JAMO_CHARSET.encode(s) for s in labels]
    targets = torch.zeros(3, max(map(len, enc)), dtype=torch.long)
    for i, e in enumerate(enc):
        targets[i, : len(e)] = torch.tensor(e)
    images = torch.randn(3, 1, 32, 64)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(25):
        loss = model.loss(model(images), targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    same = RECOGNIZERS.create(**json.loads(json.dumps(model.arch_config())))
    same.load_state_dict(model.state_dict())
    x = torch.rand(1, 1, 32, 64)
    with torch.inference_mode():
        assert torch.equal(same.eval()(x), model.eval()(x))
    with pytest.raises(ValueError, match="jamo takes the charset's symbols"):
        RECOGNIZERS.create("tiny_fast", num_classes=11, jamo=True)
