"""CI's second pass (.ci/kernels.py): it gives each library the other processor's kernels and
refuses to run the numerical tests when one of them did not change."""

from __future__ import annotations

import ctypes
import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "kernels.py"
x86_with_cc = pytest.mark.skipif(
    platform.machine() != "x86_64" or shutil.which("cc") is None,
    reason="the kernel variables and the MKL shim are x86's, built with cc")


def _kernels():  # .ci is not a package: load the script as a module
    spec = importlib.util.spec_from_file_location("ci_kernels", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cpuinfo(vendor: str, *flags: str) -> str:
    return f"vendor_id\t: {vendor}\nflags\t\t: fpu sse4_2 avx avx2 fma {' '.join(flags)}\n"


AVX512 = ("avx512f", "avx512bw", "avx512vl", "avx512dq")


@x86_with_cc
@pytest.mark.parametrize(("vendor", "mkl_intel"), [("AuthenticAMD", 1), ("GenuineIntel", 0)])
def test_each_library_is_given_the_other_family(tmp_path: Path, vendor: str, mkl_intel: int):
    k = _kernels()
    wide = {"ATen": ["AVX512", ""], "oneDNN": ["jit:avx512_core", ""],
            "OpenBLAS": ["SkylakeX", ""], "MKL": ["", ""]}
    env = k.other_env(wide, tmp_path, _cpuinfo(vendor, *AVX512))
    assert (env["ATEN_CPU_CAPABILITY"], env["ONEDNN_MAX_CPU_ISA"], env["OPENBLAS_CORETYPE"]) \
        == ("avx2", "AVX2", "Haswell")
    # MKL dispatches by vendor: an AMD machine gets Intel's kernels, an Intel one AMD's
    shim = ctypes.CDLL(env["LD_PRELOAD"].split()[-1])
    assert shim.mkl_serv_intel_cpu_true() == mkl_intel
    assert shim.mkl_serv_cpuiszen() == 1 - mkl_intel

    narrow = {"ATen": ["AVX2", ""], "oneDNN": ["jit:avx2", ""],
              "OpenBLAS": ["Haswell", ""], "MKL": ["", ""]}
    up = k.other_env(narrow, tmp_path, _cpuinfo(vendor, *AVX512))  # AVX-512 left unused
    assert (up["ATEN_CPU_CAPABILITY"], up["ONEDNN_MAX_CPU_ISA"], up["OPENBLAS_CORETYPE"]) \
        == ("avx512", "AVX512_CORE", "SkylakeX")
    down = k.other_env(narrow, tmp_path, _cpuinfo(vendor))  # no AVX-512 to go to
    assert (down["ATEN_CPU_CAPABILITY"], down["ONEDNN_MAX_CPU_ISA"],
            down["OPENBLAS_CORETYPE"]) == ("default", "SSE41", "SandyBridge")


def test_a_library_whose_kernels_did_not_change_stops_the_pass(tmp_path, monkeypatch):
    k = _kernels()
    same = {"ATen": ["AVX512", "aa"], "oneDNN": ["jit:avx512_core", "bb"],
            "MKL": ["AVX-512 (cpu_detect 7)", "cc"], "OpenBLAS": ["SkylakeX", "dd"]}
    changed = {**same, "ATen": ["AVX2", "ab"], "oneDNN": ["jit:avx2", "bc"],
               "OpenBLAS": ["Haswell", "de"], "MKL": ["AVX-512 (cpu_detect 7)", "cd"]}
    readings = iter([same, changed])
    monkeypatch.setattr(k, "read", lambda env: next(readings))
    monkeypatch.setattr(k, "other_env", lambda native, build: {"LD_PRELOAD": "x"})
    monkeypatch.setattr(sys, "argv", ["kernels.py", "other", str(tmp_path)])
    with pytest.raises(SystemExit, match=r"unchanged under .*: MKL \(its kernels\)$"):
        k.main()


@x86_with_cc
def test_on_this_machine_every_library_really_changes(tmp_path: Path):
    out = subprocess.run([sys.executable, str(SCRIPT), "other", str(tmp_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    env = dict(line.split("=", 1) for line in out.stdout.splitlines())
    assert {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE", "LD_PRELOAD",
            "OMP_NUM_THREADS"} <= env.keys()
    table = out.stderr.splitlines()
    assert [row.split()[0] for row in table[1:]] == ["ATen", "oneDNN", "MKL", "OpenBLAS"]
