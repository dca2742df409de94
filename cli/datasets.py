"""``neuroreg datasets``: the CIFAR archives train runs read, listed or downloaded."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service's settings: imported when the command runs
    from core.settings import Settings

BUILT_IN = {
    "digits32": "scikit-learn's 8×8 digits at 32×32; a smoke test, low-band and saturated",
    "leaves32": "generated dead-leaves scenes, 10 shape classes under occlusion; full-band, "
                "the benchmark's task",
    "photodigits32": "digits32 on photo patches; a measured candidate, not full-band",
}
"""The datasets that need no download (ml/data/registry.py), as ``datasets list`` says."""


def cmd_datasets(args: argparse.Namespace, settings: Settings) -> int:
    from ml.data.cifar import ARCHIVES, download, locate

    root = settings.datasets
    names = args.names or sorted(ARCHIVES)
    if unknown := sorted(set(names) - set(ARCHIVES)):
        print(f"error: unknown dataset {unknown}; known: {sorted(ARCHIVES)}", file=sys.stderr)
        return 2
    if args.action == "download":
        for name in names:
            try:
                print(f"{name}: {download(root, name)} (MD5 verified)")
            except (OSError, ValueError) as exc:  # URLError is an OSError
                print(f"error: could not download {name} into {root}: {exc}",
                      file=sys.stderr)
                return 1
        return 0
    print(f"datasets in {root} (train runs name them as config.dataset):")
    for name, what in BUILT_IN.items():
        print(f"  {name:<14}built in ({what})")
    for name in ("cifar10", "cifar100"):
        where = locate(root, name)
        print(f"  {name:<14}{where if where else 'missing: neuroreg datasets download ' + name}")
    return 0
