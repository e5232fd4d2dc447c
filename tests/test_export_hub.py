"""``curate push`` and ``curate inspect`` on real exports (FirstAidQA, VQA-RAD, MedQuAD, WHO PFA pages).

The Hub's servers cannot exist here, so the ``HfApi`` methods are replaced at their boundary (the only mock): the test
checks what would be sent (the repo, the branch, the exact file set, the stale shards deleted) and that a fake token
set in HF_TOKEN never shows in logs, stdout, stderr, the artifact or an error, even when the upload fails with the
token in its message; that a new repo is private unless asked otherwise, an existing repo of the other visibility is
refused, and rows whose licence forbids publishing stop a push and a dry run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import shutil
from pathlib import Path

import pytest
import httpx
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, DatasetInfo, HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from curate.catalog import load_catalog
from curate.cli import main
from curate.export.artifact import ExportOptions, export
from curate.export.hub import PushError, PushFailed, PushRefused, push, scrub
from curate.export.licenses import blocks_publishing
from curate.ingest import Reject, SourceSpec, read_source
from curate.io import write_json, write_parquet
from curate.schema import ARROW_SCHEMA, make_qa

FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdefXYZ"
STALE = "data/train-00003-of-00009.parquet"
WHO_PFA = "pdf/who_psychological_first_aid_field_workers_2011.pdf"


def exported(tmp: Path, specs: list[SourceSpec], extra: list[dict] = ()) -> Path:
    """An export of the rows the connectors read from ``specs`` (plus ``extra`` rows), written as one stage folder."""
    rows = [r for spec in specs for r in read_source(spec) if not isinstance(r, Reject)] + list(extra)
    folder = tmp / "01-ingest"
    folder.mkdir()
    write_parquet(folder / "part-00000.parquet", {c: [r.get(c) for r in rows] for c in ARROW_SCHEMA.names},
                  ARROW_SCHEMA)
    write_json(folder / "_stage.json", {"stage": "ingest", "config": {},
                                        "stats": {"rows_in": len(rows), "rows_out": len(rows), "dropped": {}}})
    export(folder, tmp / "ds", ExportOptions(splits={"train": 0.8, "test": 0.2}))
    return tmp / "ds"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, realdata) -> Path:
    return exported(tmp_path_factory.mktemp("hub"), [
        SourceSpec(name="firstaidqa", kind="hf_qa", license="cc-by-4.0",
                   path=realdata / "qa/firstaidqa/firstaidqa_v1.json", limit=40),
        SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=realdata / "vqa/vqa_rad", limit=40)])


@pytest.fixture(scope="module")
def restricted(tmp_path_factory, realdata) -> Path:
    """Catalog sources as the catalog licenses them: WHO PFA (all rights reserved; three of its pages made into qa
    rows), the FirstAidQA eval bank (unknown) and MedQuAD CDC (cc-by-4.0)."""
    catalog = load_catalog()
    pfa = catalog["who-psychological-first-aid"].spec(realdata / WHO_PFA)
    pages = [r for r in read_source(dataclasses.replace(pfa, limit=3, options={"engine": "pypdfium2"}))
             if not isinstance(r, Reject)]
    page_qa = [make_qa(question=f"What does page {p['page']} of the WHO guide say?", answer=p["text"][:400],
                       source=p["source"], license=p["license"], origin=p["provenance"]["origin"],
                       locator=p["provenance"]["locator"]) for p in pages]
    return exported(tmp_path_factory.mktemp("restricted"), [
        catalog["firstaidqa-eval-40"].spec(realdata / "qa/firstaidqa/eval_questions_40.json"),
        dataclasses.replace(catalog["medquad-xml"].spec(realdata / "qa/medquad/9_CDC_QA"), limit=10)], page_qa)


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class FakeHub:
    """Stands in for the Hub's servers: records every call the HfApi methods make.

    ``private``: the visibility of the repo already on the Hub, or None when there is none (repo_info answers 404).
    """

    def __init__(self, monkeypatch, fail_with: str | None = None, private: bool | None = None):
        self.calls: dict[str, dict] = {}
        self.tokens: set[str] = set()
        self.fail_with = fail_with
        self.private = private
        for name in ("repo_info", "create_repo", "create_branch", "list_repo_files", "create_commit"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        def method(api, *args, **kwargs):
            self.tokens.add(api.token)
            self.calls[name] = {"args": args, **kwargs}
            if name == "repo_info" and self.private is None:
                url = f"https://huggingface.co/api/datasets/{args[0]}"
                raise RepositoryNotFoundError("404 Client Error: Repository Not Found",
                                              response=httpx.Response(404, request=httpx.Request("GET", url)))
            if name == "repo_info":
                return DatasetInfo(id=args[0], private=self.private)
            if name == "list_repo_files":
                return [".gitattributes", "README.md", STALE, "notes/keep.txt"]
            if name == "create_commit" and self.fail_with:
                raise OSError(self.fail_with)
            if name == "create_commit":
                return CommitInfo(commit_url=f"https://huggingface.co/datasets/{args[0]}/commit/0a1b2c",
                                  commit_message=kwargs["commit_message"], commit_description="", oid="0a1b2c")
            return None
        return method

    @property
    def operations(self) -> list:
        return list(self.calls["create_commit"]["args"][1])


@pytest.fixture
def hf_env(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved login from the machine
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_token(*texts: str, folder: Path | None = None) -> None:
    for text in texts:
        assert FAKE_TOKEN not in text
    for path in (folder.rglob("*") if folder else []):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes()


def test_push_uploads_exactly_the_artifact_and_never_shows_the_token(artifact, monkeypatch, hf_env, capsys):
    hub = FakeHub(monkeypatch)
    before = files_of(artifact)
    rc = main(["-v", "push", str(artifact), "--repo", "curate-org/firstaid-vqa", "--private", "--revision", "v1",
               "-m", "First export"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert hub.tokens == {FAKE_TOKEN}  # the token from HF_TOKEN reached the client, and only the client
    assert hub.calls["create_repo"]["args"] == ("curate-org/firstaid-vqa",)
    assert {k: hub.calls["create_repo"][k] for k in ("repo_type", "private", "exist_ok")} == \
        {"repo_type": "dataset", "private": True, "exist_ok": True}
    assert hub.calls["create_branch"]["branch"] == "v1" and hub.calls["create_branch"]["exist_ok"]
    commit = hub.calls["create_commit"]
    assert (commit["repo_type"], commit["revision"], commit["commit_message"]) == ("dataset", "v1", "First export")
    added = {op.path_in_repo: Path(op.path_or_fileobj) for op in hub.operations if isinstance(op, CommitOperationAdd)}
    assert set(added) == set(before)
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == before[name] for name, p in added.items())
    deleted = [op.path_in_repo for op in hub.operations if isinstance(op, CommitOperationDelete)]
    assert deleted == [STALE]  # a stale shard would otherwise join the train split; other files are left alone
    assert "pushed" in out and "/commit/0a1b2c" in out and f"pushing {len(before)} files" in hf_env.text
    assert files_of(artifact) == before
    assert_no_token(out, err, hf_env.text, folder=artifact)


def test_failed_push_scrubs_the_token_and_says_how_to_retry(artifact, monkeypatch, hf_env, capsys):
    FakeHub(monkeypatch, fail_with=f"401 Unauthorized: token {FAKE_TOKEN} is invalid (Authorization: Bearer "
                                   f"{FAKE_TOKEN})")
    before = files_of(artifact)
    assert main(["push", str(artifact), "--repo", "curate-org/firstaid-vqa"]) == 3
    out, err = capsys.readouterr()
    assert "401 Unauthorized" in err and f"curate push {artifact} --repo curate-org/firstaid-vqa" in err
    with pytest.raises(PushFailed) as caught:
        push(artifact, "curate-org/firstaid-vqa")
    message = str(caught.value)
    assert "***" in message and "unchanged" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert all(FAKE_TOKEN not in str(a) for a in caught.value.args)
    assert files_of(artifact) == before
    assert_no_token(out, err, message, hf_env.text, folder=artifact)


def test_dry_run_lists_files_and_sizes_without_a_token(artifact, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    hub = FakeHub(monkeypatch)
    assert main(["push", str(artifact), "--repo", "curate-org/x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in files_of(artifact):
        size = (artifact / name).stat().st_size
        assert re.search(rf"{re.escape(name)}\s.*{size:,}", out)
    assert hub.calls == {}
    assert main(["push", str(artifact), "--repo", "curate-org/x"]) == 2
    assert "no Hugging Face token" in capsys.readouterr().err and hub.calls == {}


def test_push_refuses_bad_input_before_calling_the_hub(artifact, monkeypatch, hf_env, tmp_path):
    hub = FakeHub(monkeypatch)
    leaky = tmp_path / "leaky"
    shutil.copytree(artifact, leaky)
    (leaky / "report.json").write_text(f'{{"note": "{FAKE_TOKEN}"}}')
    with pytest.raises(PushError) as caught:
        push(leaky, "curate-org/x")
    assert "contains your Hugging Face token" in str(caught.value) and FAKE_TOKEN not in str(caught.value)
    with pytest.raises(PushError, match="ORG/NAME"):
        push(artifact, "not a repo")
    with pytest.raises(PushError, match="not an export artifact"):
        push(tmp_path, "curate-org/x")
    assert hub.calls == {}


def test_scrub_hides_token_shaped_strings_too():
    assert scrub(f"bad {FAKE_TOKEN}", None) == "bad hf_***"
    assert scrub("Authorization: Bearer abc.def", None) == "Authorization: Bearer ***"
    assert scrub("secret-value here", "secret-value") == "*** here"


def test_inspect_shows_counts_and_summarised_images(artifact, capsys):
    assert main(["inspect", str(artifact), "-n", "100"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"<image \d+x\d+ JPEG>", out)
    assert "vqa_rad" in out and "firstaidqa" in out and "\\x" not in out and "b'" not in out
    totals = dict(re.findall(r"(train|test)\s+│\s+\(all\)\s+│\s+(\d+)", out))
    assert sum(map(int, totals.values())) == 80
    assert main(["inspect", str(artifact / "data")]) == 2


def test_licence_gate_refuses_a_dry_run_and_a_push_naming_the_sources(restricted, monkeypatch, hf_env, capsys):
    hub = FakeHub(monkeypatch)
    assert main(["push", str(restricted), "--repo", "curate-org/firstaid", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "refusing to push" in err and "would upload" not in err
    for name in ("firstaidqa-eval-40 (unknown)", "who-psychological-first-aid (all-rights-reserved)"):
        assert name in " ".join(err.split())
    assert "medquad-xml" not in err
    assert "--allow-license all-rights-reserved --allow-license unknown" in " ".join(err.split())
    with pytest.raises(PushRefused, match="rows from firstaidqa-eval-40 \\(unknown\\), who-psychological-first-aid "
                                          "\\(all-rights-reserved\\) carry a licence"):
        push(restricted, "curate-org/firstaid")
    with pytest.raises(PushRefused, match="rows from firstaidqa-eval-40 \\(unknown\\) carry"):
        push(restricted, "curate-org/firstaid", allow_licenses=["All Rights Reserved"])
    assert hub.calls == {}
    assert main(["push", str(restricted), "--repo", "curate-org/firstaid", "--dry-run",
                 "--allow-license", "all-rights-reserved", "--allow-license", "unknown"]) == 0
    assert "would upload to dataset curate-org/firstaid" in " ".join(capsys.readouterr().out.split())
    assert main(["push", str(restricted), "--repo", "curate-org/firstaid", "--allow-license", "all-rights-reserved",
                 "--allow-license", "unknown"]) == 0
    assert hub.calls["create_repo"]["private"] is True


def test_which_catalog_licences_block_publishing():
    blocked = {name for name, entry in load_catalog().items() if blocks_publishing(entry.license)}
    assert blocked == {"who-psychological-first-aid", "firstaidqa-eval-40", "first-aid-instructions",
                       "ifrc-first-aid-guidelines-2020", "dicom-local"}  # reserved, unknown, noncommercial-custom
    for lic in (None, "", "other", "cc-by-nd-4.0", "CC BY-NC-ND 4.0", "Proprietary"):
        assert blocks_publishing(lic), lic
    for lic in ("cc-by-nc-sa-3.0-igo", "CC0-1.0", "MIT License", "public-domain"):
        assert not blocks_publishing(lic), lic


@pytest.mark.parametrize("flags, existing, refused", [
    ([], None, None), (["--public"], None, None), ([], True, None), (["--public"], False, None),
    ([], False, "exists and is public, but a private push was asked for"),
    (["--public"], True, "exists and is private, but a public push was asked for"),
])
def test_private_by_default_and_an_existing_repo_of_the_other_visibility_is_refused(
        artifact, monkeypatch, hf_env, capsys, flags, existing, refused):
    hub = FakeHub(monkeypatch, private=existing)
    rc = main(["push", str(artifact), "--repo", "curate-org/firstaid-vqa", *flags])
    err = capsys.readouterr().err
    assert hub.calls["repo_info"]["args"] == ("curate-org/firstaid-vqa",)
    if refused:
        assert rc == 2 and refused in " ".join(err.split())
        assert set(hub.calls) == {"repo_info"}  # nothing created, nothing uploaded
    else:
        assert rc == 0, err
        assert hub.calls["create_repo"]["private"] is ("--public" not in flags)
        assert "create_commit" in hub.calls
    assert_no_token(err, hf_env.text)


def test_non_commercial_and_share_alike_head_the_card(tmp_path, realdata):
    pfa = SourceSpec(name="who-pfa", kind="pdf", license="CC BY-NC-SA 3.0 IGO", path=realdata / WHO_PFA, limit=2,
                     options={"engine": "pypdfium2"})  # the licence PROVENANCE.md and test_export give it
    page_qa = [make_qa(question=f"What does page {p['page']} say?", answer=p["text"][:400], source=p["source"],
                       license=p["license"], origin=p["provenance"]["origin"], locator=p["provenance"]["locator"])
               for p in read_source(pfa) if not isinstance(p, Reject)]
    medquad = SourceSpec(name="medquad", kind="medquad", license="cc-by-4.0", path=realdata / "qa/medquad/9_CDC_QA",
                         limit=10)
    card = (exported(tmp_path, [medquad], page_qa) / "README.md").read_text()
    body = card.split("\n---\n", 1)[1].strip().split("\n\n")
    assert body[:3] == [
        "# 01-ingest",
        "> **Non-commercial:** the licence of who-pfa (cc-by-nc-sa-3.0-igo) forbids commercial use of this data.",
        "> **Share-alike:** the licence of who-pfa (cc-by-nc-sa-3.0-igo) requires adaptations of this data to be "
        "shared under the same licence."]
    (tmp_path / "plain").mkdir()
    plain = (exported(tmp_path / "plain", [medquad]) / "README.md").read_text()
    assert "Non-commercial" not in plain and "Share-alike" not in plain
