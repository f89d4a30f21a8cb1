"""ursa.release: the authors' release folders load exactly (logits, path), in the dtype asked,
with one clear error for every kind of bad folder."""

import dataclasses
import json
import shutil

import pytest
import torch
from test_release_helpers import TINY, fsq_codebook, make_release, reference_logits, release_state

from ursa.model import URSAModel
from ursa.paths import MetricPath, MixturePath
from ursa.release import (
    build_release_path,
    load_scheduler,
    load_transformer,
    read_transformer_config,
    release_to_project_key,
)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return make_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def model(release):
    return load_transformer(release)


def _inputs(seed, batch, length, shape):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, TINY["lm_vocab_size"], (batch, length), generator=g)
    return text, torch.randint(0, TINY["lm_head_size"], (batch, *shape), generator=g)


@pytest.mark.parametrize(
    "length,shape", [(1, (1, 2, 3)), (7, (1, 3, 2)), (12, (3, 2, 2)), (20, (2, 4, 3))]
)
def test_logits_match_reference_forward(model, length, shape):
    text, visual = _inputs(length, 2, length, shape)
    with torch.no_grad():
        ours = model(text, visual)
    ref = reference_logits(release_state(TINY), TINY, text, visual)
    assert ours.shape == ref.shape == (2, *shape, TINY["lm_head_size"])
    assert (ours - ref).abs().max() < 1e-5


def test_text_layout_left_padded_from_mask(model):
    # Right-padded input (mask False at the pads) is re-laid out as the release's left padding to
    # 320 with the pad id; a row longer than 320 keeps its first 320 tokens.
    text, visual = _inputs(1, 2, 6, (1, 2, 2))
    mask = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    with torch.no_grad():
        ours = model(text, visual, mask)
        assert torch.equal(ours[0], model(text[:1, :3], visual[:1])[0])
    ref = reference_logits(release_state(TINY), TINY, text, visual, mask)
    assert (ours - ref).abs().max() < 1e-5
    long_text = torch.randint(0, 40, (1, 330), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(model(long_text, visual[:1]), model(long_text[:, :320], visual[:1]))


def test_sharded_weights_and_dtype(tmp_path, model):
    sharded = load_transformer(make_release(tmp_path, shards=3), dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in sharded.parameters())
    assert torch.equal(sharded.head.weight, model.head.weight.bfloat16())
    text, visual = _inputs(3, 1, 5, (2, 2, 2))
    with torch.no_grad():
        assert (sharded(text, visual) - model(text, visual)).abs().max() < 0.5  # bf16 rounding only


def test_roundtrip_save_pretrained_keeps_conventions(tmp_path, model):
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert (
        saved["bov_token_id"] == 37
        and saved["text_padding"] == "attended"
        and saved["head_shift"] is True
    )
    assert (
        saved["rope_layout"] == "ursa_release"
        and saved["max_prompt_length"] == 320
        and saved["text_pad_id"] == 38
    )
    again = URSAModel.from_pretrained(tmp_path / "saved")
    text, visual = _inputs(4, 2, 9, (2, 3, 2))
    with torch.no_grad():
        assert torch.equal(again(text, visual), model(text, visual))


def test_project_config_json_unchanged_by_conventions():
    from ursa.config import URSAConfig

    d = URSAConfig.preset("tiny").to_dict()
    assert not {
        "bov_token_id",
        "text_padding",
        "head_shift",
        "rope_layout",
        "max_prompt_length",
        "text_pad_id",
    } & set(d)


def test_pad_id_from_the_tokenizer_folder(tmp_path):
    from test_release_helpers import make_tokenizer

    from ursa.release import read_transformer_config

    root = make_release(tmp_path)
    make_tokenizer(root / "tokenizer")  # pad token <|endoftext|> is id 0 there
    assert read_transformer_config(root).text_pad_id == 0


def test_scheduler_metric_and_mixture(tmp_path, release):
    s = load_scheduler(release)
    assert (s.kind, s.c, s.alpha, s.shift, s.eps) == ("metric", 3.0, 0.9, 3.0, 1e-5)
    path = build_release_path(release)
    assert isinstance(path, MetricPath) and path.vocab_size == 27
    # the path's distances are those of the L2-normalised codebook (FSQ's all-zero code: below)
    e = torch.nn.functional.normalize(fsq_codebook().half().float(), dim=-1, eps=1e-5)
    x, y = torch.tensor([1, 5, 12, 26]), torch.tensor([2, 5, 0, 3])
    assert torch.allclose(path.distance(x, y), (e[x] - e[y]).pow(2).sum(-1), atol=1e-6)
    mix = make_release(tmp_path / "mix", alpha=None)
    assert (
        isinstance(build_release_path(mix), MixturePath) and load_scheduler(mix).kind == "mixture"
    )


def _copy(release, tmp_path):
    return shutil.copytree(release, tmp_path / "copy")


def test_missing_files_listed_in_one_message(tmp_path, release):
    bad = _copy(release, tmp_path)
    (bad / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    (bad / "scheduler" / "scheduler_model.pth").unlink()
    from ursa.release import check_release

    with pytest.raises(ValueError) as err:
        check_release(bad, ("transformer", "scheduler"))
    msg = str(err.value)
    assert (
        "2 missing" in msg
        and "diffusion_pytorch_model.safetensors" in msg
        and "scheduler_model.pth" in msg
    )
    assert "codebook" in msg and str(bad) in msg


def test_missing_shard_named(tmp_path):
    root = make_release(tmp_path, shards=2)
    (root / "transformer" / "diffusion_pytorch_model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match="00002-of-00002.safetensors .a weight shard"):
        load_transformer(root)


def test_shape_mismatch_and_unknown_architecture(tmp_path, release):
    bad = _copy(release, tmp_path)
    cfg = dict(TINY, intermediate_size=64)
    (bad / "transformer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        ValueError,
        match=r"mlp.gate_proj.weight' has shape \(48, 32\), the config implies \(64, 32\)",
    ):
        load_transformer(bad)
    (bad / "transformer" / "config.json").write_text(
        json.dumps(dict(TINY, _class_name="NovaTransformer3DModel"))
    )
    with pytest.raises(ValueError, match="_class_name.*NovaTransformer3DModel"):
        load_transformer(bad)
    (bad / "transformer" / "config.json").write_text(json.dumps(dict(TINY, vocab_size=70)))
    with pytest.raises(ValueError, match="vocab_size = lm_vocab_size \\+ lm_head_size"):
        load_transformer(bad)
    (bad / "transformer" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="transformer/config.json to be a JSON object"):
        load_transformer(bad)


def test_bad_scheduler_files(tmp_path, release):
    bad = _copy(release, tmp_path)
    (bad / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({"alpha": 0.9, "c": "three"})
    )
    with pytest.raises(ValueError, match="'c' a finite number > 0"):
        load_scheduler(bad)
    (bad / "scheduler" / "scheduler_config.json").write_text(json.dumps({"alpha": 0.9, "c": 3}))
    torch.save(
        {"path.emb": torch.zeros(4, 2), "extra": object()},
        bad / "scheduler" / "scheduler_model.pth",
    )
    with pytest.raises(ValueError, match="weights_only=True"):
        load_scheduler(bad)
    (bad / "scheduler" / "scheduler_model.pth").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="scheduler_model.pth to be a torch file"):
        load_scheduler(bad)


def test_rotary_layout_other_head_dim(tmp_path):
    # head_dim 32: 12 slots cycle (t, h, w), 4 cycle (h, w); a 3-frame grid that is not square. The
    # authors' model is always head_dim 128, so the layout is checked on a config built directly
    cfg = dict(TINY, head_dim=32, num_attention_heads=2, num_key_value_heads=1)
    config = dataclasses.replace(
        read_transformer_config(make_release(tmp_path, TINY)),
        head_dim=32,
        num_heads=2,
        num_kv_heads=1,
        mrope_section=None,
    )
    m = URSAModel(config, seed=None).eval()
    m.load_state_dict({release_to_project_key(k): v for k, v in release_state(cfg, 3).items()})
    text, visual = _inputs(9, 1, 4, (3, 2, 5))
    with torch.no_grad():
        assert (
            m(text, visual) - reference_logits(release_state(cfg, 3), cfg, text, visual)
        ).abs().max() < 1e-5


@pytest.mark.parametrize(
    "key, value", [("head_dim", 64), ("rms_norm_eps", 1e-5), ("max_position_embeddings", 40960)]
)
def test_config_keys_the_authors_model_drops_are_refused_when_they_differ(tmp_path, key, value):
    """diffusers builds URSATransformer3DModel from its signature's keys only: head_dim,
    rms_norm_eps and max_position_embeddings in config.json never reach their Qwen3Config (always
    128 / 1e-6 / 32768). The same value is accepted; another is refused by name, before any
    weight is read."""
    theirs = {"head_dim": 128, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768}
    folder = make_release(tmp_path / "ok", dict(TINY, **{key: theirs[key]}))
    config = read_transformer_config(folder)
    read = (config.head_dim, config.rms_norm_eps, config.max_position_embeddings)
    assert read == tuple(theirs.values())
    bad = make_release(tmp_path / "bad", TINY)
    (bad / "transformer" / "config.json").write_text(json.dumps(dict(TINY, **{key: value})))
    with pytest.raises(ValueError, match=f"got {key} {value!r}: their model would not be built"):
        read_transformer_config(bad)


def test_zero_code_gets_the_authors_distances(release):
    """FSQ's all-zero code (id 13 of levels (3, 3, 3)): the authors' get_dist, |e_x|^2 + |e_y|^2 -
    2 e_x.e_y on F.normalize'd rows (a zero row stays zero), gives it 1 to every other code; the
    release path reproduces that ("origin"), MetricPath's default keeps 2 ("equidistant")."""
    e = torch.nn.functional.normalize(fsq_codebook().half().float(), dim=-1, eps=1e-5)
    assert e[13].abs().sum() == 0
    theirs = (e.square().sum(-1)[:, None] + e.square().sum(-1)[None, :] - 2 * e @ e.T).clamp(
        min=0
    )  # (27, 27)
    path = build_release_path(release)
    ids = torch.arange(27)
    assert torch.allclose(
        path.distances_to(ids), theirs.T, atol=1e-6
    )  # [x1, x] = d(x, x1), every pair
    assert torch.equal(path.distance(torch.full((27,), 13), ids), (ids != 13).float())
    ours = build_release_path(release, zero_rows="equidistant")
    assert torch.equal(ours.distance(torch.full((27,), 13), ids), 2 * (ids != 13).float())
    assert (
        isinstance(ours, MetricPath) and ours.zero_rows == "equidistant" == MetricPath(e).zero_rows
    )
    with pytest.raises(
        ValueError, match="zero_rows: expected 'equidistant' or 'origin', got 'authors'"
    ):
        MetricPath(e, zero_rows="authors")
    other = ids != 13  # every other pair: bitwise the same
    assert torch.equal(
        path.distances_to(ids)[other][:, other], ours.distances_to(ids)[other][:, other]
    )
    d = path.distances_to(ids).double()
    assert (
        abs(path.uniform_distance() - d.mean().item()) < 1e-6
        and abs(ours.uniform_distance() - ours.distances_to(ids).double().mean().item()) < 1e-6
    )
    # p_t(x | x1 = zero code) is the authors' softmax(-beta_t d): c (t / (1 - t))^alpha with c 3, alpha 0.9
    beta = 3.0 * (0.5 / 0.5) ** 0.9
    assert torch.allclose(
        path.probs(torch.tensor([13]), 0.5)[0], torch.softmax(-beta * theirs[13], -1), atol=1e-6
    )
