"""Your own DFT labels in a campaign (issue #17): an external labeller's rounds stay pending,
the computed gaps come back as a CSV (all rows or none), the GP continues from them, and a
round exports as CIFs + DFT inputs. Real campaigns on the shipped models."""
import io
import json
import re
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from app_testing import need_models
from wbg_core.engine.campaign import (
    Campaign, CampaignConfig, CampaignDamaged, CampaignError, model_labeller, pick_seeds)
from wbg_core.engine.campaign_labels import PENDING, PROVISIONAL, read_labels, round_zip
from wbg_core.models.registry import CheckpointSet


def _cfg(**kw):
    base = dict(batch_size=3, n_candidates=60, seed=2, labeller="external")
    base.update(kw)
    return CampaignConfig(**base)


@pytest.fixture(scope="module")
def seeds():
    return pick_seeds(30, seed=1)


@pytest.fixture(scope="module")
def models():
    """What a campaign is handed: the shipped autoencoder, the shipped oracle as labeller (its
    values are an external campaign's provisional gaps)."""
    need_models()
    shipped = CheckpointSet.shipped()
    return {"autoencoder": shipped.autoencoder(), "labeller": model_labeller(shipped.oracle())}


@pytest.fixture(scope="module")
def ext(tmp_path_factory, seeds, models):
    """A real external campaign with 2 rounds on disk, nothing imported; tests use copies."""
    need_models()
    d = tmp_path_factory.mktemp("ext") / "camp"
    camp = Campaign.new(d, _cfg(), seeds["formula"], seeds["band_gap"], **models)
    camp.run(2)
    return d


@pytest.fixture(scope="module")
def labelled(tmp_path_factory, ext, models):
    """ext with round 1's first proposal labelled 2.5 eV by a real import."""
    d = shutil.copytree(ext, tmp_path_factory.mktemp("labelled") / "camp")
    camp = Campaign.load(d, **models)
    f = camp.rounds[0]["formula"].iloc[0]
    camp.import_labels(read_labels(f"formula,band_gap\n{f},2.5\n".encode(), "first.csv"))
    return d


def _copy(src, tmp_path, name="camp"):
    return shutil.copytree(src, tmp_path / name)


def _files(d):
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _proposed(camp, r=1):
    df = camp.rounds[r - 1]
    return df.loc[df["valid"], "formula"].tolist()


def _csv(path, rows, header="formula,band_gap"):
    path.write_text(header + "\n" + "".join(f"{f},{g}\n" for f, g in rows))
    return path


def test_an_external_round_is_pending_with_the_oracles_value_as_provisional(ext, seeds, models):
    camp = Campaign.load(ext, **models)
    assert camp.config.labeller == "external"
    for r, df in enumerate(camp.rounds, 1):
        v = df[df["valid"]]
        assert len(v) == 3 and v["band_gap"].isna().all() and (v["label_source"] == PENDING).all()
        assert not v["in_window"].any()
        oracle = CheckpointSet.shipped().oracle().predict(v["formula"].tolist()).frame()
        assert np.allclose(v["provisional_gap"], np.clip(oracle["band_gap_mean"], 0, None), atol=1e-5)
        assert np.allclose(v["provisional_std"], oracle["band_gap_std"], atol=1e-5)
        raw = pd.read_csv(ext / "rounds" / f"{r:04d}" / "proposals.csv", keep_default_na=False)
        assert "label_source" not in raw and (raw.loc[raw["valid"], "band_gap"] == "").all()  # empty: pending
    hist = camp.history()
    assert hist["pending"].tolist() == [3, 3] and hist["labelled"].tolist() == [0, 0]
    assert hist["trained_on"].tolist() == [len(seeds), len(seeds)]  # round 2 did not learn round 1's oracle values
    st = camp.status()
    assert (st["labeller"], st["pending"], st["dft_labelled"], st["labelled_al"]) == ("external", 6, 0, 0)
    z, y, table = camp.data()
    assert len(z) == len(y) == len(table) == len(seeds) and (table["source"] == "seed").all()


def test_a_partial_import_is_what_the_gp_continues_from(ext, tmp_path, seeds, models):
    d = _copy(ext, tmp_path)
    camp = Campaign.load(d, **models)
    a, b, c = _proposed(camp, 1)
    e = _proposed(camp, 2)[0]
    doubled = "".join(f"{el}{2 * int(n or 1)}" for el, n in re.findall(r"([A-Z][a-z]?)(\d*)", a))  # unreduced
    rep = camp.import_labels(read_labels(_csv(tmp_path / "gaps.csv", [(doubled, 4.25), (e, "0.0")])))
    assert rep == {"file": "gaps.csv", "rows": 2, "labelled": 2, "replaced": 0, "pending": 4}
    state = json.loads((d / "state.json").read_text())
    assert [(x["round"], x["formula"], x["band_gap"], x["file"]) for x in state["labels"]] == [
        (1, a, 4.25, "gaps.csv"), (2, e, 0.0, "gaps.csv")]

    back = Campaign.load(d, **models)
    r1 = back.rounds[0].set_index("formula")
    assert r1.loc[a, "band_gap"] == 4.25 and r1.loc[a, "label_source"].startswith("dft (imported 20")
    assert r1.loc[[b, c], "label_source"].tolist() == [PENDING, PENDING] and r1.loc[[b, c], "band_gap"].isna().all()
    z, y, table = back.data()
    al = table[table["source"] == "al"]
    assert len(z) == len(seeds) + 2 and sorted(al["formula"]) == sorted([a, e])
    assert al.set_index("formula").loc[a, "band_gap"] == 4.25
    st = back.status()
    assert (st["pending"], st["dft_labelled"], st["labelled_al"]) == (4, 2, 2)

    report = back.step()  # a new round while rows of earlier rounds are still pending: allowed
    assert report.round == 3 and report.trained_on == len(seeds) + 2 and report.provisional_used == 0
    assert report.pending == 3
    assert not set(_proposed(back, 3)) & {a, b, c, e}  # pending formulas are not proposed again
    assert Campaign.load(d, **models).status()["pending"] == 7


def test_provisional_labels_enter_a_fit_only_on_request_and_stay_pending(labelled, tmp_path, seeds, models):
    d = _copy(labelled, tmp_path)
    camp = Campaign.load(d, **models)
    _, _, plain = camp.data()
    assert PROVISIONAL not in set(plain["label_source"]) and len(plain) == len(seeds) + 1
    z, y, table = camp.data(use_provisional=True)
    prov = table[table["label_source"] == PROVISIONAL]
    assert len(z) == len(seeds) + 6 and len(prov) == 5
    assert np.allclose(prov["band_gap"], prov["provisional_gap"])
    report = camp.step(use_provisional=True)
    assert report.trained_on == len(seeds) + 6 and report.provisional_used == 5
    back = Campaign.load(d, **models)
    assert back.history()["provisional_used"].tolist() == [0, 0, 5]
    assert back.status()["pending"] == 8  # used in one fit, still waiting for DFT
    assert len(back.labelled()) == len(seeds) + 1  # what a screening model trains on: real labels only
    assert back.step().trained_on == len(seeds) + 1  # the next fit without the request leaves them out
    out = pd.read_csv(back.export(tmp_path / "all.csv"))
    assert (out["label_source"] == PENDING).sum() == 11 and out.loc[out["label_source"] == PENDING, "band_gap"].isna().all()


@pytest.mark.parametrize("rows,match", [
    (lambda p: [("NaCl", 5.0)], r"^bad\.csv: line 2: NaCl was not proposed by this campaign; nothing was imported$"),
    (lambda p: [(p[1], 2.0), ("MgO", 7.0)], r"line 3: MgO was not proposed"),  # all or nothing
    (lambda p: [(p[1], -0.5)], r"line 2 \(\w+\): band_gap -0\.5 is not a finite number >= 0 \(eV\)"),
    (lambda p: [(p[1], "wide")], r"line 2 \(\w+\): band_gap 'wide' is not a number \(eV\)"),
    (lambda p: [(p[1], "")], r"band_gap is empty; leave out the formulas you have not computed"),
    (lambda p: [(p[1], "nan"), (p[2], "inf")], r"line 2 .*not a finite number >= 0 .* \(1 more rows have problems\)"),
    (lambda p: [(p[1], 1.0), (p[1], 1.1)], r"lines 2 and 3: \w+ is listed twice"),
    (lambda p: [("Xx2", 1.0)], r"line 2: .*Xx"),
    (lambda p: [(p[0], 2.5)], r"line 2: \w+ was already imported \(2\.5 eV, 20\d\d-\d\d-\d\d\); importing the same "
                              r"labels again changes nothing"),
    (lambda p: [(p[1], 1.0), (p[0], 2.5)], r"line 3: \w+ was already imported"),
    (lambda p: [(p[0], 3.0)], r"line 2: \w+ already has the DFT gap 2\.5 eV .*import with replace to change it to 3 eV"),
])
def test_bad_label_files_change_nothing(labelled, tmp_path, capsys, rows, match, models):
    from wbg_core.cli import main

    d = _copy(labelled, tmp_path)
    camp = Campaign.load(d, **models)
    before = _files(d)
    csv = _csv(tmp_path / "bad.csv", rows(_proposed(camp, 1)))
    with pytest.raises(CampaignError, match=match):
        camp.import_labels(read_labels(csv, "bad.csv"))
    assert _files(d) == before
    assert main(["campaign", "import-labels", str(d), "--input", str(csv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {csv}: ") and err.count("\n") == 1 and "Traceback" not in err
    assert _files(d) == before
    assert Campaign.load(d, **models).status()["pending"] == 5


@pytest.mark.parametrize("text,match", [
    (b"formula,gap\nZnO,3\n", r"needs columns formula and band_gap \(eV\), has \['formula', 'gap'\]"),
    (b"formula,band_gap\n", r"has a header but no rows"),
    (b"", r"is not a readable CSV"),
    (b"\xff\xfe\x00bad", r"is not a readable CSV"),
])
def test_unreadable_label_files_are_named(labelled, tmp_path, text, match, models):
    d = _copy(labelled, tmp_path)
    before = _files(d)
    with pytest.raises(CampaignError, match=rf"^up\.csv {match}"):
        Campaign.load(d, **models).import_labels(read_labels(text, "up.csv"))
    assert _files(d) == before


def test_a_spreadsheet_csv_is_read_and_an_import_waits_for_the_lock(labelled, tmp_path, models):
    import os

    from wbg_core.engine.campaign import CampaignBusy, campaign_lock

    t = read_labels("\ufeff Formula , Band_Gap ,note\n Ga2N2 , 3.2 ,pbe\nMgO,7.8e0,\n".encode(), "sheet.csv")
    assert t.name == "sheet.csv" and len(t) == 2
    assert t.rows[["line", "formula", "reduced", "band_gap"]].values.tolist() == [[2, "Ga2N2", "GaN", 3.2],
                                                                                [3, "MgO", "MgO", 7.8]]
    d = _copy(labelled, tmp_path)
    camp = Campaign.load(d, **models)
    before = _files(d)
    ok = read_labels(f"formula,band_gap\n{_proposed(camp, 2)[0]},1.0\n".encode(), "ok.csv")
    with campaign_lock(d):  # a round is being stepped elsewhere
        with pytest.raises(CampaignBusy, match=rf"pid {os.getpid()}"):
            camp.import_labels(ok)
        assert _files(d) == before
    assert camp.import_labels(ok)["labelled"] == 1


def test_replace_changes_an_imported_gap_and_the_cli_says_what_it_did(labelled, tmp_path, capsys, models):
    from wbg_core.cli import main

    d = _copy(labelled, tmp_path)
    p = _proposed(Campaign.load(d, **models), 1)
    csv = _csv(tmp_path / "fix.csv", [(p[0], 3.0), (p[1], 1.5)])
    assert main(["campaign", "import-labels", str(d), "--input", str(csv)]) == 2  # p[0] has 2.5 eV already
    capsys.readouterr()
    assert main(["campaign", "import-labels", str(d), "--input", str(csv), "--replace"]) == 0
    assert capsys.readouterr().out == f"imported 1 new DFT labels and replaced 1 from {csv}; 4 proposals still pending\n"
    labels = {x["formula"]: x["band_gap"] for x in json.loads((d / "state.json").read_text())["labels"]}
    assert labels == {p[0]: 3.0, p[1]: 1.5}
    assert main(["campaign", "import-labels", str(d), "--input", str(csv), "--replace", "--json"]) == 2
    assert "already imported" in capsys.readouterr().err  # the same values again: nothing to replace
    assert main(["campaign", "status", str(d)]) == 0
    assert "4 proposals pending DFT labels, 2 DFT-labelled" in capsys.readouterr().out


def test_the_cli_steps_an_external_campaign_and_refuses_what_does_not_apply(ext, tmp_path, capsys, seeds):
    from wbg_core.cli import main

    d = _copy(ext, tmp_path)
    assert main(["campaign", "step", str(d), "--use-provisional"]) == 0
    out = capsys.readouterr()
    assert "round 3: 3 proposals wait for your DFT labels" in out.out
    assert f"the GP was fitted on {len(seeds) + 6} points, 6 of them provisional oracle gaps" in out.out
    assert f"wbg campaign export-round {d} --round 3" in out.err
    assert main(["campaign", "import-labels", str(d), "--input", str(tmp_path / "none.csv")]) == 2
    assert capsys.readouterr().err == f"error: the labels file {tmp_path / 'none.csv'} does not exist\n"

    o = tmp_path / "oracle"
    assert main(["campaign", "new", str(o), "--random-seeds", "30", "--batch", "3"]) == 0
    assert json.loads((o / "config.json").read_text())["labeller"] == "oracle"
    capsys.readouterr()
    before = _files(o)
    assert main(["campaign", "step", str(o), "--use-provisional"]) == 2
    assert "--use-provisional is for campaigns with the external labeller" in capsys.readouterr().err
    csv = _csv(tmp_path / "g.csv", [("NaCl", 5.0)])
    assert main(["campaign", "import-labels", str(o), "--input", str(csv)]) == 2
    assert "labelled by the oracle; only a campaign started with the external labeller" in capsys.readouterr().err
    assert _files(o) == before
    n = tmp_path / "new-ext"
    assert main(["campaign", "new", str(n), "--random-seeds", "30", "--labeller", "external", "--json"]) == 0
    st = json.loads(capsys.readouterr().out)
    assert (st["labeller"], st["pending"]) == ("external", 0)
    assert main(["campaign", "new", str(tmp_path / "x"), "--labeller", "dft"]) == 2


def test_old_campaign_files_load_as_oracle_and_bad_labels_are_damage(ext, tmp_path, models):
    d = _copy(ext, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    state = json.loads((d / "state.json").read_text())
    o = tmp_path / "old"
    Campaign.new(o, CampaignConfig(batch_size=3, n_candidates=60), ["NaCl", "MgO", "GaN"], [5.0, 7.0, 3.2], **models)
    old_cfg = json.loads((o / "config.json").read_text())
    del old_cfg["labeller"]  # a campaign saved before the labeller existed
    (o / "config.json").write_text(json.dumps(old_cfg))
    assert "labels" not in json.loads((o / "state.json").read_text())
    assert Campaign.load(o, **models).config.labeller == "oracle"

    old_hist = [{k: v for k, v in h.items() if k not in ("pending", "trained_on", "provisional_used")}
                for h in state["history"]]
    (d / "state.json").write_text(json.dumps({**state, "history": old_hist}))
    old = Campaign.load(d, **models)  # reports saved before the fields existed
    assert "trained_on" not in old.history() and old.status()["pending"] == 6

    f = Campaign.load(d, **models).rounds[0]["formula"].iloc[0]
    lab = {"round": 1, "formula": f, "band_gap": 2.0, "imported": "2025-01-01T00:00:00+00:00", "file": None}
    for labels, match in [([{**lab, "formula": "NaCl"}], r"labels\.0 \(NaCl, round 1\): round 1 proposed no such"),
                          ([{**lab, "round": 5}], r"the campaign has 2 rounds"),
                          ([lab, lab], r"imported twice"),
                          ([{**lab, "band_gap": -1.0}], r"labels\.0\.band_gap = -1\.0: Input should be greater than or equal")]:
        (d / "state.json").write_text(json.dumps({**state, "labels": labels}))
        with pytest.raises(CampaignDamaged, match=match):
            Campaign.load(d, **models)
    (d / "state.json").write_text(json.dumps({**state, "labels": [lab]}))
    (d / "config.json").write_text(json.dumps({**cfg, "labeller": "oracle"}))
    with pytest.raises(CampaignDamaged, match=r"rounds/0001/proposals\.csv: column band_gap is not numeric"):
        Campaign.load(d, **models)
    (d / "config.json").write_text(json.dumps({**cfg, "labeller": "DFT"}))
    with pytest.raises(CampaignDamaged, match="labeller must be 'oracle' or 'external'"):
        Campaign.load(d, **models)


def test_a_round_exports_structures_and_dft_inputs(labelled, tmp_path, capsys, models):
    from pymatgen.core import Structure

    from wbg_core.cli import main
    from wbg_core.composition import reduced_formula

    camp = Campaign.load(labelled, **models)
    data, name = round_zip(camp, 1)
    assert name == "round-0001.zip"
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = set(zf.namelist())
    index = pd.read_csv(io.BytesIO(zf.read("round-0001/index.csv")), keep_default_na=False)
    r1 = camp.rounds[0][camp.rounds[0]["valid"]]
    assert index["formula"].tolist() == r1["formula"].tolist()
    assert np.allclose(index["provisional_gap"], r1["provisional_gap"]) and np.allclose(index["sigma"],
                                                                                          r1["provisional_std"])
    assert index["label"].tolist()[0].startswith("dft (imported") and index["label"].tolist()[1:] == [PENDING] * 2
    assert "round-0001/README.md" in names and "import-labels" in zf.read("round-0001/README.md").decode()
    made = index[index["cif"] != ""]
    assert len(made) >= 2 and (made["dft_folder"] != "").sum() >= 2, index.to_string()  # the shipped templates cover them
    for row in made.itertuples():
        assert row.template.startswith("mp-")
        s = Structure.from_str(zf.read(f"round-0001/{row.cif}").decode(), fmt="cif")
        assert reduced_formula(s.composition.reduced_formula) == reduced_formula(row.formula)
        if row.dft_folder:
            base = f"round-0001/{row.dft_folder}/"
            assert {base + x for x in ("vasp/INCAR", "vasp/KPOINTS", "vasp/POSCAR", "qe/pw.in")} <= names
            poscar = Structure.from_str(zf.read(base + "vasp/POSCAR").decode(), fmt="poscar")
            assert poscar.composition.reduced_formula == s.composition.reduced_formula
        else:
            assert row.note.startswith("no DFT inputs: ")
    assert all(n.startswith("round-0001/") and ".." not in n for n in names)

    out = tmp_path / "r2.zip"
    assert main(["campaign", "export-round", str(labelled), "--output", str(out)]) == 0  # the newest round
    assert zipfile.ZipFile(out).read("round-0002/index.csv").decode().count("\n") == 4
    assert capsys.readouterr().err.endswith(f"wrote {out}\n")
    for argv, msg in [(["--round", "3"], "there is no round 3: this campaign has 2 rounds (1 to 2)"),
                      (["--round", "0"], "--round must be an integer >= 1, not 0")]:
        bad = tmp_path / "bad.zip"
        assert main(["campaign", "export-round", str(labelled), "--output", str(bad), *argv]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and not bad.exists()
    assert main(["campaign", "export-round", str(labelled), "--output", str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    with pytest.raises(CampaignError, match="has no rounds yet"):
        round_zip(Campaign.new(None, _cfg(), ["NaCl", "MgO", "GaN"], [5.0, 7.0, 3.2], **models), None)
