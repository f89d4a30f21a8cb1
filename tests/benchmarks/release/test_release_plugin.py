"""benchmarks/release: the release's tokenizers as plug-ins. Registered by the entry point; a folder
missing files fails spec validation with one error listing them; the tokenizers built from their
options decode the authors' golden ids (tests/ursa/tokenizers/test_*_golden.safetensors) to the
pixels the authors' modules gave; the text tokenizer's negative prompt is its `uncond`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from harness import plugins
from harness.spec import SpecError, resolve_run

TESTS = Path(__file__).parents[2]
sys.path.insert(0, str(TESTS / "ursa"))
from test_release_helpers import load_golden, make_tokenizer  # noqa: E402


def write_vae(root: Path, name: str) -> tuple[Path, dict]:
    """A release folder whose vae/ is the golden tiny tokenizer `name` (cosmos3d or ibq); its cases."""
    config, weights, cases = load_golden(
        TESTS / "ursa" / "tokenizers" / f"test_{name}_golden.safetensors"
    )
    (root / "vae").mkdir(parents=True)
    (root / "vae" / "config.json").write_text(json.dumps(config))
    save_file(weights, str(root / "vae" / "diffusion_pytorch_model.safetensors"))
    return root, cases


def to_uint8(y: torch.Tensor) -> torch.Tensor:
    """The authors' float output (B, C, ...) -> uint8 channels-last, truncated (VaeImageProcessor)."""
    return (y * 127.5 + 127.5).clamp(0, 255).to(torch.uint8).movedim(1, -1)


def run(**sections):
    return resolve_run(
        {"benchmark": {"name": "shapes"}, "score": {"which": ["flicker"]}, **sections}, "spec.yaml"
    )


def test_registered() -> None:
    assert {"release_fsq", "release_ibq"} <= set(plugins.VISUAL_TOKENIZERS.names())
    assert "release_text" in plugins.TEXT_TOKENIZERS.names()


def test_missing_files_and_bad_config_fail_validation_in_one_paragraph(tmp_path: Path) -> None:
    for name, what in (("release_fsq", "AutoencoderVQCosmos3D"), ("release_ibq", "AutoencoderVQ")):
        with pytest.raises(SpecError) as err:
            run(tokenizer={"name": name, "path": str(tmp_path)})
        msg = str(err.value)
        assert (
            msg.startswith("spec.yaml: tokenizer.path: expected a release folder with")
            and "\n" not in msg
        )
        assert f"2 missing in {tmp_path}: vae/config.json (" in msg and what in msg
        assert "vae/diffusion_pytorch_model.safetensors (" in msg
    with pytest.raises(
        SpecError,
        match=r"text_tokenizer.path: expected a release folder with the Qwen3 text "
        r"tokenizer; 2 missing .*tokenizer/tokenizer_config.json",
    ):
        run(text_tokenizer={"name": "release_text", "path": str(tmp_path)})
    with pytest.raises(SpecError, match="which is not a directory"):
        run(tokenizer={"name": "release_fsq", "path": str(tmp_path / "absent")})
    root, _ = write_vae(tmp_path / "ibq", "ibq")  # an IBQ vae/ named as the FSQ video tokenizer
    with pytest.raises(
        SpecError,
        match="tokenizer.path: .*_class_name 'AutoencoderVQCosmos3D', got 'AutoencoderVQ'",
    ):
        run(tokenizer={"name": "release_fsq", "path": str(root)})


@pytest.mark.parametrize(
    "name,golden,case", [("release_fsq", "cosmos3d", "9"), ("release_ibq", "ibq", "2")]
)
def test_built_tokenizer_decodes_the_authors_ids(
    tmp_path: Path, name: str, golden: str, case: str
) -> None:
    root, cases = write_vae(tmp_path, golden)
    cls = plugins.VISUAL_TOKENIZERS.get(name)
    options = cls.Options.model_validate({"path": str(root)})
    tok = cls.build(options, None, tmp_path)
    _, ids, decoded = cases[case]
    assert (
        cls.vocab_size(options) == tok.vocab_size == {"release_fsq": 64000, "release_ibq": 64}[name]
    )
    ids = ids if ids.dim() == 4 else ids[:, None]  # images: one frame each
    out = tok.decode(ids)
    ref = to_uint8(decoded) if decoded.dim() == 5 else to_uint8(decoded)[:, None]
    assert (
        out.shape == ref.shape and (out.int() - ref.int()).abs().max() <= 1
    )  # float-order noise at truncation
    half = cls.build(
        cls.Options.model_validate({"path": str(root), "dtype": "bfloat16"}), None, tmp_path
    )
    assert next(half.model.parameters()).dtype == torch.bfloat16


def test_release_text_options_and_negative_prompt(tmp_path: Path) -> None:
    make_tokenizer(tmp_path / "tokenizer")
    cls = plugins.TEXT_TOKENIZERS.get("release_text")
    options = cls.Options.model_validate(
        {
            "path": str(tmp_path),
            "prefix": "motion=9.0, ",
            "max_length": 6,
            "negative_prompt": "worst quality,",
        }
    )
    tok = cls.build(options, None, tmp_path)
    ids, mask = tok(["a red circle"])
    assert ids.tolist() == [[0, 0, 1, 2, 3, 5]] and mask.tolist() == [
        [False, False, True, True, True, True]
    ]
    neg, neg_mask = tok.uncond(2)
    assert neg.tolist() == [[0, 0, 0, 0, 12, 13]] * 2 and neg_mask.sum().item() == 4
    fps = {
        cls.fingerprint(
            cls.build(cls.Options.model_validate({"path": str(tmp_path), **o}), None, tmp_path)
        )
        for o in (
            {},
            {"negative_prompt": "worst quality,"},
            {"prefix": "motion=9.0, "},
            {"max_length": 6},
        )
    }
    assert len(fps) == 4  # every option that changes ids enters the fingerprint
