"""Materialise the offline demo's sources: ``python -m curate.demo prepare OUT_DIR``.

Writes, from files that ship with the package:
  OUT_DIR/firstaid.pdf  – a short first-aid PDF typeset from the project's own text (``data/demo_firstaid.md``)
  OUT_DIR/qa.jsonl      – a small QA set written for the project (``data/demo_qa.jsonl``)
  OUT_DIR/eval.jsonl    – 20 held-out multiple-choice questions written for the project, in MedQA's layout
                          (``data/demo_eval.jsonl``): the demo scores the base and the tuned model on them
  OUT_DIR/dicom/        – two real DICOM images bundled in pydicom's wheel (no download)
"""

from __future__ import annotations

import shutil
import sys
from importlib import resources
from pathlib import Path

DICOM_FILES = ("CT_small.dcm", "MR_small.dcm")


def write_pdf(markdown: str, path: Path) -> int:
    """Typeset simple markdown (``#``/``##`` headings, paragraphs) as an A4 PDF; returns the page count."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_page()
    for block in markdown.strip().split("\n\n"):
        text = " ".join(line.strip() for line in block.splitlines())
        if text.startswith("## "):
            pdf.set_font("Helvetica", "B", 13)
            pdf.multi_cell(0, 7, text[3:], new_x="LMARGIN", new_y="NEXT")
        elif text.startswith("# "):
            pdf.set_font("Helvetica", "B", 17)
            pdf.multi_cell(0, 9, text[2:], new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.set_font("Helvetica", "", 11)
            pdf.multi_cell(0, 5.5, text, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
    pdf.output(str(path))
    return pdf.page_no()


def prepare(out: Path) -> list[Path]:
    from pydicom.data import get_testdata_file

    data = resources.files("curate") / "data"
    out.mkdir(parents=True, exist_ok=True)
    write_pdf((data / "demo_firstaid.md").read_text(), out / "firstaid.pdf")
    (out / "qa.jsonl").write_text((data / "demo_qa.jsonl").read_text())
    (out / "eval.jsonl").write_text((data / "demo_eval.jsonl").read_text())
    (out / "dicom").mkdir(exist_ok=True)
    for name in DICOM_FILES:
        shutil.copyfile(get_testdata_file(name, download=False), out / "dicom" / name)
    return sorted(p for p in out.rglob("*") if p.is_file())


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "prepare":
        sys.exit("usage: python -m curate.demo prepare OUT_DIR")
    for file in prepare(Path(sys.argv[2])):
        print(file)
