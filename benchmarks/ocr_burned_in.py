"""The dicom connector's burned-in text check on every DICOM of ``../shared/realdata/dicom`` and pydicom's test files.

For each file: the connector's outcome with ``ocr_burned_in: true`` (rows, or the reject and its detail), whether
the check applies to it (``curate.ingest.burned_in.needs_check``), and the OCR itself timed on its rendered 8-bit
image (the middle frame, full size): the words that count as burned in and milliseconds per image. Files the
connector cannot render (no pixels, no decoder, truncated) are listed with their reject.

Usage::

    python benchmarks/ocr_burned_in.py [--repeat 3] [--threads 1]

``--threads`` sets OMP_THREAD_LIMIT for Tesseract (1 is usually fastest for images this small).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file

from curate.ingest import dicom
from curate.ingest.base import Reject, SourceSpec
from curate.ingest.burned_in import find_text, needs_check

REAL = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "dicom"
PYDICOM = Path(get_testdata_file("CT_small.dcm", download=False)).parent


def read(path: Path, **options) -> list:
    spec = SourceSpec(name="bench", kind="dicom", license="test", path=path)
    return list(dicom.read(spec, dicom.Options(max_size=None, **options)))


def measure(path: Path, repeat: int) -> dict:
    outcome = read(path)
    plain = read(path, ocr_burned_in=False)
    result = {"file": f"{path.parent.name}/{path.name}", "checked": None, "outcome": "", "text": [], "ms": None}
    rejects = [r for r in outcome if isinstance(r, Reject)]
    result["outcome"] = f"reject {rejects[0].reason}" if rejects else f"{len(outcome)} row(s)"
    rows = [r for r in plain if not isinstance(r, Reject)]
    if not rows:
        return result
    result["checked"] = needs_check(pydicom.dcmread(path))
    pixels = np.asarray(Image.open(io.BytesIO(rows[0]["image"]["bytes"])))
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result["text"] = find_text(pixels)
        times.append((time.perf_counter() - start) * 1000)
    result["ms"], result["size"] = statistics.median(times), f"{pixels.shape[1]}x{pixels.shape[0]}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ["OMP_THREAD_LIMIT"] = str(args.threads)
    warnings.simplefilter("ignore")  # pydicom's warnings about the test files' odd values
    files = sorted(REAL.glob("*.dcm")) + sorted(PYDICOM.glob("*.dcm"))
    print(f"{'file':<52} {'size':>9} {'checked':>7} {'ms':>7}  {'connector':<24} text found")
    times, caught = [], []
    for path in files:
        r = measure(path, args.repeat)
        ms = f"{r['ms']:.0f}" if r["ms"] is not None else "-"
        checked = {None: "-", True: "yes", False: "no"}[r["checked"]]
        print(f"{r['file']:<52} {r.get('size', '-'):>9} {checked:>7} {ms:>7}  {r['outcome']:<24} "
              f"{' '.join(r['text'])[:80]}")
        if r["ms"] is not None:
            times.append(r["ms"])
        if r["outcome"] == "reject burned_in_text":
            caught.append(r["file"])
    print(f"\n{len(times)} images OCR'd: median {statistics.median(times):.0f} ms, max {max(times):.0f} ms, "
          f"total {sum(times) / 1000:.1f} s (OMP_THREAD_LIMIT={args.threads}); burned_in_text rejects: {caught}")


if __name__ == "__main__":
    main()
