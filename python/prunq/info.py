"""What this installation of prunq can run: `prunq info`."""

from __future__ import annotations

import platform

import torch

from . import __version__, _native
from ._backend import triton_usable


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (with family and model on x86 Linux)."""
    try:
        fields = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines()
                      if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name", platform.processor() or platform.machine())
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    return name


def report() -> list[tuple[str, str]]:
    rows = [("prunq", __version__), ("torch", torch.__version__),
            ("python", platform.python_version()), ("machine", platform.machine())]
    for name, module in (("_C", _native.C), ("_cuda", _native.CUDA)):
        rows.append((f"prunq.{name}", "loaded" if module is not None else f"missing: {_native.load_error(name)}"))
    rows.append(("cpu", cpu_model()))
    if _native.C is not None:
        rows.append(("cpu path", f"{_native.C.active_isa()} (best here: {_native.C.best_isa()})"))
        rows.append(("cpu features", " ".join(_native.C.cpu_features()) or "none of interest"))
        rows.append(("int8 gemm", f"{_native.C.packed_gemm_instruction()} (on weights packed by Int8Linear)"))
    rows.append(("cpu threads", str(torch.get_num_threads())))
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"cuda:{i}", f"{p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB"))
    else:
        rows.append(("cuda devices", "none"))
    ok, why = triton_usable()
    rows.append(("triton", ("usable: " if ok else "not usable: ") + why))
    return rows


def print_report() -> None:
    rows = report()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
