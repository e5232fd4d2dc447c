"""Benchmark the pdf connector against raw text extraction with pdfminer.six, pypdf and pypdfium2.

    python benchmarks/ingest_pdf.py [--pdf FILE] [--repeat 3] [--copies 4]

Prints pages/s for each extractor (best of ``--repeat`` runs), the ratios of our ingest to the raw extractors, and
the speedup of ``workers=2`` over ``workers=1`` on a folder holding ``--copies`` links to the PDF.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pypdf
import pypdfium2
from pdfminer.high_level import extract_pages
from pdfminer.layout import LTTextContainer

from curate.ingest import pdf
from curate.ingest.base import SourceSpec

DEFAULT_PDF = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "pdf" / "us_army_FM4-25.11_first_aid.pdf"


def ours(path: Path, engine: str, workers: int = 1) -> int:
    spec = SourceSpec(name="bench", kind="pdf", path=path)
    return sum(1 for row in pdf.read(spec, pdf.Options(engine=engine, workers=workers)) if isinstance(row, dict))


def raw_pdfminer(path: Path) -> int:
    pages = extract_pages(path)
    return len(["".join(box.get_text() for box in page if isinstance(box, LTTextContainer)) for page in pages])


def raw_pypdf(path: Path) -> int:
    return len([page.extract_text() for page in pypdf.PdfReader(path).pages])


def raw_pypdfium2(path: Path) -> int:
    document = pypdfium2.PdfDocument(path)
    try:
        return len([page.get_textpage().get_text_range() for page in document])
    finally:
        document.close()


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF, help="the PDF to read (default: FM 4-25.11)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the fastest counts")
    parser.add_argument("--copies", type=int, default=4, help="copies of the PDF for the workers comparison")
    args = parser.parse_args()
    path = args.pdf.resolve()
    pages = len(pypdf.PdfReader(path).pages)
    print(f"{path.name}: {pages} pages, best of {args.repeat}, {os.cpu_count()} CPUs\n")

    runs = {
        "ours pypdf + clean": (ours, path, "pypdf"),
        "ours pypdfium2 + clean": (ours, path, "pypdfium2"),
        "raw pdfminer.six": (raw_pdfminer, path),
        "raw pypdf": (raw_pypdf, path),
        "raw pypdfium2": (raw_pypdfium2, path),
    }
    seconds = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeat):  # interleaved, so that a busy moment does not hit one extractor only
        for name, (fn, *fn_args) in runs.items():
            seconds[name] = min(seconds[name], timed(fn, *fn_args))
    rate = {name: pages / s for name, s in seconds.items()}
    print(f"{'extractor':<24} {'seconds':>8} {'pages/s':>9}")
    for name in runs:
        print(f"{name:<24} {seconds[name]:>8.2f} {rate[name]:>9.1f}")

    print()
    for a, b in [("ours pypdf + clean", "raw pdfminer.six"), ("ours pypdfium2 + clean", "raw pdfminer.six"),
                 ("ours pypdf + clean", "raw pypdf"), ("ours pypdfium2 + clean", "raw pypdfium2")]:
        print(f"{a} / {b}: {rate[a] / rate[b]:.2f}x")

    with tempfile.TemporaryDirectory() as folder:
        for i in range(args.copies):
            os.symlink(path, Path(folder) / f"copy{i}.pdf")
        print(f"\nworkers on {args.copies} copies ({args.copies * pages} pages), pypdf + clean:")
        serial = parallel = float("inf")
        for _ in range(args.repeat):
            serial = min(serial, timed(ours, Path(folder), "pypdf", 1))
            parallel = min(parallel, timed(ours, Path(folder), "pypdf", 2))
        print(f"workers=1 {serial:.2f} s, workers=2 {parallel:.2f} s: speedup {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
