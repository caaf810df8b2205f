import numpy as np
import pytest
import torch

from wbg_core.composition import counts_to_onehot, encode_counts
from wbg_core.models import ModelError, load_autoencoder
from wbg_core.models.autoencoder import AEConfig, ConvAutoencoder, load, load_latent_map, train
from wbg_core.models.training import pick_device


@pytest.mark.parametrize("channels", [(32, 128), (16, 64)])
def test_shapes_follow_the_paper(channels):
    net = ConvAutoencoder(128, channels)
    x = torch.zeros(5, 87, 8)
    assert net.encode(x).shape == (5, 128)
    assert net(x).shape == (5, 87, 8)


def test_a_few_steps_on_real_formulas_reduce_the_loss(bandgaps):
    torch.manual_seed(0)
    counts = encode_counts(bandgaps["formula"][bandgaps["encodable"]].iloc[:256].to_numpy(dtype=object)).counts
    x = torch.from_numpy(counts_to_onehot(counts))
    net = ConvAutoencoder(128, (16, 64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
    first = loss_fn(net(x), x).item()
    for _ in range(30):
        loss = loss_fn(net(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_fn(net(x), x).item() < 0.5 * first


def test_training_resumes_exactly_after_a_kill(tmp_path):
    device = pick_device("cpu")
    cfg = AEConfig(epochs=1, batch_size=64)
    train(tmp_path / "a", cfg, device, limit=300)
    cfg2 = AEConfig(epochs=2, batch_size=64)
    card_resumed = train(tmp_path / "a", cfg2, device, limit=300)  # continues from epoch 1
    card_fresh = train(tmp_path / "b", cfg2, device, limit=300)
    assert len(card_resumed["history"]) == 2
    assert card_resumed["history"] == card_fresh["history"]
    a, b = load(tmp_path / "a"), load(tmp_path / "b")
    for (k, va), (_, vb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert torch.equal(va, vb), k
    for name in ("model.safetensors", "config.json", "card.json", "latent_map.npz"):
        assert (tmp_path / "a" / name).exists()


def test_shipped_autoencoder_reconstructs_test_formulas():
    ae = load_autoencoder()
    card = ae.card
    assert card["metrics"]["reconstruction_rate_strict"] > 0.9  # the 99% target is a benchmark (bench_models)
    from wbg_core.data import load_bandgaps, split

    test = split(load_bandgaps(), seed=card["seed"], subset="encodable")["test"]["formula"].to_numpy(dtype=object)[:2000]
    z, ok, _ = ae.encode_formulas(test)
    rate = float(np.mean(ae.decode(z) == test))
    assert rate == pytest.approx(card["metrics"]["slice_first_2000_test_reconstruction_strict"], abs=1e-9)


def test_shipped_latent_map_covers_the_encodable_data(bandgaps):
    m = load_latent_map()
    assert len(m["formula"]) == int(bandgaps["encodable"].sum())
    assert m["xy"].shape == (len(m["formula"]), 2)
    assert m["pca_components"].shape == (2, 128)


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(ModelError, match="missing"):
        load(tmp_path / "nowhere")
