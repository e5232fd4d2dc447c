"""The pdf connector on the real first-aid PDFs in shared/realdata/pdf and on broken files made at test time."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import shutil
import sys
import threading
from pathlib import Path

import pypdf
import pytest
from fpdf import FPDF
from PIL import Image, ImageDraw

from curate.ingest import pdf, read_source
from curate.ingest.base import ConnectorError, Reject, SourceSpec

REALDATA = Path(__file__).parents[1] / ".." / "shared" / "realdata" / "pdf"
FM = REALDATA / "us_army_FM4-25.11_first_aid.pdf"
PFA = REALDATA / "who_psychological_first_aid_field_workers_2011.pdf"
WASH = REALDATA / "who_health_edrm_wash_factsheet_2017.pdf"
FM_HEADER = "FM 4-25.11/NTRP 4-02.1/AFMAN 44-163(I)"
TOURNIQUET = "A tourniquet is a constricting band placed around an arm or leg to control bleeding."  # page 47


def ingest(path=None, **options) -> list:
    spec = SourceSpec(name="firstaid", kind="pdf", license="public-domain", path=path, url=options.pop("url", None),
                      sha256=options.pop("sha256", None))
    return list(pdf.read(spec, pdf.Options(**options)))


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def fm_rows() -> dict[int, dict]:
    rows = ingest(FM)
    assert all(isinstance(row, dict) for row in rows)
    return {row["page"]: row for row in rows}


def test_fm_manual_pages_and_provenance(fm_rows):
    assert sorted(fm_rows) == list(range(1, 228))  # 227 pages, none empty, numbered from 1
    row = fm_rows[47]
    assert row["kind"] == "page" and row["doc_id"] == "us_army_FM4-25.11_first_aid"
    assert row["source"] == "firstaid" and row["license"] == "public-domain"
    assert row["provenance"] == {"origin": str(FM), "revision": None, "locator": "page=47"}
    assert json.loads(row["meta"]) == {"pages": 227}
    assert len({row["id"] for row in fm_rows.values()}) == 227


def test_fm_manual_known_text_on_known_page(fm_rows):
    assert [page for page, row in fm_rows.items() if TOURNIQUET in flat(row["text"])] == [47]
    assert "If a casualty’s heart stops beating, you must immediately seek medical help." in flat(fm_rows[31]["text"])


def test_fm_manual_running_header_and_page_number_removed(fm_rows):
    raw = pypdf.PdfReader(FM).pages[30].extract_text()  # printed page 2-9
    assert raw.splitlines()[:2] == ["2-9", FM_HEADER]
    text = fm_rows[31]["text"]
    assert text.startswith("(4) After giving two slow breaths, which cause the chest to")
    assert "2-9. Heartbeat" in text  # a real line with the same digits stays
    assert not [page for page, row in fm_rows.items() if FM_HEADER in row["text"].splitlines()]


def test_fm_manual_dehyphenation(fm_rows):
    raw = pypdf.PdfReader(FM).pages[32].extract_text()
    assert "uncon-\nsciousness" in raw
    assert "unconsciousness" in fm_rows[33]["text"] and "uncon-" not in fm_rows[33]["text"]
    assert "mouth-to-mouth" in fm_rows[48]["text"]  # a compound broken after its second hyphen keeps its hyphens
    assert "blood-soaked" in fm_rows[19]["text"]  # both halves are words of the document


def test_pypdfium2_engine_matches(fm_rows):
    rows = {row["page"]: row for row in ingest(FM, engine="pypdfium2")}
    assert sorted(rows) == sorted(fm_rows)
    assert TOURNIQUET in flat(rows[47]["text"])
    assert "unconsciousness" in rows[33]["text"]  # pdfium's own soft-hyphen marker is joined too
    assert not [page for page, row in rows.items() if FM_HEADER in row["text"].splitlines()]


def test_who_guides_ingest():
    wash = ingest(WASH)
    assert [row["page"] for row in wash] == [1, 2]
    assert "WATER, SANITATION AND HYGIENE" in wash[0]["text"]
    assert "person-to-person transmission" in wash[1]["text"]
    raw = ingest(WASH, clean=False)
    assert "December  2017" in raw[0]["text"] and "December 2017" in wash[0]["text"]

    pfa = {row["page"]: row for row in ingest(PFA)}
    assert len(pfa) > 55 and max(pfa) <= 64
    assert "Psychological first aid: Guide for field workers" not in pfa[31]["text"]  # the alternating footer


def make_bad_folder(folder: Path) -> None:
    folder.mkdir()
    shutil.copy(WASH, folder / "good.pdf")
    (folder / "empty.pdf").write_bytes(b"")
    data = WASH.read_bytes()
    (folder / "truncated.pdf").write_bytes(data[: len(data) // 2])
    (folder / "notes.pdf").write_text("minutes of the meeting\n" * 20)
    scan = Image.new("RGB", (400, 120), "white")
    ImageDraw.Draw(scan).text((20, 50), "Apply direct pressure to the wound", fill="black")
    image_only = FPDF()
    image_only.add_page()
    image_only.image(scan, x=10, y=10, w=180)
    image_only.output(str(folder / "scanned.pdf"))
    short = FPDF()
    short.add_page()
    short.set_font("helvetica", size=12)
    short.cell(text="Notes")
    (folder / "sub").mkdir()
    short.output(str(folder / "sub" / "short.pdf"))  # folders are searched recursively
    for name, password in (("locked.pdf", "secret"), ("open.pdf", "")):
        writer = pypdf.PdfWriter(clone_from=WASH)
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-256")
        writer.write(folder / name)


@pytest.mark.parametrize("engine", ["pypdf", "pypdfium2"])
def test_bad_files_are_rejected_and_the_rest_go_on(tmp_path, engine):
    make_bad_folder(tmp_path / "in")
    out = ingest(tmp_path / "in", engine=engine)
    rejects = {Path(r.locator).name: r for r in out if isinstance(r, Reject)}
    assert {name: r.reason for name, r in rejects.items()} == {
        "empty.pdf": "empty_file", "truncated.pdf": "corrupt_pdf", "notes.pdf": "not_pdf",
        "scanned.pdf": "image_only", "locked.pdf": "encrypted", "short.pdf": "too_short",
    }
    assert "password" in rejects["locked.pdf"].detail and "OCR" in rejects["scanned.pdf"].detail
    rows = [(row["doc_id"], row["page"]) for row in out if isinstance(row, dict)]
    assert rows == [("good", 1), ("good", 2), ("open", 1), ("open", 2)]  # empty user password opens
    good = [row["text"] for row in out if isinstance(row, dict)]
    assert good[:2] == good[2:]


def test_workers_give_the_same_rows(tmp_path):
    folder = tmp_path / "in"
    make_bad_folder(folder)
    shutil.copy(WASH, folder / "wash.pdf")
    serial = ingest(folder)
    assert ingest(folder, workers=2) == serial
    assert sum(isinstance(row, dict) for row in serial) == 6 and sum(isinstance(r, Reject) for r in serial) == 6


def test_missing_pypdfium2_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pypdfium2", None)
    with pytest.raises(ConnectorError, match=r"pip install 'curate\[fast\]'"):
        ingest(WASH, engine="pypdfium2")


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(ConnectorError, match="does not exist"):
        ingest(tmp_path / "nope")
    with pytest.raises(ConnectorError, match="no .pdf files"):
        ingest(tmp_path)


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on localhost (a real server: fetch speaks plain urllib to it)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def fetched(url: str, sha256: str | None = None) -> list[dict]:
    spec = SourceSpec(name="wash", kind="pdf", url=url, sha256=sha256, license="unknown")
    return [r for r in read_source(spec) if isinstance(r, dict)]


def test_download_from_url_with_cache_and_sha256(tmp_path, monkeypatch, served):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    folder, base_url = served
    source = folder / "wash_factsheet.pdf"
    shutil.copy(WASH, source)
    url = f"{base_url}/wash_factsheet.pdf"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    cache = tmp_path / "cache" / "downloads"

    rows = fetched(url)
    assert [row["page"] for row in rows] == [1, 2] and rows[0]["doc_id"] == "wash_factsheet"
    assert rows[0]["provenance"]["origin"] == url and json.loads(rows[0]["meta"])["sha256"] == digest
    assert rows[0]["provenance"]["revision"] == digest  # unpinned: the hash of what was read is recorded
    assert [p.name for p in cache.iterdir()] == [f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-wash_factsheet.pdf"]

    source.unlink()  # the cached copy is used from now on
    pinned = fetched(url, digest.upper())
    assert [row["text"] for row in pinned] == [row["text"] for row in rows]
    assert pinned[0]["provenance"]["revision"] == digest.upper()

    (folder / "other.pdf").write_bytes(b"%PDF-1.4 not the file we pinned")
    with pytest.raises(ConnectorError, match=f"sha256 {hashlib.sha256(b'%PDF-1.4 not the file we pinned').hexdigest()}"
                                             f", expected {'0' * 64}"):
        fetched(f"{base_url}/other.pdf", "0" * 64)
    assert len(list(cache.iterdir())) == 1  # nothing half-written or unverified is left in the cache
    with pytest.raises(ConnectorError, match="cannot download .*/missing.pdf: HTTP Error 404"):
        fetched(f"{base_url}/missing.pdf")


@pytest.mark.parametrize("url, scheme", [(WASH.resolve().as_uri(), "file:"), ("ftp://127.0.0.1/wash.pdf", "ftp:"),
                                         (str(WASH), "a URL without a scheme")])
def test_download_takes_http_and_https_only(tmp_path, monkeypatch, url, scheme):
    monkeypatch.setenv("CURATE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ConnectorError) as error:
        fetched(url)
    assert str(error.value) == (f"cannot download {url}: only http and https URLs are downloaded, not {scheme}; "
                                "give a local file as 'path:'")
    assert not (tmp_path / "cache").exists()


def test_clean_pages_on_synthetic_layout():
    bodies = ["Rest the casualty.\nGive a treat-\nment and a\tcold-\nWeather note.", "Cool the burn with water.",
              "Call for help now.\nKeep him warm.", "Check breathing again.\nLook, listen and feel."]
    pages = [f"Field Manual {n}\n\n{body}  Then  wait.\n\n\n\nEnd of step {n}: {body[:9]}\n{n}"
             for n, body in enumerate(bodies, 1)]
    pages.append("Field Manual 5\nA self-\ncare line. self-care matters, face-to-\nface.\nv")
    cleaned = pdf.clean_pages(pages)
    assert cleaned[0] == ("Rest the casualty.\nGive a treatment and a cold-\nWeather note. Then wait.\n\n"
                          "End of step 1: Rest the")
    assert cleaned[4] == "A self-care line. self-care matters, face-to-face."
    assert pdf.clean_pages(pages[:2])[0].startswith("Field Manual 1\n")  # too few pages to call a line running


def test_options_are_checked():
    with pytest.raises(ValueError):
        pdf.Options(workers=0)
    with pytest.raises(ValueError):
        pdf.Options(egnine="pypdfium2")
