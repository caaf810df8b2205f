"""The one Trainer: per-epoch JSON progress the app reads, and the guard on an epoch that logs nothing."""
import json

import pytest
import torch

from wbg_core.models import progress_log
from wbg_core.models.oracle import OracleConfig
from wbg_core.models.oracle_training import train
from wbg_core.models.trainer import Trainer
from wbg_core.models.training import pick_device


@pytest.fixture
def progress_file(tmp_path):
    path = tmp_path / progress_log.FILE_NAME
    progress_log.set_progress_file(path)
    yield path
    progress_log.set_progress_file(None)


def test_each_epoch_appends_a_json_line_and_a_resumed_run_goes_on_counting(tmp_path, progress_file):
    cfg = OracleConfig(members=1, epochs=2)
    train(tmp_path / "run", cfg, pick_device("cpu"), limit=200, only_member=0)
    lines = [json.loads(x) for x in progress_file.read_text().splitlines()]
    assert [(x["label"], x["epoch"], x["epochs"]) for x in lines] == [("oracle member 1", 1, 2), ("oracle member 1", 2, 2)]
    assert all(x["val_mae"] > 0 and x["elapsed_s"] >= 0 and x["eta_s"] >= 0 for x in lines)
    assert lines[-1]["eta_s"] == 0
    # a run that finds the finished state trains nothing and writes nothing
    train(tmp_path / "run", cfg, pick_device("cpu"), limit=200, only_member=0)
    assert len(progress_file.read_text().splitlines()) == 2
    # a line still being written when the app reads is skipped, not an error
    with open(progress_file, "a") as fh:
        fh.write('{"label": "oracle member 1", "epo')
    assert progress_log.read_progress(progress_file)["epoch"] == 2
    assert progress_log.read_progress(tmp_path / "missing.jsonl") is None


def test_an_epoch_that_logs_nothing_is_an_error(tmp_path):
    net = torch.nn.Linear(2, 1)
    trainer = Trainer(tmp_path, {"model": "x"}, {"net": net}, {"opt": torch.optim.SGD(net.parameters(), lr=0.1)},
                      label="x", seed=0)
    with pytest.raises(RuntimeError, match="must call trainer.log"):
        for _epoch, _rng in trainer.epochs(1):
            pass
