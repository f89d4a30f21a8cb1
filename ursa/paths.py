"""Discrete probability paths p_t(x | x1) for URSA training corruption and CTMC sampling
(docs/math.md, "Probability paths" and "Velocity and the Euler sampler").

- `MetricPath`: p_t(x | x1) = softmax_x(-beta_t d(x, x1)), d = squared distance between
  L2-normalised codebook rows, with the kinetic-optimal velocity
  u(x) = beta_dot_t p_t(x | x1) max(0, d(x_t, x1) - d(x, x1)).
- `MixturePath`: keep x1 w.p. kappa_t = t^n, else a uniform id; u = kappa_dot/(1-kappa) on x1.
- `MaskedPath`: keep x1 w.p. kappa_t, else the mask id K; only masked tokens move.

Each path's settings, the `path:` section of a spec, are its config in ursa.path_config
(`MetricPathConfig`, ...). A new path is a plug-in: a ProbPath subclass here (or in the plug-in)
and a registered PathConfig subclass.

Time: t = 0 noise, t = 1 clean (t = 1 exactly: sample returns x1, velocity is 0, step keeps x_t).
Randomness: every method draws its per-token uniforms for the whole batch first, so results do
not depend on how MetricPath chunks tokens (chunked == unchunked, bitwise). `draw` gives the
numbers `sample` would draw, so a part of a batch is corrupted as within the whole
(`sample(part, t, noise=the part's slice)` == the part of `sample(whole, t)`, bitwise): a process
of a distributed run corrupts only its own clips of a batch-wide draw.

Host syncs: the value checks of ids and times read the tensors back (free on the CPU, a sync on an
accelerator). `sample(..., validate=False)` skips them for inputs already checked where they were
made (the training loop checks the data's ids once and draws times on the host), and MetricPath
then works through every token in fixed chunks instead of finding the noisy ones (a nonzero: a sync).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import torch

from ursa.schedule import beta, beta_dot
from ursa.tensor_checks import check_ids, check_tensor, check_time

_ROW_PAD = (
    8  # BLAS picks kernels by row count; padding rows keeps per-row results chunk-independent
)


def _check_ids(name: str, x: torch.Tensor, high: int, validate: bool = True) -> torch.Tensor:
    """Integer tensor with values in [0, high) -> long tensor (validate=False: dtype only, no sync)."""
    if not validate:
        check_tensor(name, x, (torch.int64, torch.int32))
        return x.long()
    return check_ids(name, x, high).long()


def _check_time(
    name: str,
    t: float | torch.Tensor,
    shape: torch.Size,
    device: torch.device,
    validate: bool = True,
) -> torch.Tensor:
    """t (float, or float tensor broadcastable to shape, values in [0, 1]) -> float64 (N,) flat
    (validate=False: the values are not read, no sync)."""
    if validate:
        tt = check_time(name, t, device)
    elif isinstance(t, torch.Tensor) and t.is_floating_point():
        tt = t.to(device=device, dtype=torch.float64)
    else:
        tt = torch.tensor(float(t), dtype=torch.float64, device=device)
    try:
        ok = torch.broadcast_shapes(tt.shape, shape) == shape
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"{name}: expected a shape broadcastable to {tuple(shape)}, got {tuple(tt.shape)}"
        )
    return tt.expand(shape).reshape(-1)


def _check_same_shape(x_t: torch.Tensor, x1: torch.Tensor) -> None:
    if x_t.shape != x1.shape:
        raise ValueError(f"x_t: expected the shape of x1 {tuple(x1.shape)}, got {tuple(x_t.shape)}")


class ProbPath(ABC):
    """A probability path over `num_states` token states for ids in [0, vocab_size).

    Shapes: x1, x_t long (...); t float or float tensor broadcastable to x1 (e.g. one value
    per frame); velocity -> float32 (..., num_states).
    """

    vocab_size: int
    num_states: int
    # the authors' sampler leaves the noise unchanged at its first step on this path
    # (SamplerConfig.compat_still_first_step): their metric path has no rate at t = 0
    still_at_start: ClassVar[bool] = False

    def source(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """x_0, the source distribution the sampler starts from: long `shape`, uniform ids in
        [0, vocab_size) by default."""
        return torch.randint(self.vocab_size, shape, generator=generator, device=device)

    def in_dtype(self, dtype: torch.dtype) -> ProbPath:
        """This path computing in `dtype` (sampling precision "release"); one without float
        tables computes the same in any dtype: itself."""
        return self

    @abstractmethod
    def draw(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """The random numbers `sample` draws for n tokens, in its order: tensors of leading size n."""

    @abstractmethod
    def sample(
        self,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        noise: tuple[torch.Tensor, ...] | None = None,
        validate: bool = True,
    ) -> torch.Tensor:
        """x_t ~ p_t(. | x1), long (...). noise: `draw`'s numbers for x1's tokens (flat order; e.g. a
        slice of a larger draw) instead of drawing from `generator`. validate=False: ids and times
        are not read back (module docstring: host syncs)."""

    def _noise_of(
        self,
        noise: tuple[torch.Tensor, ...] | None,
        n: int,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> tuple[torch.Tensor, ...]:
        if noise is None:
            return self.draw(n, generator, device)
        if any(u.shape[0] != n for u in noise):
            raise ValueError(
                f"noise: expected tensors of leading size {n} (x1's tokens), got "
                f"{[tuple(u.shape) for u in noise]}"
            )
        return noise

    @abstractmethod
    def velocity(
        self, x_t: torch.Tensor, x1: torch.Tensor, t: float | torch.Tensor
    ) -> torch.Tensor:
        """Jump rates out of x_t towards x1, float32 (..., num_states), >= 0, 0 at x_t."""

    @abstractmethod
    def step(
        self,
        x_t: torch.Tensor,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        h: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One Euler CTMC step t -> t + h: jump w.p. 1 - exp(-h r), r = total rate, to a state
        drawn from u / r. Tokens with t >= 1 do not move. Returns long (...)."""

    def _check_step(
        self,
        x_t: torch.Tensor,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        h: float | torch.Tensor,
        x_t_high: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Validate step inputs -> flat (x_t, x1, t, h)."""
        x1 = _check_ids("x1", x1, self.vocab_size)
        x_t = _check_ids("x_t", x_t, x_t_high)
        _check_same_shape(x_t, x1)
        tt = _check_time("t", t, x1.shape, x1.device)
        hh = _check_time("h", h, x1.shape, x1.device)
        over = (tt < 1) & (tt + hh > 1 + 1e-9)  # clean tokens (t = 1) may take any h: they stay
        if bool(over.any()):
            raise ValueError(
                f"h: expected t + h <= 1 where t < 1, got t + h up to {float((tt + hh)[over].max())}"
            )
        return x_t.reshape(-1), x1.reshape(-1), tt, hh


class MetricPath(ProbPath):
    """URSA's metric path over K codebook states (see module docstring).

    Works on `chunk_size` tokens at a time: working memory is at most 2 float32 buffers of
    (chunk_size, K) (3 in velocity at t = 0 with alpha < 1) besides outputs that are (..., K)
    by definition (velocity, probs, distances_to). Distances are one (chunk, D) x (D, K) matmul: d = 2 - 2 cos, clamped to
    [0, 4], with d(x1, x1) = 0 exactly. Zero rows are allowed (cos = 0 with everything). Categorical draws use inverse CDFs from a sequential
    float32 cumsum (row-order-independent; relative error of the CDF <~ K * 2^-24).

    zero_rows: the distance of a zero row (FSQ grids hold the all-zero code) to the others.
    "equidistant": 2 - 2 cos = 2 to every other state (it has no direction). "origin": the zero
    row stays the origin after normalisation, d = |e_x|^2 + |e_y|^2 - 2 e_x.e_y = 1 to unit rows
    and 0 to other zero rows, as the authors' released scheduler computes it
    (MetricDiscreteProbPath.get_dist; ursa.release.build_release_path). Both agree on other rows, bitwise.
    """

    still_at_start = True

    def __init__(
        self,
        embeddings: torch.Tensor,
        c: float = 3.0,
        alpha: float = 0.9,
        chunk_size: int = 4096,
        zero_rows: Literal["equidistant", "origin"] = "equidistant",
    ) -> None:
        if (
            not isinstance(embeddings, torch.Tensor)
            or not embeddings.is_floating_point()
            or embeddings.dim() != 2
        ):
            got = (
                f"{embeddings.dtype} of shape {tuple(embeddings.shape)}"
                if isinstance(embeddings, torch.Tensor)
                else type(embeddings).__name__
            )
            raise ValueError(f"embeddings: expected a 2-D float tensor (K, D), got {got}")
        if embeddings.shape[0] < 2 or embeddings.shape[1] < 1:
            raise ValueError(
                f"embeddings: expected K >= 2 rows and D >= 1 columns, got {tuple(embeddings.shape)}"
            )
        norms = embeddings.to(torch.float64).norm(dim=1)
        bad = (~torch.isfinite(embeddings).all(1)).nonzero().flatten()
        if len(bad) or not bool((norms > 0).any()):
            first = f" (first: row {int(bad[0])})" if len(bad) else ""
            raise ValueError(
                f"embeddings: expected finite rows, at least one with non-zero norm, got "
                f"{len(bad)} non-finite rows{first} and {int((norms == 0).sum())} zero rows"
            )
        for name, v in (("c", c), ("alpha", alpha)):
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{name}: expected a number > 0, got {v!r}")
        if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size: expected an int >= 1, got {chunk_size!r}")
        if zero_rows not in ("equidistant", "origin"):
            raise ValueError(f"zero_rows: expected 'equidistant' or 'origin', got {zero_rows!r}")
        # F.normalize semantics: a zero row (FSQ grids contain the all-zero code) stays zero, so
        # cos = 0 and d = 2 to every other state: it is equidistant, having no direction.
        self.embeddings = (
            (embeddings.to(torch.float64) / norms.clamp_min(1e-12)[:, None])
            .to(torch.float32)
            .contiguous()
        )
        self._num_zero_rows = int((norms == 0).sum())
        self.zero_rows = zero_rows
        # "origin": 1 for each zero row, subtracted from 2 - 2 cos once per zero end (exact 0 elsewhere)
        self._deficit = (
            (norms == 0).to(torch.float32)
            if zero_rows == "origin" and self._num_zero_rows
            else None
        )
        self._e_t = self.embeddings.T.contiguous()  # (D, K)
        self.c, self.alpha, self.chunk_size = float(c), float(alpha), chunk_size
        self.vocab_size = self.num_states = embeddings.shape[0]

    def in_dtype(self, dtype: torch.dtype) -> MetricPath:
        """This path with distances, path probabilities and jump weights computed in `dtype` (a
        copy; float16 is the authors' released scheduler, which casts its codebook to fp16; the
        hazard and the draws' uniforms stay float64). float32 returns this path."""
        if dtype == self.embeddings.dtype:
            return self
        other = copy.copy(self)
        other.embeddings, other._e_t = self.embeddings.to(dtype), self._e_t.to(dtype)
        other._deficit = None if self._deficit is None else self._deficit.to(dtype)
        return other

    # -- distances ---------------------------------------------------------------------------
    def _dist_rows(self, x1: torch.Tensor) -> torch.Tensor:
        """d(x, x1[i]) for all K states: float32 (len(x1), K)."""
        m = x1.shape[0]
        rows = self.embeddings.new_zeros(-(-m // _ROW_PAD) * _ROW_PAD, self._e_t.shape[0])
        rows[:m] = self.embeddings[x1]
        d = (rows @ self._e_t)[:m]
        d.mul_(-2).add_(2)
        if self._deficit is not None:
            d.sub_(self._deficit[None, :]).sub_(self._deficit[x1][:, None])
        d.clamp_(0, 4)
        return d.scatter_(1, x1[:, None], 0.0)

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """d(x, y) elementwise, float32 (...) for ids x, y long (...) of the same shape."""
        x, y = _check_ids("x", x, self.vocab_size), _check_ids("y", y, self.vocab_size)
        if x.shape != y.shape:
            raise ValueError(f"y: expected the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
        cos = (self.embeddings[x] * self.embeddings[y]).sum(-1)
        d = 2 - 2 * cos
        if self._deficit is not None:
            d = d - self._deficit[x] - self._deficit[y]
        return torch.where(x == y, 0.0, d.clamp(0, 4))

    def distances_to(self, x1: torch.Tensor) -> torch.Tensor:
        """d(x, x1) for every state x, float32 (..., K)."""
        x1 = _check_ids("x1", x1, self.vocab_size)
        flat = x1.reshape(-1)
        out = self.embeddings.new_empty(flat.shape[0], self.vocab_size)
        for s in range(0, flat.shape[0], self.chunk_size):
            out[s : s + self.chunk_size] = self._dist_rows(flat[s : s + self.chunk_size])
        return out.view(*x1.shape, self.vocab_size)

    def uniform_distance(self) -> float:
        """D(0) = E d(x, y) for x, y uniform ids = 2 - 2 |mean_x e(x)|^2, less the 2 / K^2 that
        formula charges for d(z, z) = 0 of each zero row z ("origin": less 2 / K per zero row,
        E |e_x|^2 + E |e_y|^2 with d(z, z) = 0 already in it)."""
        mean = self.embeddings.to(torch.float64).mean(0)
        zero = self._num_zero_rows / self.vocab_size
        return float(
            2
            - 2 * mean.dot(mean)
            - 2 * zero * (1 if self.zero_rows == "origin" else 1 / self.vocab_size)
        )

    # -- path ----------------------------------------------------------------------------------
    def _chunks(self, active: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Indices of active tokens, chunk_size at a time."""
        idx = active.nonzero().squeeze(1)
        return idx.split(self.chunk_size)

    # Per-chunk work lives in helpers so each chunk's (m, K) buffers are freed on return,
    # before the next chunk allocates.
    def _probs_rows(self, x1: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        w = self._dist_rows(x1).mul_(-b[:, None]).exp_()  # max logit is 0 at x1: stable softmax
        return w.div_(w.cumsum(1)[:, -1:])

    def _sample_rows(self, x1: torch.Tensor, b: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return _inverse_cdf(self._dist_rows(x1).mul_(-b[:, None]).exp_().cumsum_(1), u)

    def _rate_weights(
        self, x_t: torch.Tensor, x1: torch.Tensor, b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(p_t(x|x1) * Z * max(0, d(x_t,x1) - d(x,x1)) float32 (m, K), Z float32 (m, 1)): the
        unnormalised kinetic-optimal weights; u = beta_dot * weights / Z."""
        d = self._dist_rows(x1)
        w = d.mul(-b[:, None]).exp_()
        d0 = d.gather(1, x_t[:, None])
        weights = d.neg_().add_(d0).clamp_(min=0).mul_(w)  # exactly 0 at x_t
        return weights, w.cumsum_(1)[:, -1:].clone()

    def _velocity_rows(
        self, x_t: torch.Tensor, x1: torch.Tensor, b: torch.Tensor, bd: torch.Tensor
    ) -> torch.Tensor:
        weights, z = self._rate_weights(x_t, x1, b)
        scale = (bd[:, None] / z).to(torch.float32)
        if bool(torch.isinf(scale).any()):  # inf * 0 would be NaN: 0-weight states keep rate 0
            return torch.where(weights > 0, weights * scale, 0.0)
        return weights.mul_(scale)

    def _step_rows(
        self,
        x_t: torch.Tensor,
        x1: torch.Tensor,
        b: torch.Tensor,
        scale: torch.Tensor,
        u: torch.Tensor,
    ) -> torch.Tensor:
        weights, z = self._rate_weights(x_t, x1, b)
        cdf = weights.cumsum_(1)
        total = cdf[:, -1].to(torch.float64)
        hazard = torch.where(total > 0, scale * total / z[:, 0].to(torch.float64), 0.0)
        jump = u[0] < -torch.expm1(-hazard)
        return torch.where(jump, _inverse_cdf(cdf, u[1]), x_t)

    def probs(self, x1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
        """p_t(x | x1), float32 (..., K); one-hot x1 where t = 1."""
        x1 = _check_ids("x1", x1, self.vocab_size)
        flat, tt = x1.reshape(-1), _check_time("t", t, x1.shape, x1.device)
        out = torch.nn.functional.one_hot(flat, self.vocab_size).to(torch.float32)
        b = beta(tt, self.c, self.alpha).to(torch.float32)
        for idx in self._chunks(tt < 1):
            out[idx] = self._probs_rows(flat[idx], b[idx])
        return out.view(*x1.shape, self.vocab_size)

    def draw(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(u,): one float64 uniform per token (the inverse-CDF draw)."""
        return (torch.rand(n, generator=generator, dtype=torch.float64, device=device),)

    def sample(
        self,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        noise: tuple[torch.Tensor, ...] | None = None,
        validate: bool = True,
    ) -> torch.Tensor:
        x1 = _check_ids("x1", x1, self.vocab_size, validate)
        flat, tt = x1.reshape(-1), _check_time("t", t, x1.shape, x1.device, validate)
        (u,) = self._noise_of(noise, flat.shape[0], generator, flat.device)
        b = beta(tt, self.c, self.alpha).to(self.embeddings.dtype)
        active = tt < 1
        if validate:
            out = flat.clone()
            for idx in self._chunks(active):
                out[idx] = self._sample_rows(flat[idx], b[idx], u[idx])
            return out.view(x1.shape)
        # every token in fixed chunks (no nonzero); clean ones get beta 0 (finite) and are put back.
        # Rows are chunk-independent (_ROW_PAD), so this equals the path above bitwise.
        b = torch.where(active, b, 0.0)
        out = torch.empty_like(flat)
        for s in range(0, flat.shape[0], self.chunk_size):
            end = s + self.chunk_size
            out[s:end] = self._sample_rows(flat[s:end], b[s:end], u[s:end])
        return torch.where(active, out, flat).view(x1.shape)

    def velocity(
        self, x_t: torch.Tensor, x1: torch.Tensor, t: float | torch.Tensor
    ) -> torch.Tensor:
        """Kinetic-optimal rates, float32 (..., K). Where beta_dot is infinite (t = 0 with
        alpha < 1) the rates towards closer states are +inf; use `step`, which integrates them."""
        x1 = _check_ids("x1", x1, self.vocab_size)
        x_t = _check_ids("x_t", x_t, self.vocab_size)
        _check_same_shape(x_t, x1)
        flat, zf, tt = x1.reshape(-1), x_t.reshape(-1), _check_time("t", t, x1.shape, x1.device)
        b, bd = beta(tt, self.c, self.alpha).to(torch.float32), beta_dot(tt, self.c, self.alpha)
        out = self.embeddings.new_zeros(flat.shape[0], self.vocab_size)
        for idx in self._chunks(tt < 1):
            out[idx] = self._velocity_rows(zf[idx], flat[idx], b[idx], bd[idx])
        return out.view(*x1.shape, self.vocab_size)

    def step(
        self,
        x_t: torch.Tensor,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        h: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Euler step with hazard h * beta_dot_t * sum_x weights / Z; where beta_dot_t is
        infinite (t = 0, alpha < 1) h * beta_dot_t is replaced by its exact integral
        beta_{t+h} - beta_t (finite), so the first step from pure noise is well defined."""
        zf, flat, tt, hh = self._check_step(x_t, x1, t, h, self.vocab_size)
        u = torch.rand(
            (2, flat.shape[0]), generator=generator, dtype=torch.float64, device=flat.device
        )
        b = beta(tt, self.c, self.alpha)
        bd = beta_dot(tt, self.c, self.alpha)
        scale = torch.where(
            torch.isfinite(bd), hh * bd, beta((tt + hh).clamp(max=1), self.c, self.alpha) - b
        )
        b = b.to(self.embeddings.dtype)
        out = zf.clone()
        for idx in self._chunks((tt < 1) & (hh > 0) & (zf != flat)):
            out[idx] = self._step_rows(zf[idx], flat[idx], b[idx], scale[idx], u[:, idx])
        return out.view(x_t.shape)


def _inverse_cdf(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of the first entry of each row of cdf (float32 (m, K), non-decreasing, unnormalised)
    exceeding u * total, u float64 (m,) in [0, 1): a draw from the row's weights. Zero-weight
    states are never drawn."""
    total = cdf[:, -1:]
    v = (u[:, None] * total).to(cdf.dtype)
    v = torch.minimum(
        v, torch.nextafter(total, torch.zeros_like(total))
    )  # keep v < total after rounding
    return torch.searchsorted(cdf, v, right=True).squeeze(1)


class _KappaPath(ProbPath):
    """Shared kappa_t = t^exponent machinery of the mixture and masked paths."""

    def __init__(self, vocab_size: int, exponent: float = 1.0) -> None:
        if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 2:
            raise ValueError(f"vocab_size: expected an int >= 2, got {vocab_size!r}")
        if not isinstance(exponent, (int, float)) or not exponent > 0:
            raise ValueError(f"exponent: expected a number > 0, got {exponent!r}")
        self.vocab_size, self.exponent = vocab_size, float(exponent)

    def kappa(self, t: torch.Tensor) -> torch.Tensor:
        return t.pow(self.exponent)

    def rate(self, t: torch.Tensor) -> torch.Tensor:
        """kappa_dot / (1 - kappa), float64; inf at t = 1 (and t = 0 if exponent < 1)."""
        return self.exponent * t.pow(self.exponent - 1) / (1 - self.kappa(t))

    @abstractmethod
    def _noise(
        self, n: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor | None:
        """n source-distribution ids, long (n,); None for a deterministic source (the mask id)."""

    @abstractmethod
    def _movable(self, x_t: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """bool mask of tokens with a non-zero rate towards x1."""

    def draw(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """(u,) or (u, noise ids): a float64 uniform per token (keep x1 when u < kappa_t), then the
        source ids, when the source is random."""
        u = torch.rand(n, generator=generator, dtype=torch.float64, device=device)
        ids = self._noise(n, generator, device)
        return (u,) if ids is None else (u, ids)

    def sample(
        self,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        noise: tuple[torch.Tensor, ...] | None = None,
        validate: bool = True,
    ) -> torch.Tensor:
        x1 = _check_ids("x1", x1, self.vocab_size, validate)
        flat, tt = x1.reshape(-1), _check_time("t", t, x1.shape, x1.device, validate)
        u, *ids = self._noise_of(noise, flat.shape[0], generator, flat.device)
        source = ids[0] if ids else torch.full_like(flat, self.num_states - 1)  # the mask id
        return torch.where(u < self.kappa(tt), flat, source).view(x1.shape)

    def velocity(
        self, x_t: torch.Tensor, x1: torch.Tensor, t: float | torch.Tensor
    ) -> torch.Tensor:
        """kappa_dot / (1 - kappa) on x1 for movable tokens (+inf at t = 0 if exponent < 1),
        0 elsewhere and where t = 1. float32 (..., num_states)."""
        x1 = _check_ids("x1", x1, self.vocab_size)
        x_t = _check_ids("x_t", x_t, self.num_states)
        _check_same_shape(x_t, x1)
        flat, zf, tt = x1.reshape(-1), x_t.reshape(-1), _check_time("t", t, x1.shape, x1.device)
        r = torch.where(self._movable(zf, flat) & (tt < 1), self.rate(tt), 0.0).to(torch.float32)
        out = torch.zeros(flat.shape[0], self.num_states, device=flat.device)
        out.scatter_(1, flat[:, None], r[:, None])
        return out.view(*x1.shape, self.num_states)

    def step(
        self,
        x_t: torch.Tensor,
        x1: torch.Tensor,
        t: float | torch.Tensor,
        h: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Euler step with hazard h * rate; where the rate is infinite at t = 0 (exponent < 1)
        the exact integral log((1 - kappa_t) / (1 - kappa_{t+h})) is used."""
        zf, flat, tt, hh = self._check_step(x_t, x1, t, h, self.num_states)
        u = torch.rand(flat.shape, generator=generator, dtype=torch.float64, device=flat.device)
        exact = torch.log1p(-self.kappa(tt)) - torch.log1p(-self.kappa((tt + hh).clamp(max=1)))
        hazard = torch.where(torch.isfinite(self.rate(tt)), hh * self.rate(tt), exact)
        jump = self._movable(zf, flat) & (tt < 1) & (hh > 0) & (u < -torch.expm1(-hazard))
        return torch.where(jump, flat, zf).view(x_t.shape)


class MixturePath(_KappaPath):
    """Uniform-source mixture path: x_t = x1 w.p. kappa_t, else a uniform id in [0, K)."""

    def __init__(self, vocab_size: int, exponent: float = 1.0) -> None:
        super().__init__(vocab_size, exponent)
        self.num_states = vocab_size

    def _noise(
        self, n: int, generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        return torch.randint(self.vocab_size, (n,), generator=generator, device=device)

    def _movable(self, x_t: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return x_t != x1


class MaskedPath(_KappaPath):
    """Absorbing path: x_t = x1 w.p. kappa_t, else the mask id K (= vocab_size); only masked
    tokens move."""

    def __init__(self, vocab_size: int, exponent: float = 1.0) -> None:
        super().__init__(vocab_size, exponent)
        self.mask_id = vocab_size
        self.num_states = vocab_size + 1

    def _noise(self, n: int, generator: torch.Generator | None, device: torch.device) -> None:
        return None  # every source token is the mask id (num_states - 1): nothing to draw

    def source(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """x_0: every token the mask id, long `shape` (nothing is drawn)."""
        return torch.full(shape, self.mask_id, dtype=torch.long, device=device)

    def _movable(self, x_t: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return x_t == self.mask_id
