"""Gaussian-process surrogate on (latent vector, objective) and the batch UCB acquisition.

The hyper-parameters (constant mean, output scale, one length scale, noise) are fitted by
gpytorch's exact marginal likelihood every round, warm-started from the previous round and
on at most `max_fit_points` rows (the Cholesky is cubic; a 1,000-row subset finds the same
length scale as 2,000 rows at an eighth of the cost). The posterior then conditions on all
rows, in plain torch, because the batch rule needs posterior cross-covariances that
gpytorch's predictive API does not expose cheaply.

Inputs are scaled to the unit cube of the search box; targets are standardised. One
isotropic length scale rather than ARD: with 128 latent dimensions and 300-2,000 points,
ARD overfits and costs more (STACK.md: 11 s vs 8 s per fit).

Batch rule: kriging believer. After each pick the GP is told the pick's value is its
posterior mean, which leaves every mean unchanged but shrinks the variance near the pick,
so the next UCB maximum lies elsewhere. This is exact and cheap here: one rank-one update
of the candidates' variances per pick.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

DTYPE = torch.float64


@dataclass
class GPHyper:
    """Fitted hyper-parameters, in standardised units; what a campaign stores as 'GP state'."""

    lengthscale: float
    outputscale: float
    noise: float
    constant: float
    y_mean: float
    y_std: float
    fit_points: int = 0
    fit_steps: int = 0
    neg_mll: float = float("nan")

    def to_dict(self) -> dict:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict | None) -> "GPHyper | None":
        if not d:
            return None
        d = {k: (float("nan") if v is None else v) for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)


def objective_values(gap: np.ndarray, objective: str, window: tuple[float, float] | None) -> np.ndarray:
    """What the GP models: the gap itself ('max'), or minus the distance to [a, b] ('window')."""
    gap = np.array(gap, dtype=np.float64)  # a copy: callers write into it
    if objective == "max":
        return gap
    if objective == "window":
        a, b = window
        return -(np.maximum(a - gap, 0.0) + np.maximum(gap - b, 0.0))
    raise ValueError(f"unknown objective {objective!r}: use 'max' or 'window'")


class _ExactGP:
    """Built lazily so importing the engine does not import gpytorch."""

    @staticmethod
    def make(x: torch.Tensor, y: torch.Tensor):
        import gpytorch

        class Model(gpytorch.models.ExactGP):
            def __init__(self, x, y, lik):
                super().__init__(x, y, lik)
                self.mean_module = gpytorch.means.ConstantMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(gpytorch.kernels.MaternKernel(nu=2.5))

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

        lik = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-5))
        return Model(x, y, lik).to(DTYPE), lik.to(DTYPE)


def _matern52(a: torch.Tensor, b: torch.Tensor, lengthscale: float, outputscale: float) -> torch.Tensor:
    d = torch.cdist(a / lengthscale, b / lengthscale).clamp_min(0)
    s5 = math.sqrt(5.0) * d
    return outputscale * (1 + s5 + s5 ** 2 / 3) * torch.exp(-s5)


class GPSurrogate:
    """fit(x, y) then predict / select_batch; x are latents, y objective values."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, fit_steps: int = 40, warm_steps: int = 15,
                 max_fit_points: int = 1000, lr: float = 0.1, seed: int = 0):
        self.lo = np.asarray(lo, np.float64)
        width = np.asarray(hi, np.float64) - self.lo
        self.width = np.where(width > 1e-9, width, 1.0)
        self.fit_steps, self.warm_steps = fit_steps, warm_steps
        self.max_fit_points, self.lr, self.seed = max_fit_points, lr, seed
        self.hyper: GPHyper | None = None

    def scale(self, z: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((np.asarray(z, np.float64) - self.lo) / self.width, dtype=DTYPE)

    def fit(self, z: np.ndarray, y: np.ndarray, warm: GPHyper | None = None) -> GPHyper:
        """Fit hyper-parameters (warm-started when given), then condition on all rows."""
        import gpytorch
        from linear_operator.utils.errors import NanError, NotPSDError

        y = np.asarray(y, np.float64)
        if len(y) < 2:
            raise ValueError("the GP needs at least 2 labelled points")
        x_all = self.scale(z)
        y_mean, y_std = float(y.mean()), float(y.std()) or 1.0
        ys_all = torch.as_tensor((y - y_mean) / y_std, dtype=DTYPE)
        rng = np.random.default_rng(self.seed)
        if len(y) > self.max_fit_points:
            # keep the best rows (the region UCB exploits) plus a random rest
            top = np.argsort(-y)[: self.max_fit_points // 4]
            rest = np.setdiff1d(np.arange(len(y)), top)
            idx = np.concatenate([top, rng.choice(rest, self.max_fit_points - len(top), replace=False)])
        else:
            idx = np.arange(len(y))
        x, ys = x_all[idx], ys_all[idx]
        torch.manual_seed(self.seed)
        with gpytorch.settings.max_cholesky_size(10_000), gpytorch.settings.cholesky_jitter(1e-6):
            model, lik = _ExactGP.make(x, ys)
            if warm is not None:
                ls, os_, nz, c = warm.lengthscale, warm.outputscale, warm.noise, warm.constant
                steps = self.warm_steps
            else:
                dmed = float(torch.median(torch.pdist(x[: min(len(x), 500)]))) if len(x) > 2 else 1.0
                ls, os_, nz, c = max(dmed, 1e-3), 1.0, 0.05, 0.0
                steps = self.fit_steps
            model.covar_module.base_kernel.lengthscale = ls
            model.covar_module.outputscale = os_
            lik.noise = max(nz, 2e-5)
            model.mean_module.constant.data.fill_(c)
            model.train()
            lik.train()
            mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
            opt = torch.optim.Adam(model.parameters(), lr=self.lr)
            loss = torch.tensor(float("nan"))
            # An Adam step can throw the hyper-parameters where the kernel matrix is not
            # positive definite or NaN (seen in Exp 2 and Exp 4, once each in 10 x 50 rounds). Keep the last
            # parameters that gave a finite likelihood and stop there instead of crashing.
            good = {k: v.detach().clone() for k, v in model.state_dict().items()}
            for _ in range(steps):
                opt.zero_grad()
                try:
                    step_loss = -mll(model(x), ys)
                except (NanError, NotPSDError):
                    step_loss = None
                if step_loss is None or not torch.isfinite(step_loss):
                    model.load_state_dict(good)
                    break
                loss = step_loss
                good = {k: v.detach().clone() for k, v in model.state_dict().items()}
                loss.backward()
                opt.step()
            if not all(torch.isfinite(p).all() for p in model.parameters()):
                model.load_state_dict(good)
        self.hyper = GPHyper(
            lengthscale=float(model.covar_module.base_kernel.lengthscale.item()),
            outputscale=float(model.covar_module.outputscale.item()),
            noise=float(lik.noise.item()), constant=float(model.mean_module.constant.item()),
            y_mean=y_mean, y_std=y_std, fit_points=len(idx), fit_steps=steps, neg_mll=float(loss.item()),
        )
        self.condition(z, y)
        return self.hyper

    def condition(self, z: np.ndarray, y: np.ndarray, hyper: GPHyper | None = None) -> None:
        """Exact posterior on all rows with fixed hyper-parameters (also: restore a saved GP)."""
        if hyper is not None:
            self.hyper = hyper
        h = self.hyper
        self._x = self.scale(z)
        ys = torch.as_tensor((np.asarray(y, np.float64) - h.y_mean) / h.y_std, dtype=DTYPE) - h.constant
        k = _matern52(self._x, self._x, h.lengthscale, h.outputscale)
        k.diagonal().add_(h.noise + 1e-8)
        self._chol = torch.linalg.cholesky(k)
        self._alpha = torch.cholesky_solve(ys.unsqueeze(1), self._chol)[:, 0]

    def _posterior(self, xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.hyper
        kxc = _matern52(self._x, xc, h.lengthscale, h.outputscale)
        mean = kxc.T @ self._alpha + h.constant
        a = torch.linalg.solve_triangular(self._chol, kxc, upper=False)  # (n, m)
        var = (h.outputscale - (a * a).sum(0)).clamp_min(1e-12)
        return mean, var, a

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std in objective units."""
        h = self.hyper
        mean, var, _ = self._posterior(self.scale(z))
        return (mean * h.y_std + h.y_mean).numpy(), (var.sqrt() * h.y_std).numpy()

    def select_batch(self, z: np.ndarray, q: int, kappa: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Kriging-believer batch: indices of q candidates, and their mean, std, UCB at pick time."""
        h = self.hyper
        xc = self.scale(z)
        mean, var, a = self._posterior(xc)
        q = min(q, len(z))
        chosen: list[int] = []
        vs: list[torch.Tensor] = []
        mu_o, sd_o, ucb_o = [], [], []
        var = var.clone()
        for _ in range(q):
            ucb = mean + kappa * var.sqrt()
            if chosen:
                ucb[chosen] = -float("inf")
            i = int(torch.argmax(ucb))
            chosen.append(i)
            mu_o.append(float(mean[i]) * h.y_std + h.y_mean)
            sd_o.append(float(var[i].sqrt()) * h.y_std)
            ucb_o.append(float(ucb[i]) * h.y_std + h.y_mean)
            cov = _matern52(xc, xc[i : i + 1], h.lengthscale, h.outputscale)[:, 0] - a.T @ a[:, i]
            for v in vs:
                cov = cov - v * v[i]
            v_new = cov / math.sqrt(float(var[i]) + h.noise)
            vs.append(v_new)
            var = (var - v_new * v_new).clamp_min(1e-12)
        return np.array(chosen, np.int64), np.array(mu_o), np.array(sd_o), np.array(ucb_o)


def candidate_latents(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, z_data: np.ndarray,
                      y_data: np.ndarray, n: int = 2000) -> np.ndarray:
    """Where UCB is evaluated: uniform points of the box (exploration, as the paper's random
    warm-up) plus perturbations of and blends between the best labelled latents (where the
    UCB maximum of a smooth GP usually lies). Replaces bayes_opt's L-BFGS restarts, which
    in 128 dimensions spend most of their time on corners that decode to nothing."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    width = hi - lo
    d = len(lo)
    n_uni, n_loc = n // 4, n // 2
    n_mix = n - n_uni - n_loc
    top = np.argsort(-np.asarray(y_data))[: max(2, min(50, len(y_data)))]
    uni = rng.uniform(lo, hi, (n_uni, d))
    centres = z_data[top[rng.integers(0, min(20, len(top)), n_loc)]]
    scales = rng.choice([0.02, 0.05, 0.1, 0.2], size=(n_loc, 1))
    loc = centres + rng.normal(0, 1, (n_loc, d)) * scales * width
    pa = z_data[rng.choice(top, n_mix)]
    pb = z_data[rng.choice(top, n_mix)]
    t = rng.uniform(-0.2, 1.2, (n_mix, 1))
    mix = pa + t * (pb - pa) + rng.normal(0, 0.02, (n_mix, d)) * width
    return np.clip(np.vstack([uni, loc, mix]), lo, hi).astype(np.float32)
