"""Hostile uploads (issue #25): what each costs the server now, each in a fresh process.

For each case: the peak resident memory above the process's own just before the call
(``ru_maxrss``), the CPU seconds of the call, and the message given. The cases are the
issue's: a 0.2 MB zip holding one 200 MB line of ``0,`` and a zip of ``0001`` cells on the
Kaggle page (``kaggle.read_upload``); an export zip whose ``class.json`` inflates to 2 GiB,
and one whose ``mnist.npz`` claims 10^11 elements, on the dashboard's import
(``class_archive.read_export``). Files are built in memory as streams (tests/test_hostile.py).

    python benchmarks/hostile_uploads.py          # writes benchmarks/HOSTILE.md
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CASES = {
    "Kaggle: one 200 MB line of `0,` (0.2 MB zip)":
        'data = t.zip_streamed("test.csv", b"0," * 2**20, 100); call = lambda: kaggle.read_upload("a.zip", data)',
    "Kaggle: 60,000 rows of `0001` cells (0.5 MB zip)":
        'data = t.zip_streamed("test.csv", t.row(["0001"] * 784), 60000); call = lambda: kaggle.read_upload("a.zip", data)',
    "Kaggle: 28,000 rows of zeros, a well-formed test.csv (for scale)":
        'data = t.zip_streamed("test.csv", t.HEADER + t.GOOD_ROW * 28000, 1); call = lambda: kaggle.read_upload("a.zip", data)',
    "Import: class.json inflating to 2 GiB (2 MB zip)":
        'data = t.with_npz(t.zip_bomb("class.json", b" " * 2**20, 2048)); call = lambda: class_archive.read_export(data)',
    "Import: mnist.npz claiming 10^11 elements":
        'data = t._export(npz=t._npz_claiming("y_test", (10**11,))); call = lambda: class_archive.read_export(data)',
}
PROBE = """
import json, resource, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
from mnist_core.classroom import class_archive, kaggle
import test_hostile as t
{setup}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
try:
    call(); message = "accepted"
except Exception as exc:
    message = f"{{type(exc).__name__}}: {{exc}}"
print(json.dumps({{"mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024,
                  "cpu": time.process_time() - cpu, "message": message}}))
"""


def main() -> None:
    rows = []
    for name, setup in CASES.items():
        code = PROBE.format(repo=str(REPO), tests=str(REPO / "tests"), setup=setup)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=600, cwd=REPO)
        got = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(f"| {name} | {got['mb']:.0f} | {got['cpu']:.2f} | {got['message'][:110]} |")
        print(rows[-1])
    table = "\n".join(["| case | peak MB above before | CPU s | message |", "|---|---:|---:|---|",
                       *rows])
    (REPO / "benchmarks" / "HOSTILE.md").write_text(RESULT.format(table=table))


RESULT = """# Hostile uploads: what each costs the server (issue #25)

`python benchmarks/hostile_uploads.py`, each case in a fresh process on the 2-core shared
development machine: peak resident memory above the process's own just before the call
(`ru_maxrss`), CPU seconds of the call, and what the person is told.

{table}

Before this change (the issue's measurements, on a server started by README's command): the
200 MB line took the server to 7.4 GB for 73 s before the error; a 0.35 MB zip of `0001`
cells cost 25-31 s of CPU; the 2 GiB `class.json` used 3.46 GB; the npz claiming 10^11
elements ended in a generic error.

Now the CSV is parsed as it unpacks, a 4 MB block at a time, within `KaggleConfig`'s
`CsvLimits` (16 KB a line, 32 characters a value, 100,000 rows, 200 MB, 4 s of the parsing
thread's CPU), and zero-padded cells are read with the rest of the block (a running count
of non-zero digits), not one by one. An import reads `class.json` within 64 MB (refused
from its header when that says more) and checks each npz array's header before allocating it.
"""

if __name__ == "__main__":
    main()
