import numpy as np
import pytest
import torch

from wbg_core.composition import counts_to_onehot, encode_counts
from wbg_core.models import load_gan
from wbg_core.models.gan import Critic, Generator, gradient_penalty


def test_generator_and_critic_shapes():
    g, d = Generator(), Critic()
    x = g(torch.randn(6, 128))
    assert x.shape == (6, 87, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert d(x).shape == (6,)


def test_critic_steps_separate_real_from_generated(bandgaps):
    torch.manual_seed(0)
    counts = encode_counts(bandgaps["formula"][bandgaps["encodable"]].iloc[:128].to_numpy(dtype=object)).counts
    real = torch.from_numpy(counts_to_onehot(counts))
    g, d = Generator().eval(), Critic()
    opt = torch.optim.Adam(d.parameters(), lr=1e-3, betas=(0.5, 0.9))
    with torch.no_grad():
        fake = g(torch.randn(128, 128))
    first = (d(real).mean() - d(fake).mean()).item()
    for _ in range(40):
        loss = -(d(real).mean() - d(fake).mean()) + 10 * gradient_penalty(d, real, fake)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (d(real).mean() - d(fake).mean()).item() > first + 0.2


def test_shipped_generator_samples_reproducibly():
    gan = load_gan()
    a = gan.sample(500, seed=3)
    b = gan.sample(500, seed=3)
    assert (a["formula"] == b["formula"]).all()
    assert list(a.columns) == ["formula", "valid", "smact_valid"]
    assert (a["formula"][~a["valid"]] == "").all()
    assert not (a["smact_valid"] & ~a["valid"]).any()


def test_shipped_generator_matches_its_card_slice():
    gan = load_gan()
    _, valid = gan.sample_counts(5000, seed=7)
    assert float(valid.mean()) == pytest.approx(gan.card["metrics"]["slice_seed7_5000_valid_fraction"], abs=1e-9)
    assert gan.card["metrics"]["valid_fraction"] > 0.5
