"""NVIDIA Cosmos-Tokenizer discrete video checkpoints (CausalDV, FSQ) as a VisualTokenizer.

A released checkpoint (`nvidia/Cosmos-0.1-Tokenizer-DV4x8x8`, `DV8x8x8`, `DV8x16x16`) is a
folder of TorchScript files. The contract, as NVIDIA's `cosmos_tokenizer.video_lib.
CausalVideoTokenizer` uses it:
- `encoder.jit`: video float (B, 3, F, H, W) in [-1, 1] -> a tuple whose first two entries are
  the FSQ indices long (B, T, h, w) in [0, prod(levels)) and the codes float (B, D, T, h, w) on
  the FSQ grid (a third entry, the quantiser loss, is ignored);
- `decoder.jit`: indices (B, T, h, w) -> video float (B, 3, F, H, W) in [-1, 1].
Pixels map to [-1, 1] as 2 * x / 255 - 1 and back as round(255 * clamp((y + 1) / 2, 0, 1)).
The encoder is causal in time: the first frame is a latent frame of its own, then every
`temporal_compression` frames make one, so F = 1 + ct * (T - 1); H and W are multiples of the
spatial compression. Frame counts and sizes that do not fit are an error here (NVIDIA's script
pads them; padding would silently change what is measured).

The codebook embeddings the metric path needs are the dequantised FSQ grid
(`ursa.tokenizers.fsq.fsq_codebook`), in the index order the encoder's codes are checked against.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ursa.io import read_json_object
from ursa.tensor_checks import describe
from ursa.tokenizers.base import VisualTokenizer
from ursa.tokenizers.fsq import COSMOS_LEVELS, fsq_codebook, fsq_codes_to_indices

ENCODER, DECODER, CONFIG = "encoder.jit", "decoder.jit", "config.json"
OBTAIN = (
    "download a discrete video checkpoint of NVIDIA Cosmos-Tokenizer, e.g. "
    "`huggingface-cli download nvidia/Cosmos-0.1-Tokenizer-DV4x8x8 --local-dir DIR` "
    "(DV8x8x8 and DV8x16x16 likewise), on a machine with internet access"
)
DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
}  # NVIDIA runs the release in bfloat16 on GPUs
_NAME = re.compile(
    r"DV(\d+)x(\d+)x(\d+)"
)  # Cosmos-0.1-Tokenizer-DV4x8x8: temporal x height x width


class MissingFilesError(ValueError):
    """Raised before any compute: lists every missing file, where it is expected and how to get it."""

    def __init__(self, what: str, missing: Sequence[Path], how: str) -> None:
        self.missing = list(missing)
        lines = [f"{what}: {len(self.missing)} required file(s) missing:"]
        lines += [f"  - {p}  (obtain: {how})" for p in self.missing]
        super().__init__("\n".join(lines))


def require_files(what: str, paths: Sequence[Path], how: str) -> None:
    """MissingFilesError naming every path of `paths` that is not a file."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise MissingFilesError(what, missing, how)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_torchscript(path: Path, device: str | torch.device) -> torch.jit.ScriptModule:
    """torch.jit.load(path, map_location=device) in eval mode; a damaged file is a clear ValueError."""
    try:
        with (
            warnings.catch_warnings()
        ):  # torch >= 2.10 flags TorchScript as deprecated; the release is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    except Exception as exc:  # noqa: BLE001 - TorchScript raises RuntimeError/ValueError/OSError variously
        raise ValueError(
            f"{path}: expected a TorchScript module saved with torch.jit.save, could not load it "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None


def pixels_to_unit(video: torch.Tensor) -> torch.Tensor:
    """uint8 (B, F, H, W, 3) -> float32 (B, 3, F, H, W) in [-1, 1], Cosmos's input layout and range."""
    return video.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def unit_to_pixels(video: torch.Tensor) -> torch.Tensor:
    """float (B, 3, F, H, W) in [-1, 1] -> uint8 (B, F, H, W, 3), rounded as Cosmos's tensor2numpy."""
    return (
        ((video.float() + 1.0) / 2.0)
        .clamp(0, 1)
        .mul(255.0)
        .add(0.5)
        .floor()
        .to(torch.uint8)
        .permute(0, 2, 3, 4, 1)
    )


@dataclass(frozen=True)
class CausalGeometry:
    """FSQ levels and compression factors of a causal video tokenizer."""

    levels: tuple[int, ...]
    temporal_compression: int
    spatial_compression: int

    def latent_shape(
        self, num_frames: int, height: int, width: int, what: str = "video"
    ) -> tuple[int, int, int]:
        """(T, h, w) = ((F - 1) / ct + 1, H / s, W / s); ValueError naming what does not fit."""
        ct, s = self.temporal_compression, self.spatial_compression
        bad = []
        if num_frames < 1 or (num_frames - 1) % ct:
            bad.append(f"1 + {ct} * k frames (e.g. {1 + ct} or {1 + 4 * ct}), got {num_frames}")
        if height < s or height % s or width < s or width % s:
            bad.append(f"height and width multiples of {s}, got {height} x {width}")
        if bad:
            raise ValueError(
                f"{what}: expected " + " and ".join(bad) + f" (causal compression {ct}x{s}x{s})"
            )
        return (num_frames - 1) // ct + 1, height // s, width // s


def _from_folder(folder: Path) -> dict[str, object]:
    """Levels / compressions named by the folder's config.json (Cosmos's TokenizerConfigs keys), else by
    its name (`...DV4x8x8`)."""
    found: dict[str, object] = {}
    path = folder / CONFIG
    if path.is_file():
        cfg = read_json_object(path)
        found.update(
            {
                k: cfg[k]
                for k in ("levels", "temporal_compression", "spatial_compression")
                if k in cfg
            }
        )
    match = _NAME.search(folder.resolve().name)
    if match and match.group(2) == match.group(3):
        found.setdefault("temporal_compression", int(match.group(1)))
        found.setdefault("spatial_compression", int(match.group(2)))
    return found


def resolve_geometry(
    folder: str | Path,
    levels: Sequence[int] | None = None,
    temporal_compression: int | None = None,
    spatial_compression: int | None = None,
) -> CausalGeometry:
    """The geometry from explicit arguments, else the folder's config.json, else its name; levels default
    to Cosmos's (8, 8, 8, 5, 5, 5). An argument that contradicts the folder is an error, not a silent pick."""
    folder = Path(folder)
    found = _from_folder(folder)
    given = {
        "levels": None if levels is None else list(levels),
        "temporal_compression": temporal_compression,
        "spatial_compression": spatial_compression,
    }
    merged: dict[str, Any] = {}
    for key, value in given.items():
        known = found.get(key)
        if value is not None and known is not None and known != value:
            raise ValueError(
                f"cosmos tokenizer {folder}: {key} is {value!r} in the options but {known!r} in the "
                f"checkpoint folder ({CONFIG} or its name); expected them equal (drop the option)"
            )
        merged[key] = value if value is not None else known
    merged["levels"] = merged["levels"] or list(COSMOS_LEVELS)
    lv = merged["levels"]
    if (
        not isinstance(lv, list)
        or not lv
        or any(not isinstance(n, int) or isinstance(n, bool) or n < 2 for n in lv)
    ):
        raise ValueError(
            f"cosmos tokenizer {folder}: levels: expected a list of ints >= 2, got {lv!r}"
        )
    for key, allowed in (("temporal_compression", (4, 8)), ("spatial_compression", (8, 16))):
        if merged[key] not in allowed:
            raise ValueError(
                f"cosmos tokenizer {folder}: {key}: expected one of {allowed} (from the options, "
                f"{CONFIG} or a folder name like Cosmos-0.1-Tokenizer-DV4x8x8), got {merged[key]!r}"
            )
    return CausalGeometry(
        tuple(lv), int(merged["temporal_compression"]), int(merged["spatial_compression"])
    )


class CosmosTokenizer(VisualTokenizer):
    """A Cosmos discrete video tokenizer from a local checkpoint folder (encoder.jit, decoder.jit).

    video uint8 (B, F, H, W, 3) <-> ids long (B, T, h, w), K = prod(levels) (64,000 for the release);
    `batch_size` clips go through the encoder / decoder at a time (bounds memory), on `device` in
    `dtype` (float32, or bfloat16 as NVIDIA's own loader runs it); outputs are on the CPU.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        levels: Sequence[int] | None = None,
        temporal_compression: int | None = None,
        spatial_compression: int | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 1,
        check_codes: bool = True,
    ) -> None:
        self.folder = Path(folder)
        require_files(
            f"cosmos tokenizer {self.folder}",
            [self.folder / ENCODER, self.folder / DECODER],
            OBTAIN,
        )
        if batch_size < 1:
            raise ValueError(f"batch_size: expected an integer >= 1, got {batch_size}")
        self.geometry = resolve_geometry(
            self.folder, levels, temporal_compression, spatial_compression
        )
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {', '.join(DTYPES)}, got {dtype!r}")
        self.device, self.dtype = torch.device(device), DTYPES[dtype]
        self.batch_size, self.check_codes = batch_size, check_codes
        self.encoder = load_torchscript(self.folder / ENCODER, self.device).to(self.dtype)
        self.decoder = load_torchscript(self.folder / DECODER, self.device).to(self.dtype)
        self._fp: str | None = None

    @property
    def vocab_size(self) -> int:
        return math.prod(self.geometry.levels)

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        return self.geometry.latent_shape(
            num_frames, height, width, f"cosmos tokenizer {self.folder}: video"
        )

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.validate_video(video)
        shape = self.latent_shape(*video.shape[1:4])  # before any compute
        out = [
            self._encode_chunk(video[i : i + self.batch_size], shape)
            for i in range(0, len(video), self.batch_size)
        ]
        return torch.cat(out) if out else torch.zeros((0, *shape), dtype=torch.long)

    def _encode_chunk(self, video: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """uint8 (b, F, H, W, 3) -> long (b, T, h, w), checked against the declared geometry."""
        result = self.encoder(pixels_to_unit(video).to(self.device, self.dtype))
        where = f"cosmos tokenizer {self.folder / ENCODER}"
        if not isinstance(result, (tuple, list)) or len(result) < 2:
            raise ValueError(
                f"{where}: expected a discrete (DV) encoder returning (indices, codes, ...), got "
                f"{describe(result)} (a continuous CV checkpoint?)"
            )
        ids, codes = result[0].cpu(), result[1].cpu()
        want = (len(video), *shape)
        if ids.dtype not in (torch.int32, torch.int64) or tuple(ids.shape) != want:
            raise ValueError(
                f"{where}: expected indices of shape {want} (levels {self.geometry.levels}, compression "
                f"{self.geometry.temporal_compression}x{self.geometry.spatial_compression}), got {describe(ids)}"
            )
        self.validate_ids(ids, "encoder indices")
        if self.check_codes and not self._codes_match(codes, ids):
            raise ValueError(
                f"{where}: the encoder's codes do not map to its indices under FSQ levels "
                f"{self.geometry.levels} (first level fastest); expected the checkpoint's levels "
                f"in the options or {CONFIG}"
            )
        return ids.long()

    def _codes_match(self, codes: torch.Tensor, ids: torch.Tensor) -> bool:
        """Whether codes float (b, D, T, h, w) are the FSQ grid points of ids under the declared levels: the
        metric path's codebook (fsq_codebook) is only right if the levels and the index order match."""
        if (
            codes.dim() != 5
            or codes.shape[1] != len(self.geometry.levels)
            or not codes.is_floating_point()
        ):
            return False
        try:
            return torch.equal(
                fsq_codes_to_indices(codes.movedim(1, -1), self.geometry.levels), ids.long()
            )
        except ValueError:  # a code off the declared grid
            return False

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        self.validate_ids(ids)
        out = []
        for i in range(0, len(ids), self.batch_size):
            video = self.decoder(ids[i : i + self.batch_size].long().to(self.device))
            if not isinstance(video, torch.Tensor) or video.dim() != 5 or video.shape[1] != 3:
                raise ValueError(
                    f"cosmos tokenizer {self.folder / DECODER}: expected video float (B, 3, F, H, W), "
                    f"got {describe(video)}"
                )
            out.append(unit_to_pixels(video.cpu()))
        return torch.cat(out)

    def codebook_embeddings(self) -> torch.Tensor:
        """float32 (K, len(levels)): the dequantised FSQ grid in index order."""
        return fsq_codebook(self.geometry.levels)

    def fingerprint(self) -> str:
        """sha256 of the geometry and of both TorchScript files' bytes (computed once)."""
        if self._fp is None:
            h = hashlib.sha256(
                json.dumps(
                    [
                        list(self.geometry.levels),
                        self.geometry.temporal_compression,
                        self.geometry.spatial_compression,
                    ]
                ).encode()
            )
            for name in (ENCODER, DECODER):
                h.update(file_sha256(self.folder / name).encode())
            self._fp = h.hexdigest()[:16]
        return self._fp
