"""A RobustBench-style record of one evaluated model, and the leaderboard row it ranks by.

RobustBench (Croce et al. 2021) keeps one ``model_info`` entry per model and threat model:
``dataset``, ``architecture``, ``eps`` (``"8/255"``), ``clean_acc`` and ``autoattack_acc``
(percent, two decimals, as strings), and for corruptions ``corruptions_acc``. A record
here holds those for every threat model and ε the evaluation measured (``robustbench``),
beside what this paper adds: the minimal-perturbation medians and means per norm, the
noise curve, the condition (target, α, seed), the similarity run the target came from
and the versions that measured it; and, when those parts ran, the attacks' soundness
(a verdict per norm with its evidence) and the mechanism measures. Plain mappings in,
plain dicts out: the server reads the runs, this module decides what a record says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ml.evaluate.alignment_inputs import HEADLINES
from ml.evaluate.attacks import NORM_LABELS, NORMS
from ml.evaluate.autoattack import DEFAULT_EPSILONS, THREAT_MODELS
from ml.evaluate.measures import MEASURES, autoattack_rows

SCHEMA = "neuroreg.record/1"

Column = Literal[
    "clean_acc", "autoattack_linf", "autoattack_l2", "corruptions_acc", "noise_acc",
    "median_linf", "median_l2", "median_l1", "median_l0",
    "mean_linf", "mean_l2", "mean_l1", "mean_l0", "alpha", "seed", "evaluation_run",
    "grad_l2_median", "grad_l1_median", "subspace_share_linf", "subspace_share_l2",
    "subspace_share_l1", "subspace_share_l0", "rsa_mix_oracle", "rsa_mix_oracle_normalized",
    "feve_best", "cka_mix_oracle", "percept_v1_adv_l2", "percept_model_adv_l2",
    "percept_specificity_l2"]
"""The leaderboard's sortable columns: a record's scalars (higher is better for every
score: accuracy, and the distance an attack needs; the mechanism's measures — the median
input-gradient norm, the median share of a minimal perturbation's energy in the training
images' top principal components — describe a model and rank neither way; the alignment
part's headline means over scans, :data:`ALIGNMENT_COLUMNS`, rank by likeness to the
brain's representation, higher more alike; the percept part's L2 headline numbers,
:data:`PERCEPT_COLUMNS` — how far the minimal L2 adversarials move the predicted V1
response and the model's deepest tap, and the specificity of the one to the other —
describe a model like the mechanism's and rank neither way: a larger V1 distance is not
a better model, nor is a specificity above or below 1)."""
ALIGNMENT_COLUMNS = ("rsa_mix_oracle", "rsa_mix_oracle_normalized", "feve_best",
                     "cka_mix_oracle")
PERCEPT_SCORES = ("v1_adv", "model_adv", "specificity")
"""The percept part's headline numbers the leaderboard sorts by, at its headline norm, and
a study compares models by (:mod:`ml.evaluate.percept`,
:mod:`ml.evaluate.alignment_summary`)."""
PERCEPT_HEADLINES = ("v1_adv", "v1_rand", "model_adv", "model_rand", "logits_adv",
                     "specificity")
"""Every headline number the percept part records (``<name>_<norm>`` in its ``headline``),
all of which the record keeps."""
PERCEPT_COLUMNS = tuple(f"percept_{k}_l2" for k in PERCEPT_SCORES)
"""The leaderboard's percept columns: the L2 headline numbers (None for an evaluation whose
part ran without L2), each with its sample count ``<column>_n``."""
COLUMNS: tuple[str, ...] = get_args(Column)

CellKind = Literal["run", "text", "alpha", "number", "pct", "autoattack", "corruptions",
                   "network", "study", "soundness"]
"""How a leaderboard cell shows its row's value: ``run`` a run's ``#id`` (a link), ``text``
as is, ``alpha`` α (none for target none), ``number`` to ``digits`` decimals, ``pct`` an
accuracy in percent, ``autoattack`` the same with ``*`` for a reduced (custom)
AutoAttack, ``corruptions`` the same with ``ᵖ`` on the published files, ``network`` the
architecture and dataset, ``study`` the study's ``#id`` (a link), ``soundness`` the
attacks' overall verdict (``sound``, or ``suspect`` with the suspect norms; the warnings
beside it: the row's ``soundness_warnings``)."""


@dataclass(frozen=True)
class LeaderboardColumn:
    """One column a person sees on the leaderboard (the page and ``neuroreg leaderboard``).

    Attributes:
        key: the field of :func:`leaderboard_row` it shows, and sorts by when it is one of
            :data:`COLUMNS`.
        header: what its head says; ``{eps}`` stands for the ε it ranks (``8/255``).
        title: what the header means, in a sentence (the page's hover).
        kind: how a cell shows the value (:data:`CellKind`).
        threat_model: the AutoAttack threat model of an ``autoattack`` column.
        digits: decimals of a ``number`` column.
        page: shown on the page.
        cli: shown in the terminal (which has no room for every column).
        count: the field of the row holding how many samples the value is over (the page
            writes ``n=…`` under it, the terminal beside it where it is fewer than the
            row's most); None for a column that is no measurement.
    """

    key: str
    header: str
    title: str
    kind: CellKind
    threat_model: str | None = None
    digits: int | None = None
    page: bool = True
    cli: bool = True
    count: str | None = None

    @property
    def sortable(self) -> bool:
        """Whether the leaderboard sorts by it: its key is one of :data:`COLUMNS`."""
        return self.key in COLUMNS

    def heading(self, eps_labels: Mapping[str, str]) -> str:
        """The header with the ε of its threat model filled in (``AA L∞ 8/255``)."""
        eps = eps_labels[self.threat_model] if self.threat_model else ""
        return self.header.format(eps=eps)


LEADERBOARD: tuple[LeaderboardColumn, ...] = (
    LeaderboardColumn("evaluation_run", "eval", "the evaluate run", "run"),
    LeaderboardColumn("model_run", "model", "the train run it evaluated", "run"),
    LeaderboardColumn("target", "target", "the representational target the model was "
                      "regularized toward (none: not regularized)", "text"),
    LeaderboardColumn("alpha", "α", "the regularization's weight α", "alpha"),
    LeaderboardColumn("seed", "seed", "the training seed", "number", digits=0),
    LeaderboardColumn("clean_acc", "clean", "accuracy on the clean test split (σ = 0 of the "
                      "noise curve)", "pct", count="clean_acc_n"),
    LeaderboardColumn("autoattack_linf", "AA L∞ {eps}", "AutoAttack robust accuracy, L∞ "
                      "threat model, at this ε", "autoattack", threat_model="linf",
                      count="autoattack_linf_n"),
    LeaderboardColumn("autoattack_l2", "AA L2 {eps}", "AutoAttack robust accuracy, L2 "
                      "threat model, at this ε", "autoattack", threat_model="l2",
                      count="autoattack_l2_n"),
    LeaderboardColumn("soundness", "attacks", "the attacks' soundness check (sound, or "
                      "suspect: a robustness number that may be the attacks' failure, e.g. "
                      "a masked gradient; the warnings on hover)", "soundness",
                      count="soundness_n"),
    LeaderboardColumn("corruptions_acc", "corrupt.", "mean accuracy over CIFAR-10-C's 15 "
                      "corruptions × 5 severities", "corruptions", count="corruptions_n"),
    LeaderboardColumn("median_l2", "median L2", "median minimal L2 perturbation (the "
                      "paper's Fig. 5)", "number", digits=3, count="minimal_n"),
    LeaderboardColumn("median_linf", "median L∞", "median minimal L∞ perturbation",
                      "number", digits=4, count="minimal_n"),
    LeaderboardColumn("grad_l2_median", "‖∇ₓ‖₂", "median L2 norm of the loss's input "
                      "gradient at the clean images (mechanism)", "number", digits=3,
                      count="grad_n"),
    LeaderboardColumn("subspace_share_l2", "PC share L2", "median share of a minimal L2 "
                      "perturbation's energy in the training images' top principal "
                      "components (mechanism; random directions: k/D)", "number", digits=3,
                      count="subspace_share_l2_n"),
    LeaderboardColumn("rsa_mix_oracle", "RSA oracle", "alignment: Pearson r of the γ-mix's "
                      "similarity matrix with the oracle trials' on held-out stimuli (mean "
                      "over scans)", "number", digits=3, page=False),
    LeaderboardColumn("rsa_mix_oracle_normalized", "RSA / ceiling", "the same divided by "
                      "the oracle's noise ceiling", "number", digits=3, page=False),
    LeaderboardColumn("feve_best", "FEVE", "alignment: the best tap's ridge fraction of "
                      "explainable variance explained (mean over scans)", "number", digits=3,
                      page=False),
    LeaderboardColumn("cka_mix_oracle", "CKA oracle", "alignment: linear CKA of the γ-mix "
                      "with the oracle responses (mean over scans)", "number", digits=3,
                      page=False),
    LeaderboardColumn("percept_v1_adv_l2", "V1 D adv L2", "percept: median distance the "
                      "minimal L2 adversarials move the predicted V1 response (mean over "
                      "scans), in units of the median distance between two clean images; "
                      "descriptive, neither direction is better", "number", digits=3,
                      page=False, count="percept_v1_adv_l2_n"),
    LeaderboardColumn("percept_model_adv_l2", "model D adv L2", "percept: the same for the "
                      "model's deepest tap", "number", digits=3, page=False,
                      count="percept_model_adv_l2_n"),
    LeaderboardColumn("percept_specificity_l2", "specificity L2", "percept: median over "
                      "samples of (model adversarial ÷ control distance) ÷ (predicted V1 "
                      "adversarial ÷ control distance) at L2; above 1 the adversarial "
                      "direction is more special to the model than to predicted V1 "
                      "(descriptive, neither direction is better)", "number", digits=3,
                      page=False, count="percept_specificity_l2_n"),
    LeaderboardColumn("architecture", "network · data", "the architecture (and width) and "
                      "the dataset it was trained on", "network"),
    LeaderboardColumn("name", "name", "the model's name", "text", page=False),
    LeaderboardColumn("study", "study", "the study that trained the model", "study",
                      cli=False),
    LeaderboardColumn("owner", "owner", "who ran the evaluation", "text", cli=False),
)
"""The leaderboard's displayed columns, in display order: the one place they are spelled
(the server serves them as the page's layout; the page and the CLI draw from it). The
page adds each row's record download as its last column."""


def eps_label(eps: float) -> str:
    """ε as RobustBench writes it: ``8/255`` when it is k/255 below 1, else the number."""
    k = eps * 255
    if abs(k - round(k)) < 1e-6 and 1 <= round(k) < 255:
        return f"{round(k)}/255"
    return f"{eps:g}"


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{100 * v:.2f}"


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def real_number(v: Any) -> float | None:
    """A real finite number as a float; None for anything else an imported result may
    hold where one belongs (None, NaN, a bool, a string, a container)."""
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _count(v: Any) -> int | None:
    """A sample count: a non-negative int (not a bool); None for anything else."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def model_record(*, evaluation: Mapping[str, Any], model: Mapping[str, Any],
                 similarity: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record of one succeeded evaluation.

    Args:
        evaluation: the evaluate run: ``id``, ``name``, ``owner``, ``finished_at``,
            ``config`` and ``result``.
        model: the train run it evaluated: ``id``, ``name``, ``config``, ``parent_id``
            (its study), ``last_metrics``.
        similarity: the similarity run the model's target came from (``id``, ``config``),
            when it had one.

    Returns:
        A JSON-able dict: the model (architecture, width, dataset, condition, seed, runs),
        ``clean_acc`` (σ = 0 of the noise curve on the whole test split, else the sample
        set's), ``autoattack`` per threat model and ε (robust accuracy overall and after
        each component, samples, version, the samples inconsistent with the minimal
        search), ``corruptions_acc`` and the grid, the minimal-perturbation medians and
        means, the noise curve, ``soundness`` and ``mechanism`` (their key numbers, None
        when the part did not run: :func:`soundness_record`, :func:`mechanism_record`),
        ``alignment`` (its headline means and the similarity run:
        :func:`alignment_record`), ``percept`` (its headline norm and numbers with their
        sample counts: :func:`percept_record`),
        and ``robustbench``: one ``model_info`` entry per threat model and ε, in
        RobustBench's own fields.
    """
    result: Mapping[str, Any] = evaluation.get("result") or {}
    cfg: Mapping[str, Any] = model.get("config") or {}
    clean = MEASURES["clean_accuracy"].read(result)
    clean_n = (result.get("noise") or {}).get("n")
    if clean is None:
        clean = _finite(result.get("clean_accuracy"))
        clean_n = result.get("n") or clean_n
    arch = str(cfg.get("backbone", ""))
    architecture = f"{arch} (width {cfg['width']})" if cfg.get("width") else arch
    rec: dict[str, Any] = {
        "schema": SCHEMA,
        "name": model.get("name") or evaluation.get("name") or f"run {model.get('id')}",
        "evaluation_run": evaluation.get("id"), "model_run": model.get("id"),
        "model_name": model.get("name"), "study": model.get("parent_id"),
        "similarity_run": cfg.get("target_run"), "owner": evaluation.get("owner"),
        "finished_at": evaluation.get("finished_at"),
        "dataset": cfg.get("dataset"), "architecture": architecture, "backbone": arch or None,
        "width": cfg.get("width"), "target": cfg.get("target", "none"),
        "alpha": cfg.get("alpha", 0.0), "seed": cfg.get("seed"),
        "stimulus_norm": cfg.get("stimulus_norm"),
        "test_acc": _finite((model.get("last_metrics") or {}).get("test_acc")),
        "clean_acc": clean, "clean_acc_n": clean_n,
        "parts": list(result.get("parts") or []),
    }
    if similarity is not None:
        scfg = similarity.get("config") or {}
        rec["similarity"] = {"run": similarity.get("id"), "source": scfg.get("source"),
                             "recording": scfg.get("recording"),
                             "name": similarity.get("name")}
    rec["autoattack"] = {}
    for norm in THREAT_MODELS:
        rows = autoattack_rows(result, norm)
        if rows:
            rec["autoattack"][norm] = [{
                "eps": float(r["epsilon"]), "eps_label": eps_label(float(r["epsilon"])),
                "robust_acc": float(r["robust_accuracy"]), "after": dict(r.get("after") or {}),
                "n": r.get("n"), "clean_acc": r.get("clean_accuracy"),
                "version": r.get("version"), "inconsistent": r.get("inconsistent"),
                "over_budget": r.get("over_budget")} for r in rows]
    cor = result.get("corruptions")
    rec["corruptions_acc"] = None if not cor else float(cor["mean_accuracy"])
    rec["corruptions"] = None if not cor else {
        k: cor.get(k) for k in ("names", "severities", "accuracy", "n", "seed",
                                 "clean_accuracy")} | {"source": cor.get("source", "generated")}
    rec["minimal"] = {
        stat: {n: _finite(result.get(f"{stat}_{n}")) for n in NORMS
               if f"{stat}_{n}" in result} for stat in ("median", "mean")}
    rec["minimal"]["unbroken"] = {n: result[f"unbroken_{n}"] for n in NORMS
                                  if f"unbroken_{n}" in result}
    # the medians are over every sample of the set (a misclassified one counts 0)
    rec["minimal"]["n"] = result.get("n") if rec["minimal"]["median"] else None
    rec["noise"] = result.get("noise")
    rec["noise_acc"] = MEASURES["noise_accuracy"].read(result)
    rec["soundness"] = soundness_record(result.get("soundness"))
    rec["mechanism"] = mechanism_record(result.get("mechanism"))
    rec["alignment"] = alignment_record(result.get("alignment"),
                                        (evaluation.get("config") or {}).get("similarity_run"))
    rec["percept"] = percept_record(result.get("percept"))
    rec["versions"] = result.get("versions")
    rec["robustbench"] = _robustbench(rec)
    return rec


def soundness_record(part: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The soundness part's key numbers per norm: the verdict and its warnings, the best
    median and the largest ratio of an attack family's median to it, HopSkipJump's and
    the transfer attacks' medians beside the white-box median on the same samples and
    their counts of smaller perturbations, AutoAttack's inconsistent samples."""
    if not part:
        return None
    norms = {}
    for norm, row in (part.get("norms") or {}).items():
        ag = row.get("agreement") or {}
        entry: dict[str, Any] = {
            "verdict": row.get("verdict"), "warnings": list(row.get("warnings") or []),
            "best_median": ag.get("best_median"), "disagreement": ag.get("disagreement"),
            "autoattack_inconsistent": row.get("autoattack_inconsistent")}
        for key, probe in (("hsja", row.get("decision_based")),
                           ("transfer", row.get("transfer"))):
            probe = probe or {}
            entry[f"{key}_median"] = probe.get("median")
            entry[f"{key}_white_box_median"] = probe.get("white_box_median")
            entry[f"{key}_smaller"] = probe.get("smaller")
            entry[f"{key}_samples"] = probe.get("samples")
        norms[norm] = entry
    return {"samples": part.get("samples"), "reference_run": part.get("reference_run"),
            "transfer_skipped": part.get("transfer_skipped"), "norms": norms}


def alignment_record(part: Mapping[str, Any] | None,
                     similarity_run: int | None) -> dict[str, Any] | None:
    """The alignment part's headline means over scans
    (:data:`ml.evaluate.alignment_inputs.HEADLINES`, None where missing), the similarity
    run whose held-out stimuli it compared the model with, and its scan count; None when
    the part did not run."""
    if not part:
        return None
    mean = part.get("mean") or {}
    return {"similarity_run": similarity_run, "n_scans": part.get("n_scans"),
            "mean": {k: _finite(mean.get(k)) for k in HEADLINES}}


def percept_record(part: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The percept part's headline: its norm (``headline_norm``; L2 unless the part ran
    without it), every headline number at that norm (:data:`PERCEPT_HEADLINES`, keyed
    ``<name>_<norm>`` as the part writes them; None where missing or not a real finite
    number), the samples measured at that norm (``samples``), the deepest tap the model's
    numbers are of (``layer``) and how many samples each of :data:`PERCEPT_SCORES` is a
    median over (``n``: ``v1_adv``, ``model_adv``, ``specificity``; None where the part
    does not say); None when the part did not run."""
    if not part or not isinstance(part, Mapping):
        return None
    norm = part.get("headline_norm")
    norm = norm if isinstance(norm, str) and norm else "l2"
    head = part.get("headline")
    head = head if isinstance(head, Mapping) else {}
    norms = part.get("norms")
    row = norms.get(norm) if isinstance(norms, Mapping) else None
    row = row if isinstance(row, Mapping) else {}
    spec = row.get("specificity")
    spec = spec if isinstance(spec, Mapping) else {}
    readouts = [r for r in row.get("readouts") or [] if isinstance(r, Mapping)] \
        if isinstance(row.get("readouts"), list) else []
    layers = [r.get("name") for r in readouts if r.get("kind") == "layer"]
    layer = spec.get("layer") if isinstance(spec.get("layer"), str) else (
        layers[-1] if layers and isinstance(layers[-1], str) else None)

    def adv_n(name: str | None) -> int | None:
        hit = next((r for r in readouts if name is not None and r.get("name") == name), None)
        adv = None if hit is None else hit.get("adv")
        return _count(adv.get("n")) if isinstance(adv, Mapping) else None

    return {"headline_norm": norm,
            "headline": {f"{k}_{norm}": real_number(head.get(f"{k}_{norm}"))
                         for k in PERCEPT_HEADLINES},
            "samples": _count(row.get("n")), "layer": layer,
            "n": {"v1_adv": adv_n("v1"), "model_adv": adv_n(layer),
                  "specificity": _count(spec.get("n"))}}


def mechanism_record(part: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The mechanism part's key numbers: the input-gradient norms' medians and means (over
    ``grad_n`` samples), the subspace shares' medians per norm (each over the broken,
    correctly classified samples: ``subspace_share_n``) beside random directions', each
    tap's r."""
    if not part:
        return None
    grad = part.get("input_gradient") or {}
    sub = part.get("subspace") or {}
    layers = part.get("layers") or {}
    return {
        "samples": part.get("samples"),
        **{f"grad_{n}_{stat}": (grad.get(n) or {}).get(stat)
           for n in ("l2", "l1") for stat in ("median", "mean")},
        "grad_n": (grad.get("l2") or {}).get("n"),
        "subspace_k": sub.get("k"), "subspace_dim": sub.get("dim"),
        "subspace_share": {n: r.get("median") for n, r in (sub.get("norms") or {}).items()},
        "subspace_share_n": {n: r.get("n") for n, r in (sub.get("norms") or {}).items()},
        "subspace_share_random": (sub.get("random") or {}).get("median"),
        "subspace_expected_random": sub.get("expected_random"),
        "subspace_skipped": sub.get("skipped"),
        "tap_layers": layers.get("layers"), "tap_r": layers.get("r"),
        "tap_r_mix": layers.get("r_mix"), "tap_source": layers.get("source"),
        "tap_skipped": part.get("layers_skipped")}


def _robustbench(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RobustBench ``model_info`` entries: one per threat model and ε, and one for
    corruptions; ``unreliable`` marks a reduced (custom) AutoAttack."""
    base = {"name": rec["name"], "dataset": rec["dataset"],
            "architecture": rec["architecture"], "additional_data": False,
            "number_forward_passes": 1, "clean_acc": _pct(rec["clean_acc"])}
    out = []
    for norm, rows in rec["autoattack"].items():
        for r in rows:
            out.append({**base, "threat_model": THREAT_MODELS[norm], "eps": r["eps_label"],
                        "autoattack_acc": _pct(r["robust_acc"]), "n_examples": r["n"],
                        "unreliable": r["version"] != "standard"})
    if rec["corruptions_acc"] is not None:
        out.append({**base, "threat_model": "corruptions",
                    "corruptions_acc": _pct(rec["corruptions_acc"]),
                    "n_examples": (rec["corruptions"] or {}).get("n"),
                    # RobustBench scores the published files; generated ones are ours
                    "corruptions_source": (rec["corruptions"] or {}).get("source")})
    return out


def leaderboard_row(rec: Mapping[str, Any], eps: Mapping[str, float] | None = None
                    ) -> dict[str, Any]:
    """The scalar columns of a record: AutoAttack accuracy at ``eps`` per threat model
    (default the standard 8/255 and 0.5; None when the evaluation did not measure that ε),
    corruption and clean accuracy, the medians and means per norm, the condition; the
    attacks' soundness (``soundness``: ``suspect`` when any norm is, else ``sound``; the
    suspect norms and every warning) and the mechanism's medians (input-gradient norms,
    subspace share per norm), None when that part did not run; the alignment part's
    headline means and the percept part's L2 headline numbers (:data:`PERCEPT_COLUMNS`,
    None when it did not run or its headline norm is not L2); and beside each measured
    number how many samples it is over (``…_n``)."""
    eps = {**{n: v[0] for n, v in DEFAULT_EPSILONS.items()}, **(eps or {})}
    row: dict[str, Any] = {k: rec.get(k) for k in (
        "evaluation_run", "model_run", "name", "owner", "study", "similarity_run",
        "dataset", "architecture", "target", "alpha", "seed", "clean_acc", "clean_acc_n",
        "corruptions_acc", "noise_acc", "finished_at")}
    for norm in THREAT_MODELS:
        hit = next((r for r in rec["autoattack"].get(norm, [])
                    if math.isclose(r["eps"], eps[norm], rel_tol=1e-6)), None)
        row[f"autoattack_{norm}"] = None if hit is None else hit["robust_acc"]
        row[f"autoattack_{norm}_version"] = None if hit is None else hit["version"]
        row[f"autoattack_{norm}_n"] = None if hit is None else hit["n"]
    row["corruptions_source"] = (rec["corruptions"] or {}).get("source")
    row["corruptions_n"] = (rec["corruptions"] or {}).get("n")
    for stat in ("median", "mean"):
        for n in NORMS:
            row[f"{stat}_{n}"] = rec["minimal"][stat].get(n)
    row["minimal_n"] = rec["minimal"].get("n")
    sd: Mapping[str, Any] = rec.get("soundness") or {}
    verdicts = {n: v.get("verdict") for n, v in (sd.get("norms") or {}).items()}
    suspect = [NORM_LABELS.get(n, n) for n, v in verdicts.items() if v == "suspect"]
    row["soundness"] = ("suspect" if suspect else "sound" if verdicts and all(
        v == "sound" for v in verdicts.values()) else None)
    row["soundness_suspect"] = suspect
    row["soundness_warnings"] = [w for v in (sd.get("norms") or {}).values()
                                 for w in v.get("warnings") or []]
    row["soundness_n"] = sd.get("samples") if verdicts else None
    mech: Mapping[str, Any] = rec.get("mechanism") or {}
    for n in ("l2", "l1"):
        row[f"grad_{n}_median"] = mech.get(f"grad_{n}_median")
    row["grad_n"] = mech.get("grad_n")
    for n in NORMS:
        row[f"subspace_share_{n}"] = (mech.get("subspace_share") or {}).get(n)
        row[f"subspace_share_{n}_n"] = (mech.get("subspace_share_n") or {}).get(n)
    row["subspace_share_random"] = mech.get("subspace_share_random")
    al: Mapping[str, Any] = (rec.get("alignment") or {}).get("mean") or {}
    for k in ALIGNMENT_COLUMNS:
        row[k] = al.get(k)
    pc: Mapping[str, Any] = rec.get("percept") or {}
    l2 = pc.get("headline_norm") == "l2"
    for k in PERCEPT_SCORES:
        row[f"percept_{k}_l2"] = (pc.get("headline") or {}).get(f"{k}_l2") if l2 else None
        row[f"percept_{k}_l2_n"] = (pc.get("n") or {}).get(k) if l2 else None
    return row


def scores(rec: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """What the leaderboard sorts a record by, as ``(column, ε, value)``: one per
    AutoAttack threat model and ε measured (``autoattack_linf``, ``autoattack_l2``; the
    first of two ε equal to a relative 1e-6, as :func:`leaderboard_row` takes it), one per
    other column of :data:`COLUMNS` the record has a finite number for, at ε = 0."""
    out: list[tuple[str, float, float]] = []
    for norm in THREAT_MODELS:
        seen: list[float] = []
        for r in rec["autoattack"].get(norm, []):
            eps, value = float(r["eps"]), _finite(r["robust_acc"])
            if value is not None and not any(math.isclose(eps, e, rel_tol=1e-6) for e in seen):
                out.append((f"autoattack_{norm}", eps, value))
            seen.append(eps)
    row = leaderboard_row(rec)
    for column in COLUMNS:
        v = row.get(column)
        if column.startswith("autoattack_") or isinstance(v, bool) \
                or not isinstance(v, int | float) or not math.isfinite(v):
            continue
        out.append((column, 0.0, float(v)))
    return out
