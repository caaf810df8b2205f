"""Training settings of the autoencoder, the oracle and the GAN, free of torch so the CLI can build its flags
from them (cli.add_config_flags) without paying torch's import.

A field with a "help" in its metadata is also a `wbg train` flag: "cli" names the value check,
"choices" the allowed values, "flag" a flag name other than the field's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

NOISE = 128  # the GAN's noise dimension


@dataclass
class AEConfig:
    """Every training setting; the ones with a "help" in their metadata are also `wbg train autoencoder`
    flags (cli.add_config_flags builds them from here: "cli" names the value check)."""

    latent_dim: int = 128
    # The paper's widths are (32, 128); the shipped model uses (16, 64) so that it trains on
    # 2 CPU cores in minutes (same layers, strides, latent size, loss and optimiser).
    channels: tuple[int, int] = (16, 64)
    latent_noise: float = 0.1
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate (the paper's 1e-3)", "cli": "positive_float"})
    batch_size: int = 256  # the paper's 128; 256 halves the CPU time per epoch
    epochs: int = 30
    seed: int = 0
    # Swapping elements makes the decoder read each element from the code instead of recalling
    # the training formulas it co-occurred with, which is why unseen test formulas lost an
    # element (docs/models.md).
    substitute: float = field(default=0.0, metadata={
        "help": "fraction of each batch with elements swapped for random others, counts kept (0: the paper's "
                "training; see docs/models.md)", "cli": "fraction"})
    substitute_within: int = field(default=0, metadata={
        "help": "substitutes only among the K nearest elements on Pettifor's chemical scale (Mendeleev number) "
                "either side, so substituted formulas stay chemical (0: any element)", "cli": "nonneg_int"})
    substitute_oxidation: bool = field(default=False, metadata={
        "help": "substitutes share a common oxidation state with the element they replace (pymatgen's "
                "common_oxidation_states), so charge-balanced formulas mostly stay charge-balanced"})
    # Warm start: a checkpoint directory whose weights begin this run (its card is cited).
    init_from: str | None = None


@dataclass
class OracleConfig:
    """One ensemble member's architecture and training; the fields with a "help" are `wbg train oracle` flags."""

    members: int = 5
    loss: str = "robust_l1"  # or "l1_with_std"
    fea_len: int = 64
    n_graph: int = 3
    # Roost uses 3 heads of 256; 1 of 128 trains 3x faster on 2 CPU cores (the checkpoints before 2026-12-04)
    heads: int = field(default=1, metadata={
        "help": "attention heads per message-passing layer (Roost's default 3)", "cli": "positive_int"})
    hidden: int = field(default=128, metadata={
        "help": "width of the attention gate and message networks (Roost's default 256)", "cli": "positive_int"})
    out_hidden: tuple[int, ...] = (512, 256, 128, 64, 32)  # 5 hidden layers, residual
    lr: float = 1e-3
    weight_decay: float = 1e-6
    batch_size: int = 256
    epochs: int = 35
    seed: int = 0
    # "nonmetal": members learn only the gap > 0 rows, the hurdle's second question (oracle_head.py)
    train_on: str = "full"
    # Data, not width, limits the non-metal members (docs/models.md): the train split's formation
    # energies (metals too, about 49,000 formulas) teach them chemistry before the 27,800 gaps.
    pretrain_epochs: int = field(default=0, metadata={
        "help": "epochs of pre-training each member on the formation energies of the train split (every row "
                "that has one, metals included) before it learns the gaps; 0: from random weights", "cli": "nonneg_int"})
    # Measured 2026-12-04 (docs/models.md): a non-metal member started from a full member that was
    # itself pre-trained on formation energies reaches 0.429 eV on the validation non-metals (0.447
    # pre-trained on formation energies alone): energies, then every gap, then the non-metals' gaps.
    nonmetal_from_full: bool = field(default=False, metadata={
        "help": "start non-metal member K from full member K's best weights (of --init-from's checkpoint or of "
                "this run), instead of random or formation-energy weights"})


@dataclass
class GANConfig:
    noise_dim: int = NOISE
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    gp_weight: float = 10.0
    n_critic: int = 5
    batch_size: int = 128
    epochs: int = 200  # one epoch = critic steps covering the training set once (290 at batch 128)
    seed: int = 0
    arch: str = field(default="dense", metadata={
        "help": "generator architecture: dense (shipped) or conv (MATGAN's layers); see docs/models.md",
        "choices": ("dense", "conv"), "flag": "gan-arch"})
    # MATGAN learned from ICSD, whose entries are charge-balanced compounds: what the screen is for
    train_on: str = field(default="compounds", metadata={
        "help": "training formulas: those passing the compound rule (compounds, shipped) or all (metals and "
                "alloys too; the checkpoints before 2026-12)", "choices": ("compounds", "all"), "flag": "gan-train-on"})
