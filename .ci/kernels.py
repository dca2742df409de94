"""The CPU kernels this machine's floats come from, and the environment that gives the other
processor's: CI's second pass (.ci/run) runs the numerical tests under it.

    python .ci/kernels.py other DIR

reads which kernels each library runs here, chooses the other family for each, builds
DIR/libmkl_vendor.so where MKL needs it, reads them again under the new environment, and exits
1 unless every library's kernels really changed — by the library's own report *and* by the
bits of a computation that library does (one thread in both readings, so that the thread
count cannot be what changed them). It prints the environment on stdout, one NAME=value a
line, and a table of what it read on stderr.

The other family, library by library (the pairs of machines CI runs on are Intel and AMD
processors, with AVX-512 or AVX2):

- ATen, torch's own vectorized ops (softmax, reductions along rows…), and oneDNN, torch's
  convolutions, dispatch by instruction set: AVX-512 here → AVX2; AVX2 → AVX-512 where the
  processor has it (ATen and oneDNN take it by themselves, so in practice: AVX2 → SSE).
- MKL, torch's float32 matmul, dispatches by vendor first: on AMD it runs a Zen path whatever
  the instruction set (issue 32: Eq. 9's gradient passed on Intel and failed on AMD by
  8.9e-8), and no variable of MKL's crosses that line. mkl_vendor.c, preloaded, makes it run
  Intel's kernels on AMD and AMD's on Intel.
- OpenBLAS, numpy's and scipy's: AVX-512 (SkylakeX, Cooperlake, SapphireRapids) → Haswell
  (the kernels OpenBLAS's Zen target also runs); AVX2 → SkylakeX where the processor has
  AVX-512, else SandyBridge.
- Threads: as many as the machine has (the native pass, under pytest-xdist, runs one per
  process: tests/conftest.py), waiting passively, as the second pass runs under xdist too:
  every parallel reduction blocked another way.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_ALL = str(max(2, os.cpu_count() or 2))
ALL_THREADS = {"OMP_NUM_THREADS": _ALL, "OPENBLAS_NUM_THREADS": _ALL, "MKL_NUM_THREADS": _ALL,
               "OMP_WAIT_POLICY": "PASSIVE"}
"""The second pass's threads: the other count than the native pass's one per process."""
_AVX512_OPENBLAS = {"SkylakeX", "Cooperlake", "SapphireRapids"}


def probe() -> None:
    """In a fresh process: the kernels each library runs and the bits of one computation each."""
    import ctypes
    import hashlib

    import numpy as np
    import threadpoolctl
    import torch

    torch.set_num_threads(1)

    def bits(a) -> str:
        return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()[:12]

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(300, 700, generator=g), torch.randn(700, 200, generator=g)
    x, w = torch.randn(4, 32, 24, 24, generator=g), torch.randn(32, 32, 3, 3, generator=g)
    v = torch.randn(256, 4096, generator=g)
    sys.stdout.flush()  # the libraries' verbose lines go to the same stdout, from C
    with threadpoolctl.threadpool_limits(1):
        with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
            mm = a @ b
        with torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
            conv = torch.nn.functional.conv2d(x, w)
        soft = torch.softmax(v, 1)
        npmm = a.numpy() @ b.numpy()
        blas = sorted({i.get("architecture") or "?" for i in threadpoolctl.threadpool_info()
                       if i["internal_api"] == "openblas"})
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    print("KERNELS " + json.dumps({
        "aten": [torch.backends.cpu.get_cpu_capability(), bits(soft)],
        "mkl_detect": lib.mkl_serv_cpu_detect(),
        "mkl": bits(mm),
        "onednn": bits(conv),
        "openblas": [" ".join(blas), bits(npmm)],
    }), flush=True)


def read(env: dict[str, str]) -> dict[str, list[str]]:
    """library → [its kernels, the bits of its computation], in a process under ``env``."""
    out = subprocess.run([sys.executable, __file__, "probe"], env={**env, **ONE_THREAD},
                         capture_output=True, text=True, check=True).stdout
    found = json.loads(next(ln[8:] for ln in out.splitlines() if ln.startswith("KERNELS ")))
    mkl = re.search(r"MKL_VERBOSE oneMKL .* for Intel\(R\) 64 architecture (.+?), Lnx", out)
    conv = re.search(r"onednn_verbose,[^\n]*,exec,cpu,convolution,([^,]+),", out)
    if not (mkl and conv):  # the matmul or the convolution did not run where we look
        sys.exit(f"kernels: no MKL SGEMM or oneDNN convolution in torch's verbose output:\n{out}")
    return {
        "ATen": found["aten"],
        "oneDNN": [conv.group(1), found["onednn"]],
        "MKL": [f"{_isa(mkl.group(1))} (cpu_detect {found['mkl_detect']})", found["mkl"]],
        "OpenBLAS": found["openblas"],
    }


def _isa(label: str) -> str:
    """MKL_VERBOSE's processor line, short: "AVX-512", "AVX2"…, or its path for other vendors."""
    isa = re.search(r"\(Intel\(R\) ([^)]+)\)", label)
    if isa:
        return isa.group(1)
    return "non-Intel path" if "Architecture processors" in label else label


def other_env(native: dict[str, list[str]], build: Path,
              cpuinfo: str | None = None) -> dict[str, str]:
    """The variables that give each library the other family of kernels than ``native``;
    builds the MKL shim into ``build``. ``cpuinfo``: /proc/cpuinfo's text (tests pass others)."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if cpuinfo is None else cpuinfo
    flags = set(re.findall(r"^flags\s*:(.*)$", cpuinfo, re.M)[0].split())
    avx512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags
    intel = "GenuineIntel" in cpuinfo
    env: dict[str, str] = {}
    aten = native["ATen"][0]
    env["ATEN_CPU_CAPABILITY"] = ("avx2" if aten == "AVX512"
                                  else "avx512" if aten == "AVX2" and avx512 else "default")
    conv = native["oneDNN"][0]
    env["ONEDNN_MAX_CPU_ISA"] = ("AVX2" if "avx512" in conv
                                 else "AVX512_CORE" if "avx2" in conv and avx512 else "SSE41")
    blas = set(native["OpenBLAS"][0].split())
    env["OPENBLAS_CORETYPE"] = ("Haswell" if blas & _AVX512_OPENBLAS
                                else "SkylakeX" if avx512 else "SandyBridge")
    shim = mkl_shim(build, as_intel=not intel)
    env["LD_PRELOAD"] = " ".join(p for p in (os.environ.get("LD_PRELOAD", ""), str(shim)) if p)
    return env


def mkl_shim(build: Path, *, as_intel: bool) -> Path:
    """Compiles mkl_vendor.c into ``build``: MKL runs Intel's kernels (``as_intel``) or AMD's."""
    build.mkdir(parents=True, exist_ok=True)
    shim = build / "libmkl_vendor.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", f"-DINTEL={int(as_intel)}",
                    "-o", str(shim), str(HERE / "mkl_vendor.c")], check=True)
    return shim


def main() -> None:
    if sys.argv[1:] == ["probe"]:
        return probe()
    if len(sys.argv) != 3 or sys.argv[1] != "other":
        sys.exit(__doc__)
    native = read(dict(os.environ))
    env = other_env(native, Path(sys.argv[2]))
    other = read({**os.environ, **env})
    print(f"{'':9} {'native kernels':32} {'bits':12}   {'other kernels':32} bits", file=sys.stderr)
    same = []
    for lib, (k0, b0) in native.items():
        k1, b1 = other[lib]
        print(f"{lib:9} {k0:32} {b0:12}   {k1:32} {b1}", file=sys.stderr)
        if k0 == k1 or b0 == b1:
            same.append(f"{lib} ({'its kernels' if k0 == k1 else 'the bits of its result'})")
    if same:
        sys.exit("kernels: unchanged under " + " ".join(f"{k}={v}" for k, v in env.items())
                 + ": " + ", ".join(same))
    for k, v in {**env, **ALL_THREADS}.items():
        print(f"{k}={v}")


if __name__ == "__main__":
    main()
