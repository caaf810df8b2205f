import json

import pytest
import torch

from wbg_core.models.checkpoint import ModelError, load_checkpoint, save_checkpoint, flatten_optimizer, restore_optimizer


def test_save_load_round_trip_is_bit_exact(tmp_path):
    net = torch.nn.Linear(7, 3)
    save_checkpoint(tmp_path, net.state_dict(), {"class": "Linear"}, {"metrics": {"mae": 0.1}})
    tensors, config, card = load_checkpoint(tmp_path)
    for k, v in net.state_dict().items():
        assert torch.equal(tensors[k], v)
    assert config == {"class": "Linear"} and card["metrics"]["mae"] == 0.1


@pytest.mark.parametrize("damage", ["truncate", "garbage", "delete"])
def test_corrupt_or_missing_weights_name_the_file(tmp_path, damage):
    save_checkpoint(tmp_path, {"w": torch.ones(100)}, {"class": "X"}, {})
    path = tmp_path / "model.safetensors"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file at all" * 10)
    else:
        path.unlink()
    with pytest.raises(ModelError, match="model.safetensors"):
        load_checkpoint(tmp_path)


def test_corrupt_config_names_the_file(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.ones(3)}, {"class": "X"}, {})
    (tmp_path / "config.json").write_text("{broken")
    with pytest.raises(ModelError, match="config.json"):
        load_checkpoint(tmp_path)


def test_optimizer_state_survives_without_pickle():
    net = torch.nn.Linear(4, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    net(torch.randn(8, 4)).sum().backward()
    opt.step()
    tensors, meta = flatten_optimizer(opt, "o")
    json.dumps(meta)  # the non-tensor part is plain JSON
    opt2 = torch.optim.Adam(net.parameters(), lr=0.5)
    restore_optimizer(opt2, "o", tensors, meta)
    assert opt2.param_groups[0]["lr"] == 0.01
    for a, b in zip(opt.state.values(), opt2.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"])


@pytest.mark.parametrize("module", ["wbg_core.models", "wbg_core.cli", "wbg_core.services.status",
                                    "wbg_core.services.inputs", "wbg_core.services.known",
                                    "wbg_core.services.figures", "wbg_core.services.window",
                                    "wbg_core.services.structures_view"])
def test_light_modules_do_not_import_torch(module):
    """The home page and the CLI's start-up name ModelError without paying torch's ~1 s import."""
    import subprocess
    import sys

    code = f"import sys, {module}; from wbg_core.models import ModelError; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_one_model_error_class():
    from wbg_core.models import ModelError as public
    from wbg_core.models.checkpoint import ModelError as raised

    assert public is raised


# ---------------------------------------------------------------- checksums, bounds, non-finite outputs (#16.4)

import hashlib
import resource
import shutil
import subprocess
import sys

import numpy as np

from wbg_core.models.checkpoint import WEIGHTS_SHA256, build_module, stamp_weights_sha256
from wbg_core.settings import get_settings

KINDS = ("oracle", "autoencoder", "gan")


def _loader(kind):
    from wbg_core.models import autoencoder, gan, oracle

    return {"oracle": oracle.load, "autoencoder": autoencoder.load, "gan": gan.load}[kind]


def _copy(kind, tmp_path):
    dst = tmp_path / kind
    shutil.copytree(get_settings().models_dir / kind, dst)
    return dst


def _garble(path, n=2000, seed=0):
    """Overwrite n bytes in the middle with random bytes, as the issue's report did."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + n] = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_checksums(monkeypatch):
    """Settings.verify_checksums off (WBG_VERIFY_CHECKSUMS=0) for one test."""
    monkeypatch.setenv("WBG_VERIFY_CHECKSUMS", "0")
    get_settings.cache_clear()
    assert not get_settings().verify_checksums
    yield
    get_settings.cache_clear()  # re-read after monkeypatch restores the environment


def test_save_checkpoint_records_the_sha256_of_the_weights(tmp_path):
    card = {"metrics": {}}
    save_checkpoint(tmp_path, {"w": torch.arange(10.0)}, {"class": "X"}, card)
    on_disk = json.loads((tmp_path / "card.json").read_text())
    assert on_disk[WEIGHTS_SHA256] == {"model.safetensors": _sha(tmp_path / "model.safetensors")}
    assert card[WEIGHTS_SHA256] == on_disk[WEIGHTS_SHA256]  # the caller's card says what the file says


@pytest.mark.parametrize("kind", KINDS)
def test_shipped_cards_record_the_sha256_of_their_weights(kind):
    d = get_settings().models_dir / kind
    card = json.loads((d / "card.json").read_text())
    assert card[WEIGHTS_SHA256] == {"model.safetensors": _sha(d / "model.safetensors")}


@pytest.mark.parametrize("kind", KINDS)
def test_garbled_weights_are_a_model_error_naming_the_file(tmp_path, kind):
    d = _copy(kind, tmp_path)
    _garble(d / "model.safetensors")
    with pytest.raises(ModelError, match=r"model\.safetensors is corrupt or was changed: its sha256 .*card\.json"):
        _loader(kind)(d)


def test_wbg_predict_on_garbled_oracle_weights_fails_naming_the_file(tmp_path):
    """The reported bug: null gaps printed with exit 0."""
    models = tmp_path / "models"
    _copy("oracle", models)
    _garble(models / "oracle" / "model.safetensors")
    env = {**__import__("os").environ, "WBG_MODELS_DIR": str(models), "WBG_TORCH_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "wbg_core", "predict", "SrYF5"], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 2
    assert "model.safetensors is corrupt" in out.stderr and "Traceback" not in out.stderr
    assert "SrYF5" not in out.stdout  # no table of blanks


def test_a_card_without_checksums_loads_with_a_warning(tmp_path, caplog):
    d = _copy("gan", tmp_path)
    card = json.loads((d / "card.json").read_text())
    del card[WEIGHTS_SHA256]
    (d / "card.json").write_text(json.dumps(card))
    with caplog.at_level("WARNING", logger="wbg_core.models.checkpoint"):
        gan = _loader("gan")(d)
    assert any("weights_sha256" in r.getMessage() and "unverified" in r.getMessage() for r in caplog.records)
    assert gan.sample(20, seed=1)["valid"].mean() > 0.5  # an old checkpoint still works
    assert stamp_weights_sha256(d) == {"model.safetensors": _sha(d / "model.safetensors")}
    caplog.clear()
    _loader("gan")(d)
    assert not caplog.records  # stamped: verified, no warning


@pytest.mark.parametrize("value", ["abc", {"model.safetensors": "xyz"}, ["model.safetensors"]])
def test_a_malformed_checksum_field_names_the_card(tmp_path, value):
    d = _copy("gan", tmp_path)
    card = json.loads((d / "card.json").read_text())
    card[WEIGHTS_SHA256] = value
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"card\.json: weights_sha256"):
        _loader("gan")(d)


def test_the_checksum_setting_switches_the_weights_check(tmp_path, monkeypatch):
    d = _copy("gan", tmp_path)
    card = json.loads((d / "card.json").read_text())
    card[WEIGHTS_SHA256]["model.safetensors"] = "0" * 64
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="does not match the 000000000000"):
        _loader("gan")(d)
    monkeypatch.setenv("WBG_VERIFY_CHECKSUMS", "0")
    get_settings.cache_clear()
    try:
        assert _loader("gan")(d).sample_probs(4).shape == (4, 87, 8)
    finally:
        monkeypatch.delenv("WBG_VERIFY_CHECKSUMS")
        get_settings.cache_clear()


def test_without_checksums_non_finite_weights_are_still_refused(tmp_path, no_checksums):
    from safetensors.torch import load_file, save_file

    d = _copy("autoencoder", tmp_path)
    tensors = load_file(str(d / "model.safetensors"))
    tensors["to_latent.bias"][3] = float("nan")
    save_file(tensors, str(d / "model.safetensors"))
    with pytest.raises(ModelError, match=r"model\.safetensors is corrupt: tensor to_latent\.bias holds non-finite"):
        _loader("autoencoder")(d)


def test_non_finite_decoder_outputs_are_an_error_never_a_blank(tmp_path):
    """A NaN decodes to 'no formula' under every rule; the decode paths refuse it instead."""
    from wbg_core.models.autoencoder import LatentSampler

    ae = _loader("autoencoder")(_copy("autoencoder", tmp_path))
    z, ok, _ = ae.encode_formulas(["NaCl", "SrYF5"], refine=False)
    assert list(ae.decode(z)) == ["NaCl", "SrYF5"]
    with torch.no_grad():
        ae.net.from_latent[0].bias[5] = float("nan")
    ae._gemm = None  # the CPU decoder is built from the weights on first use
    with pytest.raises(ModelError, match="non-finite outputs for 2 of 2 rows"):
        ae.decode(z)
    with pytest.raises(ModelError, match="non-finite"):
        LatentSampler(ae, z.min(axis=0), z.max(axis=0)).sample_counts(10)
    gan = _loader("gan")(_copy("gan", tmp_path))
    with torch.no_grad():
        gan.gen.net[-1].bias[0] = float("nan")
    with pytest.raises(ModelError, match="non-finite"):
        gan.sample(10)


def _edit(d, keys, value):
    config = json.loads((d / "config.json").read_text())
    node = config
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = value
    (d / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("kind, keys, value, message", [
    ("oracle", ["kwargs", "hidden"], 10**9, "kwargs.hidden = 1000000000 is out of range 1..4096"),
    ("oracle", ["kwargs", "fea_len"], 10**6, "kwargs.fea_len = 1000000 is out of range 2..1024"),
    ("oracle", ["members"], 0, "members = 0 is out of range 1..32"),
    ("oracle", ["kwargs", "hidden"], "128", 'kwargs.hidden = "128": Input should be a valid integer'),
    ("oracle", ["kwargs", "hidden"], 128.0, "kwargs.hidden = 128.0: Input should be a valid integer"),
    ("oracle", ["kwargs", "heads"], True, "kwargs.heads = true: Input should be a valid integer"),
    ("oracle", ["kwargs", "out_hidden"], [64] * 17, "kwargs.out_hidden = "),
    ("oracle", ["kwargs", "out_hidden"], [64, -1], "kwargs.out_hidden.1 = -1 is out of range 1..4096"),
    ("oracle", ["kwargs", "dropout"], 0.1, "kwargs.dropout is not a known key"),
    ("oracle", ["lr"], 0.1, "lr is not a known key"),
    ("oracle", ["std_scale"], float("nan"), "std_scale = NaN: Input should be a finite number"),
    ("oracle", ["head", "sha256", "calibration.json"], "not hex", "head.sha256.calibration.json"),
    ("autoencoder", ["kwargs", "channels"], [16, 10**6], "kwargs.channels.1 = 1000000 is out of range 1..512"),
    ("autoencoder", ["kwargs", "channels"], [16], "kwargs.channels = [16]"),
    ("autoencoder", ["kwargs", "latent_dim"], -5, "kwargs.latent_dim = -5 is out of range 1..1024"),
    ("autoencoder", ["kwargs"], [128], "kwargs = [128]: Input should be a valid dictionary"),
    ("gan", ["kwargs", "noise_dim"], 10**9, "kwargs.noise_dim = 1000000000 is out of range 1..1024"),
    ("gan", ["sampling", "compound_max_drop"], -1, "sampling.compound_max_drop = -1 is out of range"),
    ("gan", ["class"], "Transformer", "is not a generator config"),
])
def test_a_hostile_config_is_refused_by_name_before_any_tensor_is_built(tmp_path, kind, keys, value, message):
    d = _copy(kind, tmp_path)
    _edit(d, keys, value)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError) as err:
        _loader(kind)(d)
    assert str(err.value).startswith(str(d / "config.json"))
    assert message in str(err.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # KiB: nothing big was allocated


@pytest.mark.parametrize("kind, keys, value", [
    ("oracle", ["kwargs", "hidden"], 4096),  # in range, but not what the weights hold
    ("oracle", ["members"], 32),
    ("oracle", ["members"], 2),  # the file holds 5: its other members are not silently dropped
    ("autoencoder", ["kwargs", "channels"], [512, 512]),
    ("gan", ["kwargs", "noise_dim"], 1024),
])
def test_a_config_that_does_not_describe_the_weights_fails_before_allocating(tmp_path, kind, keys, value):
    d = _copy(kind, tmp_path)
    _edit(d, keys, value)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match=r"model\.safetensors does not match its config\.json"):
        _loader(kind)(d)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000


def test_build_module_checks_shapes_on_the_meta_device():
    tensors = torch.nn.Linear(3, 2).state_dict()
    net = build_module(lambda: torch.nn.Linear(3, 2), tensors, "x.safetensors")
    assert torch.equal(net.weight, tensors["weight"]) and net.weight.device.type == "cpu"
    with pytest.raises(ModelError, match=r"x\.safetensors does not match its config\.json: .*weight"):
        build_module(lambda: torch.nn.Linear(3, 10**6), tensors, "x.safetensors")


def test_the_oracle_head_files_and_the_weights_share_one_checksum_check(tmp_path):
    from wbg_core.models.oracle_head import CALIBRATION_FILE, booster_files

    d = _copy("oracle", tmp_path)
    gap_file = booster_files(json.loads((d / CALIBRATION_FILE).read_text()))["regressor"][0]
    _garble(d / gap_file)
    with pytest.raises(ModelError, match=rf"{gap_file} is corrupt or was changed: its sha256 .*config\.json"):
        _loader("oracle")(d)


@pytest.mark.parametrize("name", ["config.json", "card.json"])
@pytest.mark.parametrize("content", [b"", b"[1, 2]", b"\xff\xfe{"])
def test_an_empty_or_non_object_json_file_is_named(tmp_path, name, content):
    d = _copy("gan", tmp_path)
    (d / name).write_bytes(content)
    with pytest.raises(ModelError, match=rf"{name}"):
        _loader("gan")(d)
