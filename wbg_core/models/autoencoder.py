"""The paper's convolutional autoencoder over 87 x 8 composition matrices (latent space for search).

Architecture from the authors' code (PAPER.md): Conv(32, 3x3, stride (2,1)) -> Conv(128,
3x3, stride (3,1)) -> Dense(128) latent; Dense -> ConvT(128, stride (3,1), output padding
(1,0)) -> ConvT(32, stride (2,1)) -> ConvT(1, same) -> sigmoid; binary cross-entropy, Adam
1e-3, batch 128, best validation loss kept.

Our one change, for the search: Gaussian noise of scale `latent_noise` on the latent during
training (a denoising latent). The decoder then maps a neighbourhood of each training code,
not a point, to its formula, so random points of the BO search box decode to formulas far
more often. It is measured against noise 0 in the card.

Training and the card's measurements live in autoencoder_training.py, so loading a checkpoint
never pulls them in.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..composition import N_COUNTS, N_ELEMENTS, counts_to_formulas, counts_to_onehot, encode_counts, onehot_to_counts
from .checkpoint import build_module, load_checkpoint, require_finite
from .configs import AEConfig  # noqa: F401 (its home before configs.py)
from .sampling import CompositionSampler

NAME = "autoencoder"
# Code refinement (Autoencoder.refine): Adam steps at most, step size, logit margin.
REFINE_STEPS = 200
REFINE_LR = 0.05
REFINE_MARGIN = 1.0
SMOKE_REFINE_STEPS = 10  # for `limit` runs: a barely trained model misses most formulas


class ConvAutoencoder(nn.Module):
    def __init__(self, latent_dim: int = 128, channels: tuple[int, int] = (32, 128)):
        super().__init__()
        self.latent_dim = latent_dim
        c1, c2 = channels
        self.enc = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=(2, 1)), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=(3, 1)), nn.ReLU(),
            nn.Flatten(),
        )
        self._hidden = (c2, 14, 4)
        flat = c2 * 14 * 4
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Sequential(nn.Linear(latent_dim, flat), nn.ReLU())
        self.dec = nn.Sequential(
            nn.ConvTranspose2d(c2, c2, 3, stride=(3, 1), output_padding=(1, 0)), nn.ReLU(),
            nn.ConvTranspose2d(c2, c1, 3, stride=(2, 1)), nn.ReLU(),
            nn.ConvTranspose2d(c1, 1, 3, padding=1),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_latent(self.enc(x.unsqueeze(1)))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, *self._hidden)
        return self.dec(h).squeeze(1)

    def forward(self, x: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        z = self.encode(x)
        if noise > 0:
            z = z + noise * torch.randn_like(z)
        return self.decode_logits(z)


def _toeplitz(weight: torch.Tensor, w_in: int, w_out: int, offset: int = 0) -> torch.Tensor:
    """A transposed convolution's kernel (c_in, c_out, kh, kw) as one dense matrix from an
    input row (c_in x w_in) to its kh output rows (kh x c_out x w_out)."""
    c_in, c_out, kh, kw = weight.shape
    m = torch.zeros(c_in, w_in, kh, c_out, w_out, dtype=weight.dtype)
    for j in range(w_in):
        for k in range(kw):
            if 0 <= j + k - offset < w_out:
                m[:, j, :, :, j + k - offset] += weight[:, :, :, k].permute(0, 2, 1)
    return m.reshape(c_in * w_in, kh * c_out * w_out)


class GemmDecoder:
    """The decoder with its transposed convolutions rewritten as dense matrix products.

    Why: torch's CPU ConvTranspose2d runs these small maps at ~5 GMAC/s, and screening a
    million candidates is decoder-bound. Each layer maps an input row (channels x width) to
    the output rows it touches through one Toeplitz matrix, a GEMM at ~150 GFLOP/s; rows are
    then interleaved by the layer's stride. Same linear maps, so the logits equal
    `ConvAutoencoder.decode_logits` to float rounding (tested); CPU inference only.
    """

    def __init__(self, net: ConvAutoencoder):
        d0, d2, d4 = net.dec[0], net.dec[2], net.dec[4]
        c2, h, w = net._hidden
        c1 = d2.weight.shape[1]
        assert (h, w) == (14, 4) and d0.stride == (3, 1) and d2.stride == (2, 1) and d4.padding == (1, 1)
        self.c1, self.c2 = c1, c2
        lin = net.from_latent[0]
        with torch.no_grad():
            # from_latent's outputs reordered to (row, channel, width): rows come out contiguous
            self.w_lat = lin.weight.view(c2, h, w, -1).permute(3, 1, 0, 2).reshape(-1, c2 * h * w).contiguous()
            self.b_lat = lin.bias.view(c2, h, w).permute(1, 0, 2).reshape(-1).contiguous()
            self.m0 = _toeplitz(d0.weight, 4, 6)  # row i -> rows 3i, 3i+1, 3i+2 (row 42: bias only)
            self.b0 = d0.bias.view(1, 1, c2, 1).clone()
            self.m2 = _toeplitz(d2.weight, 6, 8)  # row i -> rows 2i, 2i+1, 2i+2 (overlapping)
            self.b2 = d2.bias.view(1, 1, c1, 1).clone()
            self.m4 = _toeplitz(d4.weight, 8, 8, offset=1)  # row i -> rows i-1, i, i+1
            self.b4 = d4.bias.clone()

    @torch.inference_mode()
    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        n, c1, c2 = z.shape[0], self.c1, self.c2
        h = torch.addmm(self.b_lat, z, self.w_lat).relu_().view(n * 14, c2 * 4)
        y = torch.empty(n, 43, c2, 6)
        torch.add((h @ self.m0).view(n, 42, c2, 6), self.b0, out=y[:, :42])
        y[:, 42] = self.b0[0, 0]  # output padding row: bias only
        o = (y.relu_().view(n * 43, c2 * 6) @ self.m2).view(n, 43, 3, c1, 8)
        x = torch.empty(n, 87, c1, 8)
        x[:, 1::2] = o[:, :, 1]
        x[:, 0:86:2] = o[:, :, 0]
        x[:, 86] = 0
        x[:, 2::2] += o[:, :, 2]
        p = (x.add_(self.b2).relu_().view(n * 87, c1 * 8) @ self.m4).view(n, 87, 3, 8)
        out = p[:, :, 1] + self.b4
        out[:, :-1] += p[:, 1:, 0]
        out[:, 1:] += p[:, :-1, 2]
        return out


class Autoencoder:
    """A trained autoencoder with formula-level encode/decode for the app and the engine."""

    def __init__(self, net: ConvAutoencoder, config: dict, card: dict, directory: Path | None = None):
        self.net = net.eval()
        self.config = config
        self.card = card
        self.directory = directory
        self._gemm: GemmDecoder | None = None
        self.refine_steps = REFINE_STEPS  # smoke runs of tiny, untrained models lower it

    def decode_logits(self, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
        """Logits (N, 87, 8); on the CPU through GemmDecoder in cache-sized batches."""
        device = next(self.net.parameters()).device
        if device.type != "cpu":
            with torch.no_grad():
                return self.net.decode_logits(z.to(device)).cpu()
        if self._gemm is None:
            self._gemm = GemmDecoder(self.net)
        if not len(z):
            return torch.zeros(0, N_ELEMENTS, N_COUNTS)
        chunks = [z[s : s + batch] for s in range(0, len(z), batch)]
        workers = torch.get_num_threads()
        if workers == 1 or len(chunks) == 1:
            return torch.cat([self._gemm(c) for c in chunks])
        # Small GEMMs scale badly across torch's intra-op threads (measured: 2 threads slower
        # than 1); one single-threaded chunk per core scales ~2x. torch releases the GIL in ops.
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(workers) as pool:
                return torch.cat(list(pool.map(self._gemm, chunks)))
        finally:
            torch.set_num_threads(workers)

    def encode_counts(self, counts: np.ndarray, batch: int = 4096, refine: bool = True) -> np.ndarray:
        """Latent codes; `refine` (the default) repairs the codes that do not decode back to
        their formula (see `refine`), so a code stands for its formula in the search."""
        out, device = [], next(self.net.parameters()).device
        with torch.no_grad():
            for s in range(0, len(counts), batch):
                x = torch.from_numpy(counts_to_onehot(counts[s : s + batch]))
                out.append(self.net.encode(x.to(device)).cpu().numpy())
        z = np.concatenate(out) if out else np.zeros((0, self.net.latent_dim), np.float32)
        if refine and len(z):
            z, _ = self.refine(z, counts)
        return z

    def refine(self, z: np.ndarray, counts: np.ndarray, steps: int | None = None, lr: float = REFINE_LR,
               margin: float = REFINE_MARGIN, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """(codes, steps taken per row): codes whose decode is not their formula are moved
        by gradient descent on the reconstruction loss through the fixed decoder.

        Why: the encoder is what fails to generalise, not the decoder. On the test split
        the amortised encoder's codes round-trip 94.8% of formulas, but the decoder has a
        code for ~99.5% of them (docs/models.md): an unseen element combination lands
        where the decoder reads a training formula. A row stops as soon as every cell of its
        decode is on the right side of 0.5 by `margin` in logits (so the CPU's GEMM decoder,
        equal to 1e-4, agrees); codes that already round-trip are returned unchanged, so
        refinement changes nothing where the encoder is right.
        Rows never repaired keep their lowest-loss code.
        """
        steps = self.refine_steps if steps is None else steps
        z = np.array(z, dtype=np.float32, copy=True)
        taken = np.zeros(len(z), dtype=np.int32)
        target_all = counts_to_onehot(counts)
        decoded, valid = onehot_to_counts(self.decode_probs(z))
        todo = np.flatnonzero(~(valid & (decoded == counts).all(axis=1)))
        if not len(todo) or steps <= 0:
            return z, taken
        for s in range(0, len(todo), batch):
            rows = todo[s : s + batch]
            zr, taken[rows] = self._refine_rows(z[rows], torch.from_numpy(target_all[rows]), steps, lr, margin)
            z[rows] = zr
        return z, taken

    def _refine_rows(self, z0: np.ndarray, target: torch.Tensor, steps: int, lr: float,
                     margin: float) -> tuple[np.ndarray, np.ndarray]:
        """Adam on each row's own code. Rows are independent (the loss is a sum over rows),
        so a finished row leaves the batch and the cost falls with the rows still open."""
        b1, b2, eps = 0.9, 0.999, 1e-8
        best, best_loss = z0.copy(), np.full(len(z0), np.inf)
        taken = np.full(len(z0), steps, dtype=np.int32)
        live = np.arange(len(z0))  # rows still open, positions into z0
        device = next(self.net.parameters()).device
        target_np, target = target.numpy(), target.to(device)
        z = torch.from_numpy(z0.copy()).to(device)
        m, v = torch.zeros_like(z), torch.zeros_like(z)
        for step in range(steps + 1):
            zl = z.requires_grad_(True)
            with torch.enable_grad():
                logits = self.net.decode_logits(zl)
                loss = nn.functional.binary_cross_entropy_with_logits(logits, target[live], reduction="none").sum((1, 2))
            lv, zc = loss.detach().cpu().numpy(), zl.detach().cpu().numpy()
            ok = _margin_ok(logits.detach().cpu().numpy(), target_np[live], margin)
            better = lv < best_loss[live]
            best[live[better]], best_loss[live[better]] = zc[better], lv[better]
            best[live[ok]], taken[live[ok]] = zc[ok], step
            if ok.all() or step == steps:
                break
            # the gradient for the codes only: the weights' .grad is never touched, so a
            # model shared between threads is left as it was
            (grad,) = torch.autograd.grad(loss.sum(), zl)
            keep = torch.from_numpy(~ok).to(device)
            live, grad, z, m, v = live[~ok], grad[keep], zl.detach()[keep], m[keep], v[keep]
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            t = step + 1
            z = z - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
        return best, taken

    def encode_formulas(self, formulas, refine: bool = True) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """(latents (N, d), ok (N,), errors) for formulas; rows that fail are zero."""
        res = encode_counts(formulas)
        z = self.encode_counts(res.counts, refine=False)
        if refine and res.ok.any():  # not the rows that failed: an empty matrix has nothing to reach
            z[res.ok], _ = self.refine(z[res.ok], res.counts[res.ok])
        z[~res.ok] = 0
        return z, res.ok, res.errors

    @torch.no_grad()
    def decode_probs(self, z: np.ndarray, batch: int = 4096) -> np.ndarray:
        out = []
        for s in range(0, len(z), batch):
            logits = self.decode_logits(torch.as_tensor(z[s : s + batch], dtype=torch.float32))
            out.append(require_finite(torch.sigmoid_(logits).numpy(), self.directory, "autoencoder"))
        return np.concatenate(out) if out else np.zeros((0, N_ELEMENTS, N_COUNTS), np.float32)

    def decode(self, z: np.ndarray, rule: str = "strict") -> np.ndarray:
        """Formula per latent vector, None where it does not decode to one."""
        counts, valid = onehot_to_counts(self.decode_probs(np.atleast_2d(z)), rule=rule)
        formulas = counts_to_formulas(counts)
        formulas[~valid] = None
        return formulas


def _margin_ok(logits: np.ndarray, target: np.ndarray, margin: float) -> np.ndarray:
    """Rows (N,) whose every cell is on its target's side of 0.5 by `margin` in logits."""
    signed = np.where(target > 0.5, logits, -logits).reshape(len(logits), -1)
    return (signed >= margin).all(axis=1)


def load(directory: Path) -> Autoencoder:
    directory = Path(directory)
    tensors, config, card = load_checkpoint(directory, kind="autoencoder")  # config validated (config_bounds)
    kwargs = {**config["kwargs"], "channels": tuple(config["kwargs"].get("channels", (32, 128)))}
    net = build_module(lambda: ConvAutoencoder(**kwargs), tensors, directory / "model.safetensors")
    return Autoencoder(net, config, card, directory)


@lru_cache(maxsize=4)
def load_autoencoder(directory: str | None = None) -> Autoencoder:
    from ..settings import get_settings

    return load(Path(directory) if directory else get_settings().models_dir / NAME)


def load_latent_map(directory: str | None = None):
    """The map beside an autoencoder checkpoint (wbg_core.models.latent_map.LatentMap); ModelError says why not."""
    from ..settings import get_settings
    from .latent_map import LatentMap

    return LatentMap.load(Path(directory) if directory else get_settings().models_dir / NAME)


class LatentSampler(CompositionSampler):
    """The autoencoder as a composition generator: uniform points of the latent box of the
    encodable MP formulas, decoded (argmax rule, 2-8 elements). Same interface as the GAN's
    sample_probs / sample_counts, so screening can use either; diverse where the shipped,
    under-trained GAN is not (docs/models.md)."""

    def __init__(self, autoencoder: Autoencoder, lo: np.ndarray, hi: np.ndarray):
        self.ae, self.lo, self.hi = autoencoder, lo, hi

    @classmethod
    def shipped(cls, directory: str | None = None) -> "LatentSampler":
        lm = load_latent_map(directory)
        sampler = cls(load_autoencoder(directory), lm.latent_lo, lm.latent_hi)
        sampler.compound_max_drop = lm.settings.compound_max_drop  # decode as the map's points do
        return sampler

    def sample_probs(self, n: int, seed: int = 0, batch: int = 8192) -> np.ndarray:
        z = np.random.default_rng(seed).uniform(self.lo, self.hi, (n, len(self.lo))).astype(np.float32)
        return self.ae.decode_probs(z, batch=batch)
