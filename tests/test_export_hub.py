"""``curate push`` and ``curate inspect`` on a real export (FirstAidQA pairs and VQA-RAD questions).

The Hub's servers cannot exist here, so the ``HfApi`` methods are replaced at their boundary (the only mock): the test
checks what would be sent (the repo, the branch, the exact file set, the stale shards deleted) and that a fake token
set in HF_TOKEN never shows in logs, stdout, stderr, the artifact or an error, even when the upload fails with the
token in its message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi

from curate.cli import main
from curate.export.artifact import ExportOptions, export
from curate.export.hub import PushError, PushFailed, push, scrub
from curate.ingest.base import SourceSpec
from curate.runner import ingest

FAKE_TOKEN = "hf_FakeTokenForTests0123456789abcdefXYZ"
STALE = "data/train-00003-of-00009.parquet"


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, realdata) -> Path:
    tmp = tmp_path_factory.mktemp("hub")
    ingest([SourceSpec(name="firstaidqa", kind="hf_qa", license="cc-by-4.0",
                       path=realdata / "qa/firstaidqa/firstaidqa_v1.json", limit=40),
            SourceSpec(name="vqa_rad", kind="vqa", license="CC0-1.0", path=realdata / "vqa/vqa_rad", limit=40)],
           tmp / "01-ingest")
    export(tmp / "01-ingest", tmp / "ds", ExportOptions(fractions={"train": 0.8, "test": 0.2}))
    return tmp / "ds"


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


class FakeHub:
    """Stands in for the Hub's servers: records every call the HfApi methods make."""

    def __init__(self, monkeypatch, fail_with: str | None = None):
        self.calls: dict[str, dict] = {}
        self.tokens: set[str] = set()
        self.fail_with = fail_with
        for name in ("create_repo", "create_branch", "list_repo_files", "create_commit"):
            monkeypatch.setattr(HfApi, name, self._method(name))

    def _method(self, name):
        def method(api, *args, **kwargs):
            self.tokens.add(api.token)
            self.calls[name] = {"args": args, **kwargs}
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
