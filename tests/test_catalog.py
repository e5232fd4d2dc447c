"""The source catalog in sources/ (shipped as curate/sources): every file loads, follows the conventions, and
`curate sources` prints it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from curate import cli
from curate.catalog import BUILTIN_SOURCES, CatalogEntry, CatalogError, load_catalog
from curate.ingest import CONNECTORS, validate_options

FILES = sorted(BUILTIN_SOURCES.glob("*.yaml"))
ALLOWED_LICENSES = {
    "apache-2.0", "mit", "cc0-1.0", "cc-by-4.0", "cc-by-nc-sa-4.0", "cc-by-nc-sa-3.0-igo", "public-domain",
    "ifrc-noncommercial",   # IFRC terms: non-commercial copies with the source acknowledged (not a CC licence)
    "all-rights-reserved",  # usable for local reference only, never redistributed
    "unknown",              # only for eval-use sources
    "user-provided",        # local data whose terms the user establishes
}
EVAL_ONLY = {"medqa-usmle-4-options-test", "first-aid-instructions", "firstaidqa-eval-40"}
HF_QA_KEYS = {"question", "answer", "reasoning", "system", "context", "options", "answer_key", "long_answer", "id"}
SHA1 = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")
KEBAB = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogEntry]:
    return load_catalog([BUILTIN_SOURCES])


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Print through a wide console so table cells and YAML lines are not wrapped (output still goes to stdout)."""
    monkeypatch.setattr(cli, "console", Console(width=400, color_system=None, highlight=False))


def test_every_file_loads_and_is_named_after_its_entry(catalog: dict[str, CatalogEntry]) -> None:
    assert len(FILES) >= 19
    assert len(catalog) == len(FILES)
    for file in FILES:
        entry = CatalogEntry.model_validate(yaml.safe_load(file.read_text()))
        assert KEBAB.fullmatch(entry.name), entry.name
        assert file.name == f"{entry.name}.yaml"
        assert entry.description.strip() and entry.attribution.strip()


def test_files_start_with_a_provenance_comment() -> None:
    for file in FILES:
        assert file.read_text().startswith("#"), f"{file.name} has no comment header saying where its facts come from"


def test_names_are_unique(tmp_path: Path) -> None:
    names = [yaml.safe_load(f.read_text())["name"] for f in FILES]
    assert len(names) == len(set(names))
    (tmp_path / "copy.yaml").write_text(FILES[0].read_text())
    with pytest.raises(CatalogError, match="already defined"):
        load_catalog([BUILTIN_SOURCES, tmp_path])


def test_hub_entries_have_a_split_and_a_revision(catalog: dict[str, CatalogEntry]) -> None:
    hub = [e for e in catalog.values() if e.location.hub]
    assert len(hub) >= 10
    for e in hub:
        assert e.location.split, e.name
        rev = e.location.revision
        assert rev == "main" or SHA1.fullmatch(rev or ""), f"{e.name}: revision {rev!r}"
        if rev == "main":
            assert e.notes and "pin" in e.notes, f"{e.name}: an unpinned revision must say how it gets pinned"


def test_urls_are_https_and_hashes_are_sha256(catalog: dict[str, CatalogEntry]) -> None:
    for e in catalog.values():
        if e.location.url:
            assert e.location.url.startswith("https://"), e.name
            if e.location.sha256:
                assert SHA256.fullmatch(e.location.sha256), e.name
            else:
                assert e.notes and "first download" in e.notes, f"{e.name}: say when the hash gets recorded"


def test_licences_are_in_the_allowed_set(catalog: dict[str, CatalogEntry]) -> None:
    for e in catalog.values():
        assert e.license in ALLOWED_LICENSES, f"{e.name}: {e.license}"
        if e.license == "unknown":
            assert e.use == "eval", f"{e.name}: a source of unknown licence may only be used for evaluation"


def test_eval_sources_are_marked(catalog: dict[str, CatalogEntry]) -> None:
    assert EVAL_ONLY <= set(catalog)
    assert {n for n, e in catalog.items() if e.use == "eval"} == EVAL_ONLY
    for name, e in catalog.items():
        if re.search(r"(^|-)(test|eval)(-|$)", name):
            assert e.use == "eval", name


def test_mappings_use_connector_keys(catalog: dict[str, CatalogEntry]) -> None:
    for e in catalog.values():
        if e.kind == "hf_qa":
            assert {"question", "answer"} <= set(e.mapping), e.name
            assert set(e.mapping) <= HF_QA_KEYS, f"{e.name}: {set(e.mapping) - HF_QA_KEYS}"
            assert ("options" in e.mapping) == ("answer_key" in e.mapping), e.name
        else:
            assert not e.mapping, e.name


# a ``rows`` source is a stage folder of the user's own earlier run, never a published dataset (tests/test_ingest_rows.py)
CATALOGUED = sorted(set(CONNECTORS) - {"rows"})


@pytest.mark.parametrize("kind", CATALOGUED)
def test_options_validate_against_the_connector(catalog: dict[str, CatalogEntry], kind: str) -> None:
    entries = [e for e in catalog.values() if e.kind == kind]
    assert entries, f"no catalog entry of kind {kind}"
    pytest.importorskip(CONNECTORS[kind])
    for e in entries:
        validate_options(e.spec())


def test_specs_resolve(catalog: dict[str, CatalogEntry]) -> None:
    for e in catalog.values():
        spec = e.spec()
        assert spec.name == e.name and spec.license == e.license and spec.use == e.use
        assert spec.path is not None or spec.hub is not None or spec.url, e.name
    rocov2 = catalog["rocov2-radiology"].spec()
    assert rocov2.hub.repo == "eltorio/ROCOv2-radiology" and rocov2.revision == rocov2.hub.revision
    pqal = catalog["pubmedqa-ori-pqal"].spec()
    assert pqal.revision == pqal.sha256


def test_sources_list_prints_every_name(catalog: dict[str, CatalogEntry], wide_console: None,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sources", "list"]) == cli.OK
    out = capsys.readouterr().out
    for name, e in catalog.items():
        assert name in out
        assert e.license in out


def test_sources_show_prints_the_entry(catalog: dict[str, CatalogEntry], wide_console: None,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("rocov2-radiology", "medqa-usmle-4-options", "who-basic-emergency-care", "dicom-local"):
        assert cli.main(["sources", "show", name]) == cli.OK
        shown = yaml.safe_load(capsys.readouterr().out)
        assert shown["name"] == name
        assert shown == catalog[name].model_dump(exclude_none=True)


def test_sources_show_unknown_name_is_invalid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sources", "show", "no-such-source"]) == cli.INVALID
    assert "no source 'no-such-source'" in capsys.readouterr().err


def test_a_wheel_ships_the_catalog(tmp_path: Path) -> None:
    """Built from a copy of the project (the build writes build/ and egg-info beside its sources) and installed into a
    folder: the installed package finds every catalog entry."""
    root = BUILTIN_SOURCES.parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    shutil.copytree(root / "curate", src / "curate", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(src), "-w", str(tmp_path / "dist")],
                   check=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("curate-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"curate/sources/{f.name}" for f in FILES} <= names
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(tmp_path / "site"), str(wheel)],
                   check=True)
    code = "import curate.catalog as c; print(c.__file__); print(' '.join(sorted(c.load_catalog())))"
    listed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, text=True, capture_output=True,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site"), "CURATE_SOURCES": ""})
    module, names = listed.stdout.splitlines()
    assert Path(module) == tmp_path / "site" / "curate" / "catalog.py"  # the installed wheel, not this checkout
    assert names.split() == sorted(yaml.safe_load(f.read_text())["name"] for f in FILES)
