"""The pii stage: e-mails, phones and URLs scrubbed; dosages, ranges, dates and help lines left alone."""

from __future__ import annotations

import re

import pytest

from curate.ingest import SourceSpec, read_source
from curate.quality.pii import PII, scrub
from curate.schema import COLUMNS, make_page, make_qa
from curate.stage import DROP, columns


@pytest.mark.parametrize("text, expected", [
    ("Write to dr.jane.smith+clinic@st-marys.nhs.uk for an appointment.", "Write to <EMAIL> for an appointment."),
    ("Call (404) 639-1075 or 770.488.7100 or +44 20 7946 0958 today.", "Call <PHONE> or <PHONE> or <PHONE> today."),
    ("Ring 1-404-639-3311, then ask for the duty nurse.", "Ring <PHONE>, then ask for the duty nurse."),
    ("See https://www.cdc.gov/mmwr/preview/mmwrhtml/rr5504a1.htm.", "See <URL>."),
    ("More at www.redcross.org/take-a-class!", "More at <URL>!"),
])
def test_scrubs(text, expected):
    assert scrub(text)[0] == expected


@pytest.mark.parametrize("text", [
    "Take 2-3 times a day, 100-120 compressions per minute, 100-1000 IU daily.",
    "Seen on 2021-03-04 at 10:30; depress the breastbone 1 1/2 to 2 inches, 30:2.",
    "Call 911, 112 or 999; in the US, 1-800 numbers are free.",
    "Poison control: 1-800-222-1222. CDC-INFO: 800-232-4636.",
    "The cdc.gov site explains it. Dose 0.5 mg/kg every 4-6 hours, max 4 g/day.",
    "ICD-10 code S06.0X1A; blood pressure 120/80 mmHg; pH 7.35-7.45.",
])
def test_leaves_medical_numbers_and_help_lines(text):
    assert scrub(text) == (text, {"email": 0, "url": 0, "phone": 0})


def test_toll_free_lines_can_be_scrubbed_too():
    assert scrub("Call 1-800-222-1222.", keep_toll_free=False)[0] == "Call <PHONE>."


def row(question: str, answer: str) -> dict:
    return make_qa(question=question, answer=answer, source="t", license=None, origin="t", locator="0")


def test_stage_scrubs_answers_counts_and_never_drops():
    rows = [row("Email me at a@b.com?", "Write to help@clinic.org or call 404-639-1075."),
            row("What dose?", "Give 500 mg every 4-6 hours."),
            make_page(text="mail x@y.org", doc_id="d", page=1, source="t", license=None, origin="t")]
    stage = PII()
    out = stage(columns(rows, COLUMNS))
    assert DROP not in out
    assert out["messages"][0][0]["content"] == "Email me at a@b.com?"        # user turns: not by default
    assert out["messages"][0][1]["content"] == "Write to <EMAIL> or call <PHONE>."
    assert out["messages"][1] == rows[1]["messages"]
    assert out["text"][2] == "mail x@y.org"                                  # pages are not conversations
    assert dict(stage.counters) == {"pii_email": 1, "pii_phone": 1, "pii_url": 0, "pii_rows": 1}
    stage = PII({"roles": ["user", "assistant"]})
    assert stage(columns(rows[:1], COLUMNS))["messages"][0][0]["content"] == "Email me at <EMAIL>?"


def test_real_medquad_answers(realdata):
    spec = SourceSpec(name="medquad", kind="medquad", path=realdata / "qa" / "medquad", license="cc-by-4.0")
    rows = [r for r in read_source(spec) if isinstance(r, dict)]
    before = "\n".join(m["content"] for r in rows for m in r["messages"] if m["role"] == "assistant")
    stage = PII()
    out = stage(columns(rows, COLUMNS))
    after = "\n".join(m["content"] for ms in out["messages"] for m in ms if m["role"] == "assistant")
    assert "404-639-1075" in before and "http" in before
    assert not re.search(r"https?://|www\.|\b\d{3}-\d{3}-\d{4}\b(?<!800-232-4636)", after)
    assert "800-232-4636" in after                          # CDC-INFO, a toll-free public help line
    assert stage.counters["pii_phone"] >= 10 and stage.counters["pii_url"] >= 10
    assert after.count("<PHONE>") == stage.counters["pii_phone"]
    assert re.findall(r"\d+(?:\.\d+)?\s?(?:mg|mL|%)", before) == re.findall(r"\d+(?:\.\d+)?\s?(?:mg|mL|%)", after)
