import warnings

import pytest
import torch
from safetensors.torch import save_file

from benchmarks.shapes.cache import FingerprintMismatch
from benchmarks.shapes.prompts import load_suite, real_videos
from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
from benchmarks.shapes.world import WorldConfig
from harness.cachefile import load_checked, tensors_sha256


def test_encode_decode_shapes_and_reconstruction(shapes_tokenizer):
    tok = shapes_tokenizer
    video = real_videos(load_suite("eval", 40, 3))
    ids = tok.encode(video)
    assert ids.dtype == torch.long and ids.shape == (40, *tok.latent_shape(8, 32, 32)) == (
        40,
        8,
        8,
        8,
    )
    assert int(ids.min()) >= 0 and int(ids.max()) < tok.vocab_size == 509
    recon = tok.decode(ids)
    assert recon.dtype == torch.uint8 and recon.shape == video.shape
    wrong = (recon != video).any(-1).float().mean().item()
    assert wrong < 0.005, f"tokenizer pixel error {wrong:.4f} >= 0.5% (measured ~0.03%)"
    assert torch.equal(
        tok.encode(recon), ids
    )  # decoded patches are codebook entries: a fixed point
    emb = tok.codebook_embeddings()
    assert emb.shape == (509, 48) and emb.dtype == torch.float32
    # distance carries visual similarity: the background code is nearer a 1-pixel code than a full patch
    d = torch.cdist(emb[:1], emb)[0]
    assert d[0] == 0 and d[1:].min() > 0


def test_cache_reuse_corruption_and_fingerprint(tmp_path, capsys):
    cfg = WorldConfig()
    a = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    (path,) = tmp_path.glob("tokenizer-*.safetensors")
    b = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    assert torch.equal(a.masks, b.masks) and a.fingerprint() == b.fingerprint()
    assert (
        load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32, seed=1).fingerprint()
        != a.fingerprint()
    )
    capsys.readouterr()
    path.write_bytes(b"not a safetensors file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one plain line, no UserWarning with a source line
        c = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    lines = capsys.readouterr().err.splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith(f"{path}: damaged cache (unreadable")
        and "rebuilding" in lines[0]
    )
    assert torch.equal(c.masks, a.masks)  # rebuilt deterministically
    # 64 bytes XORed in the tensor data (the end of the file): same size, still parses, caught by sha256
    raw = bytearray(path.read_bytes())
    raw[-64:] = bytes(x ^ 0x5A for x in raw[-64:])
    path.write_bytes(bytes(raw))
    d = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    (line,) = capsys.readouterr().err.splitlines()
    assert "differ from their stored sha256" in line and torch.equal(d.masks, a.masks)
    assert (
        load_checked(path, ("masks",))[1]["fingerprint"] == a.fingerprint()
    )  # the rebuilt file checks out
    save_file(
        {"masks": a.masks},
        str(path),
        metadata={"fingerprint": "0" * 16, "sha256": tensors_sha256({"masks": a.masks})},
    )
    with pytest.raises(FingerprintMismatch, match="fingerprint"):
        load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)


def test_bad_input(shapes_tokenizer):
    with pytest.raises(ValueError, match="codebook_size"):
        load_or_fit_tokenizer(None, None, codebook_size=100)
    with pytest.raises(ValueError, match="uint8"):
        shapes_tokenizer.encode(torch.zeros(1, 8, 32, 32, 3))
    with pytest.raises(ValueError, match="divisible"):
        shapes_tokenizer.encode(torch.zeros(1, 8, 30, 32, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="ids"):
        shapes_tokenizer.decode(torch.full((1, 8, 8, 8), 509))


def test_rank_correlation_of_the_metric_distance_with_pixel_labels(tmp_path):
    """After the metric path's L2 normalisation, codebook distance must order patches like their
    pixels do: Spearman rho with the palette-label Hamming distance, measured 0.71 centred (raw RGB
    rows gave 0.24, with the empty patch's nearest neighbour the solid blue one)."""
    import torch.nn.functional as F
    from scipy.stats import spearmanr

    from benchmarks.shapes.world import palette_labels

    cfg = WorldConfig(frames=4, height=16, width=16, max_objects=1, speed=1.0)
    tok = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=65, seed=0)
    emb = F.normalize(tok.codebook_embeddings(), dim=-1)
    labels = torch.from_numpy(
        palette_labels(tok.decode(torch.arange(65).view(1, 65, 1, 1)).numpy())[0]
    )
    labels = labels.reshape(65, -1)
    hamming = (labels[:, None] != labels[None]).sum(-1).float()
    iu = torch.triu_indices(65, 65, 1)
    rho = spearmanr(torch.cdist(emb, emb)[iu[0], iu[1]], hamming[iu[0], iu[1]]).correlation
    assert rho > 0.65, rho
    nearest_to_empty = torch.cdist(emb[:1], emb)[0, 1:].argmin() + 1
    empty = labels[0]
    assert (labels[nearest_to_empty] != empty).sum() <= 4  # a small speck, not a solid patch
