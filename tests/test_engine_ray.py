"""The Ray engine on a local Ray with 2 CPUs: the local engine's result, resume, damage, bad addresses."""
import json
import time

import pytest

from wbg_core.engine.ray_screening import (PART_DIR, RUN_FILE, SHARD_DIR, TOP_FILE, RayEngineError, check_address,
                                           partition_of, screen_ray)
from wbg_core.engine.screening import ScreenConfig, screen
from wbg_core.models.registry import CheckpointSet

CFG = ScreenConfig(min_gap=3.0, pool=12_000, seed=3, chunk=3_000)  # 4 shards
SPLIT = {"rows_per_partition": 4_000}  # 3 partitions


@pytest.fixture(scope="module")
def ray_local():
    import ray

    from wbg_core.engine.ray_screening import start_ray

    start_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def models():
    return CheckpointSet.shipped()


@pytest.fixture(scope="module")
def first_run(ray_local, models, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray") / "run"
    return out, screen_ray(CFG, models.directory, out, **SPLIT)


def test_same_candidates_in_the_same_order_as_the_local_engine(first_run, models):
    _, res = first_run
    local = screen(CFG, models.oracle(), models.gan())
    assert len(res) > 20 and res.engine == "ray" and local.engine == "local"
    assert res.candidates.equals(local.candidates)  # every column, every row, the order too
    assert res.funnel == local.funnel


def test_a_killed_run_resumes_and_a_damaged_file_is_computed_again(first_run, models):
    out, before = first_run
    shards = sorted((out / SHARD_DIR).glob("*.npz"))
    assert len(shards) == 4 and (out / TOP_FILE).exists()
    top = (out / TOP_FILE).read_text().splitlines()[0].split(",")
    assert "median_gap_if_nonmetal" in top and "gap_if_nonmetal" not in top  # named as wbg screen names it
    kept = {p: p.stat().st_mtime_ns for p in shards[:2]}
    shards[2].unlink()  # killed before this shard was written
    data = bytearray(shards[3].read_bytes())
    data[len(data) // 2] ^= 0xFF  # damaged on disk: its checksum no longer matches the manifest
    shards[3].write_bytes(bytes(data))
    for part in (out / PART_DIR).glob("*.parquet"):
        part.unlink()  # killed before labelling
    assert len(list((out / PART_DIR).glob("*.json"))) == 3
    again = screen_ray(CFG, models.directory, out, **SPLIT)
    assert again.candidates.equals(before.candidates)
    assert {p: p.stat().st_mtime_ns for p in shards[:2]} == kept  # finished shards were not recomputed
    manifest = json.loads(shards[3].with_suffix(".json").read_text())
    assert __import__("hashlib").sha256(shards[3].read_bytes()).hexdigest() == manifest["sha256"]


def test_a_run_folder_of_other_settings_is_refused(first_run, models):
    out, _ = first_run
    with pytest.raises(RayEngineError, match="holds a run with other settings"):
        screen_ray(ScreenConfig(min_gap=4.0, pool=12_000, seed=3, chunk=3_000), models.directory, out)
    assert json.loads((out / RUN_FILE).read_text())["config"]["min_gap"] == 3.0  # untouched


def test_an_unreachable_address_is_an_error_within_seconds():
    t = time.perf_counter()
    with pytest.raises(RayEngineError, match="cannot reach the Ray cluster at 127.0.0.1:9"):
        check_address("127.0.0.1:9")
    with pytest.raises(RayEngineError, match="give host:port"):
        check_address("somewhere")
    assert time.perf_counter() - t < 10


def test_identical_formulas_share_a_partition(bandgaps):
    from wbg_core.data.loaders import bandgap_counts

    c = bandgap_counts(bandgaps)[bandgaps["encodable"].to_numpy()][:5000]
    p = partition_of(c, 7)
    assert (partition_of(c[::-1].copy(), 7) == p[::-1]).all()
    assert set(p) == set(range(7))  # all partitions used


def test_the_cli_keeps_ray_flags_to_the_ray_engine(capsys):
    from wbg_core.cli import main

    assert main(["screen", "--min-gap", "3", "--address", "127.0.0.1:9"]) == 2
    assert "--address and --run-dir go with --engine ray" in capsys.readouterr().err
    assert main(["screen", "--min-gap", "3", "--engine", "ray", "--model", "forest"]) == 2
    assert "--engine ray screens with the oracle" in capsys.readouterr().err
    assert main(["experiment", "exp4", "--repeats", "1", "--address", "127.0.0.1:9"]) == 2
    assert "--address goes with --engine ray" in capsys.readouterr().err


@pytest.mark.slow
def test_experiment_repeats_on_ray_equal_the_sequential_run(ray_local, models, tmp_path):
    """Ray's repeat equals the sequential one, and a journal is shared by both engines: a Ray run
    after a killed one runs only the repeat that is missing and keeps it as it comes back."""
    import pandas as pd
    import torch

    from wbg_core.engine.experiments import ExperimentConfig, run_experiment

    cfg = ExperimentConfig(name="exp4", repeats=2, n_seeds=40, budget=10, batch_size=10, pool=20_000,
                           models=("rf",), test_limit=200, generator="gan")
    journal = tmp_path / "journal"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task runs
    try:
        seq = run_experiment(cfg, models, journal=journal)
    finally:
        torch.set_num_threads(threads)
    assert sorted(p.name for p in journal.iterdir()) == ["repeat_000.json", "repeat_001.json"]
    (journal / "repeat_001.json").unlink()  # the run was killed in its second repeat
    said = []
    par = run_experiment(cfg, models, engine="ray", journal=journal, progress_callback=lambda f, m: said.append(m))

    def results(res):  # every figure but the seconds each step took (NaN equals NaN here)
        df = pd.DataFrame(res["repeats"])
        return df[[c for c in df.columns if not c.endswith("_s")]]

    assert results(par).equals(results(seq)) and list(results(par)["repeat"]) == [0, 1]
    assert results(seq)["valid_proposals"].gt(0).all()
    assert par["reference"]["repeats_from_journal"] == 1 and seq["reference"]["repeats_from_journal"] == 0
    assert any("repeats 1 of 2: kept from" in m for m in said)
    ran = [m for m in said if " repeat: " in m]
    assert len(ran) == 1 and "repeat: 1 done, 2 of 2" in ran[0]  # only the missing repeat ran, on Ray
    assert (journal / "repeat_001.json").is_file()  # and was kept as it came back


@pytest.mark.parametrize("nonmetal_from_full", [False, True])  # True: the non-metal members wait for the full ones
def test_oracle_members_trained_as_ray_tasks_assemble_to_the_sequential_ensemble(ray_local, tmp_path, nonmetal_from_full):
    import torch

    from wbg_core.engine.ray_members import train_members
    from wbg_core.models.oracle import OracleConfig, load
    from wbg_core.models.oracle_training import train
    from wbg_core.models.training import pick_device

    cfg = OracleConfig(members=2, epochs=1, nonmetal_from_full=nonmetal_from_full)
    kw = {"limit": 300, "nonmetal_members": 1}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Ray task trains
    try:
        whole = train(tmp_path / "whole", cfg, pick_device("cpu"), **kw)
        done = train_members(tmp_path / "ray", cfg, "cpu", **kw)
        assert [d["member"] for d in done] == [0, 1, 2] and done[2]["kind"] == "nonmetal_member"
        assembled = train(tmp_path / "ray", cfg, pick_device("cpu"), **kw)  # finds every member finished
    finally:
        torch.set_num_threads(threads)
    assert assembled["history"] == whole["history"]
    a, b = load(tmp_path / "whole"), load(tmp_path / "ray")
    for ma, mb in zip(a.members + a.nonmetal_members, b.members + b.nonmetal_members):
        for (k, va), (_, vb) in zip(ma.state_dict().items(), mb.state_dict().items()):
            assert torch.equal(va, vb), k


def test_train_keeps_ray_flags_to_the_oracle(capsys):
    from wbg_core.cli import main

    assert main(["train", "gan", "--engine", "ray"]) == 2
    assert "--engine ray trains the oracle's members" in capsys.readouterr().err
    assert main(["train", "oracle", "--address", "127.0.0.1:9"]) == 2
    assert "--address goes with --engine ray" in capsys.readouterr().err
