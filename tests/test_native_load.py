"""prunq._C must load on every x86-64 CPU: code that runs at load time (the functions listed in
.init_array: static initialisers) may use no AVX instruction, because the module holds AVX2 and
AVX-512 translation units whose initialisers would otherwise run on CPUs without them (a
namespace-scope table filled by a lambda in an AVX-512 file killed the import with SIGILL on
AVX2-only CPUs). The check disassembles those functions with binutils' objdump."""
import platform
import re
import shutil
import subprocess

import pytest

from prunq import _native

pytestmark = [
    pytest.mark.skipif(_native.C is None, reason="prunq._C not built"),
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86-64 only"),
    pytest.mark.skipif(shutil.which("objdump") is None, reason="needs binutils' objdump"),
]

_INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
_DIRECT_JUMP = re.compile(r"^([0-9a-f]+)\b")


def _objdump(*args: str) -> str:
    return subprocess.run(["objdump", *args], check=True, capture_output=True, text=True).stdout


def init_functions(library: str) -> list[int]:
    """The addresses in the library's .init_array (64-bit little-endian entries), read from the
    file at the offset and size that the section headers give."""
    for line in _objdump("-h", library).splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == ".init_array":
            size, offset = int(fields[2], 16), int(fields[5], 16)
            with open(library, "rb") as f:
                f.seek(offset)
                data = f.read(size)
            return [int.from_bytes(data[i : i + 8], "little") for i in range(0, size, 8)]
    return []


def vector_instructions_at_load(library: str) -> list[str]:
    """AVX instructions (a v-prefixed mnemonic or a ymm/zmm/mask register) reachable from the
    init functions through straight-line code and direct jumps (calls are not followed; a block
    ends at a return or any jump, prefixed or not)."""
    found, seen, todo = [], set(), init_functions(library)
    while todo:
        start = todo.pop()
        if start in seen:
            continue
        listing = _objdump("-d", "--no-show-raw-insn", f"--start-address={start:#x}",
                           f"--stop-address={start + 4096:#x}", library)
        for line in listing.splitlines():
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            address, mnemonic, operands = int(match[1], 16), match[2], match[3]
            if address in seen:
                break
            seen.add(address)
            if mnemonic.startswith("v") or re.search(r"%[yz]mm|%k[0-7]\b", operands):
                found.append(f"{address:#x}: {mnemonic} {operands}")
            if mnemonic in ("jmp", "bnd", "notrack") or mnemonic.startswith("ret"):
                target = _DIRECT_JUMP.match(operands)
                if mnemonic == "jmp" and target:
                    todo.append(int(target[1], 16))
                break
    return found


def test_load_time_code_uses_no_avx():
    library = _native.C.__file__
    assert init_functions(library), "no .init_array found: the check would pass vacuously"
    assert vector_instructions_at_load(library) == []
