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


@pytest.mark.parametrize("module", ["wbg_core.models", "wbg_core.app_support", "wbg_core.cli"])
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
