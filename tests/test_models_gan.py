import numpy as np
import pytest
import torch

from wbg_core.composition import counts_to_onehot, encode_counts
from wbg_core.models import load_gan
from wbg_core.models.gan import ARCHS, GANConfig, gradient_penalty, load, train


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_generator_and_critic_shapes(arch):
    gen_cls, critic_cls = ARCHS[arch]
    g, d = gen_cls().eval(), critic_cls()
    x = g(torch.randn(6, 128))
    assert x.shape == (6, 87, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    assert d(x).shape == (6,)
    if arch == "dense":  # a distribution over absent + 8 counts per element: rows sum to at most 1
        assert float(x.sum(dim=-1).max()) <= 1 + 1e-5


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_critic_steps_separate_real_from_generated(bandgaps, arch):
    torch.manual_seed(0)
    counts = encode_counts(bandgaps["formula"][bandgaps["encodable"]].iloc[:128].to_numpy(dtype=object)).counts
    real = torch.from_numpy(counts_to_onehot(counts))
    gen_cls, critic_cls = ARCHS[arch]
    g, d = gen_cls().eval(), critic_cls()
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
    assert list(a.columns) == ["formula", "valid", "paper_rule_valid", "compound_valid"]
    assert (a["formula"][~a["valid"]] == "").all()
    assert not ((a["paper_rule_valid"] | a["compound_valid"]) & ~a["valid"]).any()
    assert not (a["compound_valid"] & a["formula"].str.fullmatch(r"[A-Z][a-z]?\d*")).any()  # no single elements


def test_shipped_generator_matches_its_card_slice():
    gan = load_gan()
    _, valid = gan.sample_counts(5000, seed=7)
    assert float(valid.mean()) == pytest.approx(gan.card["metrics"]["slice_seed7_5000_valid_fraction"], abs=1e-9)
    assert gan.card["metrics"]["valid_fraction"] > 0.5


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_tiny_training_writes_a_loadable_checkpoint_of_its_architecture(tmp_path, arch):
    card = train(tmp_path / "gan", GANConfig(epochs=1, batch_size=64, arch=arch), torch.device("cpu"), limit=640)
    gan = load(tmp_path / "gan")
    assert type(gan.gen).__name__ == gan.config["class"] == ARCHS[arch][0].__name__
    assert gan.config["train"]["arch"] == arch and card["epochs"] == 1
    assert len(card["history"]) == 1 and np.isfinite(card["history"][0]["critic_loss"])
    assert gan.sample_probs(10, seed=1).shape == (10, 87, 8)


def test_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown GAN architecture"):
        train(tmp_path / "gan", GANConfig(epochs=1, arch="rnn"), torch.device("cpu"), limit=64)


def test_compound_reading_turns_near_misses_into_compounds():
    """The shipped generator's decode: a sample that is not a compound reads as its most likely
    compound reading within the checkpoint's drop; the plain decode stays available."""
    gan = load_gan()
    assert gan.compound_max_drop > 0 and gan.card["metrics"]["plain_decode"]["valid_fraction"] > 0
    plain = gan.sample(3000, seed=11, compound_max_drop=0.0)
    read = gan.sample(3000, seed=11)
    assert read["compound_valid"].mean() > plain["compound_valid"].mean() + 0.1
    same = plain["compound_valid"].to_numpy()
    assert (read["formula"][same] == plain["formula"][same]).all()  # compounds are left as they are
    changed = (read["formula"] != plain["formula"]).to_numpy()
    assert changed.any() and read["compound_valid"][changed].all()


def test_categorical_reading_of_a_hand_made_softmax_row():
    from wbg_core.composition import VOCAB
    from wbg_core.models.compound_decoding import best_compound_counts, categorical_row_options

    p = np.zeros((87, 8), np.float32)
    p[VOCAB.index("Na"), 0] = 0.9  # Na1 likely
    p[VOCAB.index("Cl"), 0] = 0.4  # Cl1 less likely than absent (0.6): the plain decode is Na alone
    counts, formula, drop = best_compound_counts(categorical_row_options(p), max_drop=4.0)
    assert formula == "NaCl" and 0 < drop < 1
    assert best_compound_counts(categorical_row_options(p), max_drop=0.1)[0] is None


def test_evaluation_predicts_the_gap_histogram_with_the_oracle_it_is_given(bandgaps):
    """evaluate() loads no oracle of its own: a model or a loader draws the histogram; without one,
    or when the loader fails, the card says why instead."""
    from wbg_core.models.gan import evaluate
    from wbg_core.models.registry import CheckpointSet

    gan = load_gan()
    counts = encode_counts(bandgaps["formula"][bandgaps["encodable"]].iloc[:500].to_numpy(dtype=object)).counts
    shipped = CheckpointSet.shipped()
    by_model = evaluate(gan, bandgaps, counts, n=300, oracle=shipped.oracle())["gap_histogram"]
    assert len(by_model["bins"]) == 21 and sum(by_model["generated_unique"]) > 0
    assert evaluate(gan, bandgaps, counts, n=300, oracle=shipped.oracle)["gap_histogram"] == by_model  # a loader

    def broken():
        raise OSError("no oracle/model.safetensors")

    assert evaluate(gan, bandgaps, counts, n=300, oracle=broken)["gap_histogram"] == {
        "error": "oracle unavailable: no oracle/model.safetensors"}
    assert evaluate(gan, bandgaps, counts, n=300)["gap_histogram"] == {
        "error": "oracle unavailable: no oracle was given to the evaluation"}


def test_a_smoke_run_learns_from_the_first_compounds_of_the_split(bandgaps):
    """training_formulas(limit=n): the first n formulas of the train split that pass the compound
    rule, found without judging the whole split."""
    from wbg_core.composition import compound_valid
    from wbg_core.data import split
    from wbg_core.models.gan import training_formulas

    order = split(bandgaps, seed=0, subset="encodable")["train"]["formula"].to_numpy(dtype=object)
    some = training_formulas(bandgaps, 0, "compounds", limit=300)
    assert len(some) == 300 and compound_valid(some).all()
    head = order[:list(order).index(some[-1]) + 1]  # the split up to the last one taken
    assert list(head[compound_valid(head)]) == list(some)  # none skipped, in the split's order
    assert list(training_formulas(bandgaps, 0, "all", limit=50)) == list(order[:50])
    with pytest.raises(ValueError, match="train_on must be 'compounds' or 'all'"):
        training_formulas(bandgaps, 0, "alloys", limit=5)
