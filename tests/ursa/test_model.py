import json

import pytest
import torch

from ursa.model import URSAConfig, URSAModel, check_tokenizer, mrope_positions
from ursa.tokenizers import fsq_codebook

TOL = 1e-5  # float32 CPU: different padding / batch layouts change only summation order


@pytest.fixture(scope="module")
def model() -> URSAModel:
    return URSAModel(
        URSAConfig.preset("tiny", text_vocab_size=50, visual_vocab_size=32), seed=0
    ).eval()


def inputs(seed: int = 0, batch: int = 2, length: int = 5, grid=(2, 3, 4)):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 50, (batch, length), generator=g), torch.randint(
        0, 32, (batch, *grid), generator=g
    )


@torch.no_grad()
def test_forward_shape_and_dtype(model):
    text, visual = inputs()
    logits = model(text, visual)
    assert logits.shape == (2, 2, 3, 4, 32) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("padded", [False, True])
@torch.no_grad()
def test_bidirectional_last_token_changes_first_output(model, padded):
    text, visual = inputs()
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5]) if padded else None
    changed = visual.clone()
    changed[:, -1, -1, -1] = (changed[:, -1, -1, -1] + 1) % 32
    diff = (model(text, visual, mask) - model(text, changed, mask))[:, 0, 0, 0].abs().amax(-1)
    assert (diff > 1e-3).all(), (
        f"first visual output must depend on the last visual token, max diff {diff}"
    )


def test_mrope_positions_layout():
    mask = torch.tensor([[True, True, False], [True, True, True]])
    pos = mrope_positions(mask, (2, 1, 2))
    assert pos.shape == (3, 2, 3 + 1 + 4)
    # sample 0: 2 real text tokens -> text (0, 1, pad->1), BOV 2, visual t offset 3
    assert pos[:, 0].T.tolist() == [
        [0, 0, 0],
        [1, 1, 1],
        [1, 1, 1],
        [2, 2, 2],
        [3, 0, 0],
        [3, 0, 1],
        [4, 0, 0],
        [4, 0, 1],
    ]
    assert pos[:, 1, 3].tolist() == [3, 3, 3] and pos[:, 1, 4].tolist() == [4, 0, 0]


@torch.no_grad()
def test_spatial_positions_matter(model):
    # Attention is permutation-equivariant given positions, so transposing the grid changes
    # the outputs only through the swapped (y, x) rotary positions, which use different
    # frequencies for h and w in interleaved M-RoPE.
    text, visual = inputs(grid=(1, 2, 3))
    direct = model(text, visual)
    transposed = model(text, visual.transpose(2, 3).contiguous()).transpose(2, 3)
    assert (direct - transposed).abs().max() > 1e-3


@torch.no_grad()
def test_padding_does_not_change_unpadded_sample(model):
    text, visual = inputs(batch=1, length=3)
    alone = model(text, visual)
    garbage = torch.tensor([[7, 41]])  # padded slots hold arbitrary ids
    other_text, other_visual = inputs(seed=1, batch=1, length=5)
    batch_text = torch.cat([torch.cat([text, garbage], 1), other_text])
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    batched = model(batch_text, torch.cat([visual, other_visual]), mask)
    assert (batched[0] - alone[0]).abs().max() < TOL


@torch.no_grad()
def test_deterministic_on_cpu():
    cfg = URSAConfig.preset("tiny", text_vocab_size=50, visual_vocab_size=32)
    a, b, c = URSAModel(cfg, seed=3), URSAModel(cfg, seed=3), URSAModel(cfg, seed=4)
    text, visual = inputs()
    assert torch.equal(a(text, visual), b(text, visual))
    assert torch.equal(a(text, visual), a(text, visual))
    assert not torch.equal(a(text, visual), c(text, visual))


@torch.no_grad()
def test_save_load_roundtrip_bitwise(model, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = URSAModel.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    for (name, p), (_, q) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(p, q), name
    text, visual = inputs()
    assert torch.equal(model(text, visual), loaded.eval()(text, visual))


def test_from_pretrained_missing_files(model, tmp_path):
    with pytest.raises(ValueError, match="config.json"):
        URSAModel.from_pretrained(tmp_path / "nowhere")
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="model.safetensors"):
        URSAModel.from_pretrained(tmp_path)
    model.save_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json"):
        URSAModel.from_pretrained(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text(json.dumps({**model.config.to_dict(), "bogus": 1}))
    with pytest.raises(ValueError, match=r"config.json.*bogus"):
        URSAModel.from_pretrained(tmp_path / "b")


@pytest.mark.parametrize("name, published", [("0.6B", 0.44e9), ("1.7B", 1.4e9)])
def test_preset_non_embedding_counts(name, published):
    # Qwen3's published non-embedding counts (0.44B / 1.4B) exclude the vocabulary matrices
    # (embedding and the LM head tied to it). Our head Linear(hidden, 64000) is that output
    # projection, so it is excluded too; with it the count would be 0.51B / 1.54B (>5% off).
    with torch.device("meta"):
        m = URSAModel(URSAConfig.preset(name))
    assert m.config.text_vocab_size == 151_669 and m.config.visual_vocab_size == 64_000
    assert m.backbone.embed_tokens.weight.shape[0] == 151_669 + 64_000 + 1  # + BOV row
    count = m.count_parameters(non_embedding=True)
    assert abs(count / published - 1) < 0.05, (
        f"{name}: {count / 1e9:.3f}B vs published {published / 1e9}B (5% tolerance)"
    )
    assert (
        m.count_parameters(non_embedding=False)
        == count + m.head.weight.numel() + m.backbone.embed_tokens.weight.numel()
    )


@torch.no_grad()
def test_mask_token_input():
    m = URSAModel(
        URSAConfig.preset("tiny", text_vocab_size=50, visual_vocab_size=32, mask_token=True)
    )
    assert m.num_visual_inputs == 33
    text, visual = inputs()
    visual[0, 0] = 32  # mask id K
    assert m(text, visual).shape[-1] == 32
    with pytest.raises(
        ValueError, match=r"visual_ids: expected ids in \[0, 33\), got values in \[0, 33\]"
    ):
        m(text, torch.full_like(visual, 33).index_fill_(0, torch.tensor([0]), 0))


@pytest.mark.parametrize(
    "case, match",
    [
        ("text_dtype", r"text_ids: expected torch.long tensor of shape \(B, L\), got torch.int32"),
        (
            "visual_shape",
            r"visual_ids: expected torch.long tensor of shape \(B, T, h, w\), got torch.int64 of shape \(2, 24\)",
        ),
        ("visual_range", r"visual_ids: expected ids in \[0, 32\), got values in \[0, 32\]"),
        ("text_range", r"text_ids: expected ids in \[0, 50\), got values in \[-1, "),
        ("mask_dtype", r"text_mask: expected torch.bool tensor of shape \(2, 5\), got torch.int64"),
        (
            "batch",
            r"visual_ids: expected a non-empty \(B=2, T, h, w\) grid, got shape \(1, 2, 3, 4\)",
        ),
    ],
)
def test_bad_input(model, case, match):
    text, visual = inputs()
    mask = None
    if case == "text_dtype":
        text = text.int()
    elif case == "visual_shape":
        visual = visual.flatten(1)
    elif case == "visual_range":
        visual[0, 0, 0, 0] = 32
    elif case == "text_range":
        text[1, 1] = -1
    elif case == "mask_dtype":
        mask = torch.ones_like(text)
    elif case == "batch":
        visual = visual[:1]
    with pytest.raises(ValueError, match=match):
        model(text, visual, mask)


def test_check_tokenizer(model):
    class GridTokenizer:  # only vocab_size is consulted
        def __init__(self, k: int) -> None:
            self.vocab_size = k

    check_tokenizer(model, GridTokenizer(32))
    with pytest.raises(ValueError, match=r"expected 32 \(model head K\), got 64000"):
        check_tokenizer(model, GridTokenizer(fsq_codebook().shape[0]))


@pytest.mark.parametrize("head_shift", [False, True])
def test_forward_with_targets_is_the_weighted_cross_entropy_of_the_logits(head_shift):
    m = URSAModel(
        URSAConfig.preset("tiny", text_vocab_size=50, visual_vocab_size=32, head_shift=head_shift),
        seed=0,
    )
    text, visual = inputs()
    targets = inputs(seed=1)[1]
    weights = torch.rand(visual.shape, generator=torch.Generator().manual_seed(2))
    mask = torch.tensor([[True] * 3 + [False] * 2, [True] * 5])
    ref = (
        torch.nn.functional.cross_entropy(
            m(text, visual, mask).flatten(0, -2), targets.flatten(), reduction="none"
        )
        * weights.flatten()
    ).sum()
    ref.backward()
    ref_grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    loss = m(text, visual, mask, targets=targets, weights=weights)
    loss.backward()
    assert loss.shape == () and loss.dtype == torch.float32
    assert abs(loss.item() - ref.item()) <= TOL * abs(ref.item())
    for p, want in zip(m.parameters(), ref_grads):
        assert (p.grad - want).abs().max() <= TOL * max(want.abs().max(), 1e-3)


@torch.no_grad()
def test_all_true_mask_is_no_mask(model):
    text, visual = inputs()
    assert torch.equal(
        model(text, visual, torch.ones_like(text, dtype=torch.bool)), model(text, visual)
    )


@pytest.mark.parametrize(
    "case, match",
    [
        ("targets_range", r"targets: expected ids in \[0, 32\), got values in \[0, 32\]"),
        (
            "targets_shape",
            r"targets: expected torch.long tensor of shape \(2, 2, 3, 4\), got torch.int64 of shape \(2, 24\)",
        ),
        (
            "weights_dtype",
            r"weights: expected a float tensor of shape \(2, 2, 3, 4\) beside targets, got torch.int64",
        ),
    ],
)
def test_bad_targets(model, case, match):
    text, visual = inputs()
    targets, weights = visual.clone(), None
    if case == "targets_range":
        targets[1, 1, 1, 1] = 32
    elif case == "targets_shape":
        targets = targets.flatten(1)
    else:
        weights = torch.ones_like(visual)
    with pytest.raises(ValueError, match=match):
        model(text, visual, targets=targets, weights=weights)
