"""``neuroreg alignment RUN``: how brain-like a model is (the ``alignment`` evaluate part,
docs/alignment.md) — an evaluation's scores per scan and their mean, and the ``percept``
part's headline when it ran (the predictor in the loop), or, for a train run, a new
evaluation of it against a similarity run's held-out stimuli."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli.commands import UsageError, client
from neuroreg.settings import ClientSettings

LABELS = {
    "rsa_mix_oracle": "RSA mix~oracle", "rsa_mix_oracle_normalized": "÷ceiling",
    "rsa_mix_target": "RSA mix~target", "rsa_mix_true": "RSA mix~true",
    "rsa_best_oracle": "RSA best tap~oracle", "cka_mix_oracle": "CKA mix~oracle",
    "feve_best": "FEVE best tap", "r2_best": "R² best tap",
}


def add_parser(sub: Any) -> None:
    al = sub.add_parser("alignment", help="how brain-like a model is: an evaluation's RSA, "
                        "CKA and FEVE per scan, or (a train run and --similarity) a new "
                        "evaluation that measures them")
    al.add_argument("run", type=int, help="an evaluate run that ran the alignment part, or "
                    "a train run to evaluate")
    al.add_argument("--similarity", type=int, help="for a train run: the similarity run "
                    "whose held-out (oracle) stimuli and neurons to compare with")
    al.add_argument("--replicates", type=int, help="bootstrap replicates (default 200)")
    al.add_argument("--folds", type=int, help="the ridge readout's folds (default 5)")
    al.add_argument("--seed", type=int, help="the bootstrap's and folds' seed (default 0)")
    al.add_argument("--wait", action="store_true", help="for a train run: wait for the "
                    "evaluation and print its scores")
    al.add_argument("--json", action="store_true", help="the evaluation's alignment block "
                    "as JSON ({alignment, percept} when the percept part ran)")
    al.set_defaults(func=cmd_alignment)


def cmd_alignment(args: argparse.Namespace, settings: ClientSettings) -> int:
    with client(settings) as nr:
        run = nr.run(args.run)
        if run["kind"] == "train":
            if args.similarity is None:
                raise UsageError(f"run {args.run} is a train run: name the similarity run "
                                 "to compare it with (--similarity ID)")
            config: dict[str, Any] = {"train_run": args.run, "parts": ["alignment"],
                                      "similarity_run": args.similarity}
            for name in ("replicates", "folds", "seed"):
                if getattr(args, name) is not None:
                    config[f"alignment_{name}"] = getattr(args, name)
            made = nr.submit("evaluate", config,
                             name=f"alignment of {args.run} with {args.similarity}")
            print(f"evaluate run {made['id']} queued: the alignment of train run {args.run} "
                  f"with similarity run {args.similarity}")
            if not args.wait:
                print(f"its scores, when it has finished: neuroreg alignment {made['id']}")
                return 0
            run = nr.wait(made["id"])
        elif args.similarity is not None or args.wait:
            raise UsageError(f"run {args.run} is a {run['kind']} run; --similarity and --wait "
                             "are for a train run")
        if run["kind"] != "evaluate":
            raise UsageError(f"run {args.run} is a {run['kind']} run: name an evaluate run "
                             "with the alignment part, or a train run and --similarity")
        block = (run.get("result") or {}).get("alignment")
        percept = (run.get("result") or {}).get("percept")
        if run["status"] != "succeeded" or (block is None and percept is None):
            raise UsageError(_why_none(run))
    if args.json:
        print(json.dumps(block if percept is None else {"alignment": block, "percept": percept},
                         indent=1))
        return 0
    if block is not None:
        print(table(run["id"], block))
    if percept is not None:
        print(percept_table(run["id"], percept))
    return 0


def _why_none(run: dict[str, Any]) -> str:
    if run["status"] != "succeeded":
        return (f"evaluate run {run['id']} is {run['status']}"
                + (f": {run['error'].strip().splitlines()[-1]}" if run.get("error") else "")
                + ("" if run["status"] in ("failed", "cancelled") else
                   "; its scores come when it has finished"))
    parts = (run.get("config") or {}).get("parts") or []
    return (f"evaluate run {run['id']} did not run the alignment part (its parts: "
            f"{', '.join(parts) or 'none'}); measure it with `neuroreg alignment "
            f"{run.get('input_run_id') or 'TRAIN_RUN'} --similarity ID`")


def percept_table(run_id: int, block: dict[str, Any]) -> str:
    """The percept part's headline: how far the minimal adversarials and their permuted
    control move predicted V1, the model's deepest tap and its logits, and the
    specificity."""
    norm = block.get("headline_norm", "l2")
    head = block.get("headline") or {}
    row = (block.get("norms") or {}).get(norm) or {}
    spec = row.get("specificity") or {}
    deepest = spec.get("layer") or ((block.get("layers") or ["deepest tap"])[-1])
    rows = [("predicted V1 (mean of scans)", head.get(f"v1_adv_{norm}"),
             head.get(f"v1_rand_{norm}")),
            (f"{deepest} (deepest tap)", head.get(f"model_adv_{norm}"),
             head.get(f"model_rand_{norm}")),
            ("logits", head.get(f"logits_adv_{norm}"), next(
                (r["rand"]["median"] for r in row.get("readouts") or []
                 if r.get("name") == "logits"), None))]
    width = max(len(r[0]) for r in rows)
    lines = [f"evaluate run {run_id}: the predictor in the loop ({norm}, "
             f"{row.get('n', 0)} samples; {block.get('source', 'the similarity run')}'s "
             "predictor); D ÷ the median distance between two clean images",
             f"{'readout'.ljust(width)}  {'adversarial':>11}  {'control':>9}"]
    lines += [f"{name.ljust(width)}  {_cell(a):>11}  {_cell(r):>9}" for name, a, r in rows]
    lines.append(f"specificity {_cell(head.get(f'specificity_{norm}'))} (median over samples "
                 "of the tap's adversarial/control ratio ÷ predicted V1's; above 1 the "
                 "adversarial direction is more special to the model than to predicted V1); "
                 f"the control's L2 after clipping: {_cell(row.get('clip_ratio'))} of the "
                 "adversarial's. Every readout, norm and interval: --json")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(run_id: int, block: dict[str, Any]) -> str:
    """The headline scores per scan and their mean, with what they were computed on."""
    names = list(block.get("mean") or {})
    rows = [(scan, res.get("headline") or {}) for scan, res in block.get("scans", {}).items()]
    rows.append(("mean", block.get("mean") or {}))
    heads = ["scan"] + [LABELS.get(n, n) for n in names]
    cells = [[str(scan)] + [_cell(h.get(n)) for n in names] for scan, h in rows]
    widths = [max(len(r[k]) for r in [heads, *cells]) for k in range(len(heads))]
    lines = [f"evaluate run {run_id}: alignment on {block.get('n_scans', len(rows) - 1)} "
             f"scan(s) of {block.get('source', 'the similarity run')}; γ "
             f"{block.get('gamma_source', '')}",
             "  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    if block.get("message"):
        lines.append(f"note: {block['message']}")
    lines.append("RSA: Pearson r of S_CNN (Eq. 10's γ-mix, or the best tap) with the "
                 "reference on held-out stimuli; ÷ceiling: by the repeats' noise ceiling. "
                 "Intervals, Spearman and each tap: --json")
    return "\n".join(lines)
