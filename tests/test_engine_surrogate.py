import numpy as np
import pytest

from wbg_core.engine.surrogate import GPHyper, GPSurrogate, candidate_latents, objective_values


@pytest.mark.parametrize("objective,window,gap,expected", [
    ("max", None, [0.0, 3.0, 7.5], [0.0, 3.0, 7.5]),
    ("window", (2.0, 3.0), [1.0, 2.5, 3.0, 4.5], [-1.0, 0.0, 0.0, -1.5]),
])
def test_objective_values(objective, window, gap, expected):
    assert np.allclose(objective_values(np.array(gap), objective, window), expected)


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="objective"):
        objective_values(np.zeros(2), "min", None)


def _toy(n=150, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, d))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2
    return x, y


def test_gp_learns_a_smooth_function_and_round_trips_its_state():
    x, y = _toy()
    gp = GPSurrogate(x.min(0), x.max(0), fit_steps=60)
    h = gp.fit(x[:120], y[:120])
    mean, std = gp.predict(x[120:])
    assert np.abs(mean - y[120:]).mean() < 0.5 * np.abs(y[120:] - y[:120].mean()).mean()
    assert (std > 0).all()
    # the stored hyper-parameters rebuild the same posterior without refitting
    gp2 = GPSurrogate(x.min(0), x.max(0))
    gp2.condition(x[:120], y[:120], GPHyper.from_dict(h.to_dict()))
    assert np.allclose(gp2.predict(x[120:])[0], mean)


@pytest.mark.parametrize("kappa", [0.0, 2.0, 10.0])
def test_batch_is_diverse_and_kappa_zero_starts_at_the_best_mean(kappa):
    x, y = _toy()
    gp = GPSurrogate(x.min(0), x.max(0), fit_steps=30)
    gp.fit(x, y)
    rng = np.random.default_rng(1)
    cands = candidate_latents(rng, x.min(0), x.max(0), x, y, 400)
    # a tight cluster of near-copies of one point: a greedy top-q would take them all
    cands = np.vstack([cands, np.repeat(cands[:1], 30, axis=0) + rng.normal(0, 1e-4, (30, x.shape[1]))])
    idx, mu, sd, ucb = gp.select_batch(cands, 10, kappa)
    assert len(set(idx.tolist())) == 10
    copies = np.sum(idx >= 400) + np.sum(idx == 0)
    assert copies <= 2
    mean, std = gp.predict(cands)
    if kappa == 0:
        assert idx[0] == int(np.argmax(mean))
    assert np.isclose(ucb[0], (mean + kappa * std).max(), rtol=1e-4, atol=1e-4)


def test_candidates_stay_in_the_box():
    x, y = _toy()
    lo, hi = x.min(0), x.max(0)
    c = candidate_latents(np.random.default_rng(0), lo, hi, x, y, 500)
    assert c.shape == (500, x.shape[1])
    assert (c >= lo - 1e-6).all() and (c <= hi + 1e-6).all()


@pytest.mark.parametrize("poison_at", [0, 3])
def test_a_diverging_hyperparameter_step_is_undone_not_fatal(monkeypatch, poison_at):
    import torch

    real_adam = torch.optim.Adam

    class PoisonedAdam(real_adam):
        """Adam whose step number poison_at writes NaN into every parameter."""

        calls = 0

        def step(self, closure=None):
            out = super().step(closure)
            if PoisonedAdam.calls == poison_at:
                with torch.no_grad():
                    for group in self.param_groups:
                        for p in group["params"]:
                            p.fill_(float("nan"))
            PoisonedAdam.calls += 1
            return out

    rng = np.random.default_rng(0)
    z = rng.normal(size=(120, 4))
    y = np.sin(z[:, 0]) + 0.05 * rng.normal(size=120)
    monkeypatch.setattr(torch.optim, "Adam", PoisonedAdam)
    gp = GPSurrogate(z.min(0), z.max(0), fit_steps=10)
    hyper = gp.fit(z, y)
    assert PoisonedAdam.calls == poison_at + 1  # the fit stopped at the poisoned step
    assert all(np.isfinite([hyper.lengthscale, hyper.outputscale, hyper.noise, hyper.constant, hyper.neg_mll]))
    mean, std = gp.predict(z[:10])
    assert np.isfinite(mean).all() and np.isfinite(std).all()
