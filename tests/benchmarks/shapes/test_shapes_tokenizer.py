import pytest
import torch
from safetensors.torch import save_file

from benchmarks.shapes.cache import FingerprintMismatch
from benchmarks.shapes.prompts import load_suite, real_videos
from benchmarks.shapes.tokenizer import load_or_fit_tokenizer
from benchmarks.shapes.world import WorldConfig


def test_encode_decode_shapes_and_reconstruction(shapes_tokenizer):
    tok = shapes_tokenizer
    video = real_videos(load_suite("eval", 40, 3))
    ids = tok.encode(video)
    assert ids.dtype == torch.long and ids.shape == (40, *tok.latent_shape(8, 32, 32)) == (40, 8, 8, 8)
    assert int(ids.min()) >= 0 and int(ids.max()) < tok.vocab_size == 509
    recon = tok.decode(ids)
    assert recon.dtype == torch.uint8 and recon.shape == video.shape
    wrong = (recon != video).any(-1).float().mean().item()
    assert wrong < 0.005, f"tokenizer pixel error {wrong:.4f} >= 0.5% (measured ~0.03%)"
    assert torch.equal(tok.encode(recon), ids)  # decoded patches are codebook entries: a fixed point
    emb = tok.codebook_embeddings()
    assert emb.shape == (509, 48) and emb.dtype == torch.float32
    # distance carries visual similarity: the background code is nearer a 1-pixel code than a full patch
    d = torch.cdist(emb[:1], emb)[0]
    assert d[0] == 0 and d[1:].min() > 0


def test_cache_reuse_corruption_and_fingerprint(tmp_path):
    cfg = WorldConfig()
    a = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    (path,) = tmp_path.glob("tokenizer-*.safetensors")
    b = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    assert torch.equal(a.masks, b.masks) and a.fingerprint() == b.fingerprint()
    assert load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32, seed=1).fingerprint() != a.fingerprint()
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="corrupt"):
        c = load_or_fit_tokenizer(tmp_path, cfg, codebook_size=33, fit_clips=32)
    assert torch.equal(c.masks, a.masks)  # rebuilt deterministically
    save_file({"masks": a.masks}, str(path), metadata={"fingerprint": "0" * 16})
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
