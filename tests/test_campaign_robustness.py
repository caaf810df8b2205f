"""Campaigns never lose a round (issue #16.2): a real `wbg campaign run` process is SIGKILLed
mid-round and restarted, and a second runner is refused while it runs. The same machinery
measures 20 kills in bench/robust_campaigns.py."""
import os
import shutil
import sys
from pathlib import Path

import pytest

from app_testing import need_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import robust_campaigns as rc  # noqa: E402


@pytest.fixture(scope="module")
def models():
    """What the CLI runner hands a campaign: the shipped autoencoder, the shipped oracle as labeller."""
    from wbg_core.engine.campaign import model_labeller
    from wbg_core.models.registry import CheckpointSet

    need_models()
    shipped = CheckpointSet.shipped()
    return {"autoencoder": shipped.autoencoder(), "labeller": model_labeller(shipped.oracle())}


def test_a_killed_runner_loses_no_round_and_a_second_runner_is_refused(tmp_path, capsys, models):
    from wbg_core.cli import main
    from wbg_core.engine.campaign import Campaign, CampaignBusy
    from wbg_core.settings import set_torch_threads

    rounds = 4
    template = rc.make_template(tmp_path / "template")
    ref = Path(shutil.copytree(template, tmp_path / "ref"))
    killed = Path(shutil.copytree(template, tmp_path / "killed"))
    set_torch_threads()  # as the CLI runner does: the same threads give the same floats
    Campaign.load(ref, **models).run(rounds)  # the uninterrupted reference, in this process

    run = rc.Runner(killed, rounds)
    assert run.wait_progress(5)  # round 1's four lines, then "round 2: fitting the GP"
    before = max(run.committed(), rc.rounds_on_disk(killed))
    assert run.kill()
    run.finish()
    after = Campaign.load(killed, autoencoder=None, labeller=None).state["rounds_done"]  # validated: the kill left nothing damaged
    assert after >= max(before, run.committed()) >= 1

    again = rc.Runner(killed, rounds - after)
    assert again.wait_progress(1)  # it holds the lock from its first round to its last
    with pytest.raises(CampaignBusy, match=rf"is being run by another process \(pid {again.proc.pid}\); wait for it"):
        Campaign.load(killed, **models).step()
    assert main(["campaign", "run", str(killed), "--rounds", "1"]) == 2
    assert f"is being run by another process (pid {again.proc.pid})" in capsys.readouterr().err
    assert again.proc.poll() is None  # both refusals came while it ran
    assert again.finish() == 0, again.output[-500:]

    equal, detail = rc.compare(ref, killed, rounds)
    assert equal, detail
    assert os.path.exists(killed / ".lock")  # the lock file stays; the lock itself went with the process
    assert Campaign.load(killed, **models).step().round == rounds + 1
