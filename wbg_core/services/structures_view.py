"""The structures page's provenance of a template candidate after a relaxation, and
the one-line summary of it."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from .inputs import plural

_STABILITY_NOTES = ("not relaxed", "no formation energy", "no energy above the hull", "relaxation stopped",
                    "no CHGNet", "no SevenNet", "energies not computed")


def relaxed_provenance(provenance: dict, structure, stability, potential) -> dict:
    """The provenance of a template candidate after a relaxation with `potential` (wbg_core.structures.stability
    .assess): its energies, hull distance, the compound rule's verdict, the step count and
    convergence, the relaxed cell's space group; the template's notes kept, the old energy notes
    replaced by the relaxation's."""
    stab = stability.to_dict()
    new = {**provenance, **{k: stab[k] for k in ("energy_per_atom", "formation_energy_per_atom", "e_above_hull",
                                                 "decomposition", "passes_paper_rule", "charge_neutral",
                                                 "compound_valid") if k in stab}}
    new.update(potential=potential.name, potential_label=potential.label)
    new.update(relaxed=True, relax_steps=stability.relax_steps, relax_converged=stability.relax_converged,
               relax_seconds=stability.relax_seconds, n_sites=len(structure))
    try:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        sga = SpacegroupAnalyzer(structure, symprec=0.1)
        new.update(spacegroup=sga.get_space_group_number(), spacegroup_symbol=sga.get_space_group_symbol())
    except Exception:  # spglib finds nothing: the template's symmetry no longer holds
        new.update(spacegroup=None, spacegroup_symbol=None)
    old = [w for w in provenance.get("warnings", [])
           if not w.startswith(_STABILITY_NOTES) and "is not charge-balanced" not in w]
    new["warnings"] = list(dict.fromkeys(old + list(stability.warnings)))
    return new


def relax_summary(provenance: dict) -> str:
    """'relaxed with CHGNet 0.3.0: 57 steps, converged, 12.3 s' or 'template geometry, not relaxed'."""
    if not provenance.get("relaxed"):
        return "template geometry, not relaxed"
    steps, conv, secs = (provenance.get(k) for k in ("relax_steps", "relax_converged", "relax_seconds"))
    parts = [plural(int(steps), "step") if steps is not None else None,
             None if conv is None else ("converged" if conv else "not converged"),
             f"{secs:.1f} s" if secs is not None else None]
    return f"relaxed with {provenance.get('potential_label') or 'CHGNet 0.3.0'}: " + ", ".join(p for p in parts if p)


@lru_cache(maxsize=8)
def _json_at(path: str, mtime_ns: int):
    """A result file's JSON, parsed once per version (a ranked page reruns on every widget change)."""
    import json

    return json.loads(Path(path).read_text())


def _read_result(path: Path):
    return _json_at(str(path), path.stat().st_mtime_ns)


def ranking_evidence(results_file=None, tuning_file=None) -> str | None:
    """What `wbg bench structure_validation` (and, when run, `structure_tuning`) measured for the
    template order and for ranking by energy, in one line for the page (None before the benchmark
    was run): a scientist should know which first guess is the better one, and how sure that is."""
    results = Path(__file__).resolve().parents[2] / "bench" / "results"
    path = Path(results_file) if results_file else results / "structure_validation.json"
    try:
        res = _read_result(path)
        n = int(res["n"])
        ranked = {k: v for k, v in res["potentials"].items() if "match_top1_energy_ranked" in v}
        name, r = next(iter(ranked.items()))
        emd = r["match_top1_emd_relaxed"]
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
    from ..structures.potentials import potential_label

    label = potential_label(name)
    vote = res.get("vote") if isinstance(res.get("vote"), dict) else None
    if vote:  # the app's order before relaxation
        order, prior = f"the prototype vote of the {vote['neighbours']} nearest templates", vote["match_top1_vote"]
        ties = "the vote"
    else:
        order, prior, ties = "the nearest-EMD template", emd, "the nearer EMD"
    k = max(int(key.removeprefix("match_any_of_").removesuffix("_relaxed"))
            for key in r if key.startswith("match_any_of_"))
    rule, tol = r.get("match_top1_tolerance"), r.get("energy_tolerance") or 0.0
    if rule is not None and tol > 0:
        first = (f"the app's energy ranking ({label} energy, ties within {tol:g} eV/atom to {ties}) put the real "
                 f"structure first for {rule:.1%}, energy alone for {r['match_top1_energy_ranked']:.1%}")
    else:
        rule = r["match_top1_energy_ranked"]
        first = f"the lowest-energy template ({label}) matched the real structure for {rule:.1%}"
    line = (f"On {n} Materials Project ground states held out of the templates, {first}; {order} for {prior:.1%}"
            + (f", the nearest-EMD one alone for {emd:.1%}" if vote else "")
            + f"; one of the {k} nearest for {r[f'match_any_of_{k}_relaxed']:.1%} (`wbg bench structure_validation`).")
    try:
        tune = _read_result(Path(tuning_file or results / "structure_tuning.json"))
        t = tune["potentials"][name]
        t_energy, t_prior = t["sweep"][str(float(tol))], t["top1_vote"] if vote else t["top1_emd"]
        disagree = (t_energy > t_prior) != (rule > prior)
        line += (f" On {int(tune['n'])} other ground states: {t_energy:.1%} against {t_prior:.1%}"
                 + (", the other way round" if disagree else "") + ".")
        if disagree:
            return line + " Neither order is reliably the better first guess: relax and compare the top few."
    except (OSError, ValueError, KeyError, TypeError):
        pass
    second = "the vote" if vote else "the EMD rank"
    return line + (" The ranking is the better first guess there; the energies are still a potential's, not DFT's."
                   if rule > prior else f" Read the energies as a second opinion on {second}, not a verdict.")


CLOSE_VOTE = 0.10  # shares closer than this are called close: a few templates' weights apart


def close_vote_note(provenances: list[dict]) -> str | None:
    """A line for the page when the two leading structure types' shares of the vote are within
    CLOSE_VOTE of each other (None otherwise): the first guess is then nearly a coin toss, and
    relaxing both says more."""
    by_rank = {p.get("vote_rank"): p for p in provenances if p.get("vote_share") is not None}
    a, b = by_rank.get(1), by_rank.get(2)  # vote ranks 1 and 2 lead the two heaviest types, if there are two
    if a is None or b is None or a.get("prototype_of") == b.get("prototype_of") \
            or a["vote_share"] - b["vote_share"] >= CLOSE_VOTE:
        return None
    return (f"The vote is close: {a['vote_share']:.0%} for the structure of {a['template_formula']} "
            f"({a['template_id']}), {b['vote_share']:.0%} for that of {b['template_formula']} ({b['template_id']}). "
            "Relax and rank them to compare their energies.")
