"""What a checkpoint's config.json may ask for, checked before any weight is read or tensor built.

Why: a model is rebuilt from config.json alone, so a damaged or hostile one (`hidden: 10^9`)
used to fail only when torch could not allocate 512 GB, after the process had grown by
gigabytes. Here every width and depth is an exact integer in a range far above the shipped
models' (8-30x), every key is known and every type exact; a violation is one ModelError that
names the file, the key, the value and the range. `train` is a record of how the model was
trained (read by people and by re-evaluation), so only its type is checked. The module does
not import torch: the CLI can check a config without paying for it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..validation_text import describe, describe_errors  # noqa: F401 (describe: its home before)
from .errors import ModelError

HEAD_FILES = ("head_nonmetal.lgb.txt.gz", "head_gap.lgb.txt.gz", "calibration.json",
              "head_nonmetal.lgb.txt", "head_gap.lgb.txt")  # the last two: plain-text boosters before 2026-12
# a cross-fitted head's k gap regressors and k stacked classifiers (oracle_head.booster_files)
HEAD_FILE = Annotated[str, Field(pattern=r"^(" + "|".join(n.replace(".", r"\.") for n in HEAD_FILES)
                                 + r"|head_gap\.[0-9]{1,2}\.lgb\.txt\.gz|head_nonmetal_stack\.[0-9]{1,2}\.lgb\.txt\.gz)$")]
MAX_MEMBERS = 32  # oracle ensemble members a checkpoint may hold (wbg train --members is held to it)
SHA256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _within(lo: float, hi: float):
    def check(v):
        if not lo <= v <= hi:
            raise ValueError(f"out of range {lo}..{hi}")
        return v

    return AfterValidator(check)


def Int(lo: int, hi: int):  # noqa: N802 (reads as a type in the models below)
    return Annotated[int, _within(lo, hi)]


def Real(lo: float, hi: float):  # noqa: N802
    return Annotated[float, Field(allow_inf_nan=False), _within(lo, hi)]


def Widths(lo: int, hi: int, n_min: int, n_max: int):  # noqa: N802
    return Annotated[list[Int(lo, hi)], Field(min_length=n_min, max_length=n_max)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=False)


# Defaults mirror the constructors' (a key left out builds what it always built).
class OracleKwargs(_Strict):
    emb_dim: Int(1, 1024) = 200
    fea_len: Int(2, 1024) = 64
    n_graph: Int(1, 16) = 3
    heads: Int(1, 16) = 2
    hidden: Int(1, 4096) = 128
    out_hidden: Widths(1, 4096, 1, 16) = [512, 256, 128, 64, 32]


class OracleHeadSection(_Strict):
    files: list[HEAD_FILE] = list(HEAD_FILES)
    config: dict[str, Any] = {}
    sha256: dict[HEAD_FILE, SHA256] = {}


class OracleFile(_Strict):
    class_: Literal["RoostGapEnsemble"] = Field(alias="class")
    members: Int(1, MAX_MEMBERS)
    nonmetal_members: Int(0, MAX_MEMBERS) = 0  # members trained on gap > 0 only (the head reads them)
    kwargs: OracleKwargs
    # the non-metal members' architecture where it differs from the full members' (None: the same)
    nonmetal_kwargs: OracleKwargs | None = None
    train: dict[str, Any] = {}
    std_scale: Real(1e-6, 1e3) = 1.0
    head: OracleHeadSection | None = None


class AutoencoderKwargs(_Strict):
    latent_dim: Int(1, 1024) = 128
    channels: Widths(1, 512, 2, 2) = [32, 128]


class AutoencoderFile(_Strict):
    class_: Literal["ConvAutoencoder"] = Field(alias="class")
    kwargs: AutoencoderKwargs
    train: dict[str, Any] = {}


class GanSampling(_Strict):
    compound_max_drop: Real(0.0, 100.0) = 0.0


class DenseGeneratorKwargs(_Strict):
    noise_dim: Int(1, 1024) = 128
    hidden: Widths(1, 4096, 2, 2) = [256, 512]


class ConvGeneratorKwargs(_Strict):
    noise_dim: Int(1, 1024) = 128


class DenseGeneratorFile(_Strict):
    class_: Literal["DenseGenerator"] = Field(alias="class")
    kwargs: DenseGeneratorKwargs
    train: dict[str, Any] = {}
    sampling: GanSampling = GanSampling()


class ConvGeneratorFile(DenseGeneratorFile):
    class_: Literal["Generator"] = Field(alias="class")
    kwargs: ConvGeneratorKwargs


# kind -> ("a ... config" wording, class name -> schema)
SCHEMAS: dict[str, tuple[str, dict[str, type[_Strict]]]] = {
    "oracle": ("an oracle", {"RoostGapEnsemble": OracleFile}),
    "autoencoder": ("an autoencoder", {"ConvAutoencoder": AutoencoderFile}),
    "gan": ("a generator", {"DenseGenerator": DenseGeneratorFile, "Generator": ConvGeneratorFile}),
}


def validate_config(kind: str, config: Any, path: Path) -> _Strict:
    """The config of a `kind` checkpoint, validated; ModelError naming `path` and every bad key."""
    wording, classes = SCHEMAS[kind]
    cls = config.get("class") if isinstance(config, dict) else None
    if not isinstance(cls, str) or cls not in classes:
        raise ModelError(f"{path} is not {wording} config (class {cls!r}; expected {' or '.join(classes)})")
    try:
        return classes[cls].model_validate(config)
    except ValidationError as exc:
        raise ModelError(describe_errors(exc, str(path))) from None


def validate_weights_sha256(card: Any, path: Path) -> dict[str, str] | None:
    """card.json's {file: sha256} of the weights, None where the card predates it."""
    if not isinstance(card, dict) or "weights_sha256" not in card:
        return None
    sums = card["weights_sha256"]
    if not isinstance(sums, dict) or not all(
            isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v) for v in sums.values()):
        raise ModelError(f"{path}: weights_sha256 must map file names to 64 hex digits, not {str(sums)[:60]}")
    return sums
