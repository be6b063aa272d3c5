"""The `prunq` command, and importing prunq when a native module is missing."""

import re
import subprocess
import sys

import torch

from prunq.cli import main


def test_info_lists_modules_and_devices(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    for key in ("prunq", "torch", "prunq._C", "prunq._cuda", "cpu path", "triton"):
        assert key in text
    assert ("cuda:0" in text) == torch.cuda.is_available()


def test_python_dash_m_prunq_info():
    result = subprocess.run([sys.executable, "-m", "prunq", "info"], capture_output=True, text=True, check=True)
    assert "prunq._C" in result.stdout


def test_demo_runs_and_checks_the_reference(capsys):
    assert main(["demo", "--tokens", "64", "--hidden", "96"]) == 0
    assert "sum exact: True" in capsys.readouterr().out


def test_import_without_native_modules_falls_back_to_the_reference():
    """With prunq._C and prunq._cuda unloadable, prunq still imports, the ops answer through the
    reference, and `prunq info` says why the modules are missing."""
    script = """
import sys
sys.modules["prunq._C"] = None
sys.modules["prunq._cuda"] = None
import torch, prunq
from prunq.info import print_report
from prunq.ops.layernorm import add_layer_norm_ref
x, r = torch.randn(3, 8), torch.randn(3, 8)
out, total = prunq.ops.add_layer_norm(x, r)
ref_out, ref_total = add_layer_norm_ref(x, r)
assert torch.equal(out, ref_out) and torch.equal(total, ref_total)
print_report()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert re.search(r"prunq._C\s+missing", result.stdout)
