"""``pii``: replace e-mail addresses, phone numbers and web addresses in conversations with placeholders.

A map stage: it never drops a row. Applies to ``qa`` and ``vqa`` rows; ``roles`` picks which turns are scrubbed
(default the assistant's: scraped answers carry signatures, clinic phone numbers and links). Consumes ``kind``,
``messages``; rewrites ``messages``. Counters: ``pii_email``, ``pii_phone``, ``pii_url`` (replacements) and
``pii_rows`` (rows changed).

What counts:

- e-mail: ``name@domain.tld``  -> ``<EMAIL>``
- URL: ``http(s)://...`` or ``www....`` (trailing punctuation stays outside) -> ``<URL>``. Bare domain names such as
  ``cdc.gov`` are kept: they name an organisation, not a person.
- phone: a number written like a phone number, 8 to 15 digits: ``+`` country code and digit groups
  (``+44 20 7946 0958``), or the North American ``(555) 123-4567`` / ``555-123-4567`` / ``555.123.4567`` /
  ``1-555-123-4567`` -> ``<PHONE>``. Dosages, ranges, dates and times ("2-3 times a day", "100-120 per minute",
  "100-1000 IU", "2021-03-04", "1 1/2 inches", "1-800") never match: too few digits or not a phone's grouping; a
  bare local "555-1234" is kept for the same reason. Toll-free help lines (``1-800-222-1222``: 800, 888, 877, 866,
  855, 844, 833) are public safety information and are kept unless ``keep_toll_free`` is false; short emergency
  numbers (911, 112, 999) are never phone-shaped.

Example::

    - stage: pii
      roles: [assistant]         # or [user, assistant]
      keep_toll_free: true
"""

from __future__ import annotations

import re
from typing import Literal

from curate.stage import Stage, StageConfig

PLACEHOLDERS = {"email": "<EMAIL>", "url": "<URL>", "phone": "<PHONE>"}
TOLL_FREE = ("800", "888", "877", "866", "855", "844", "833")

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]]", re.IGNORECASE)
PHONE = re.compile(
    r"(?<![\w+/.-])(?:"
    r"\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}"                                  # international: +44 20 7946 0958
    r"|(?:1[ .-])?(?:\(\d{3}\)\s?|\d{3}[ .-])\d{3}[ .-]\d{4}"                 # North American with separators
    r")(?![\w/-]|\.\d)")


class PIIConfig(StageConfig):
    roles: list[Literal["system", "user", "assistant"]] = ["assistant"]
    keep_toll_free: bool = True


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def is_toll_free(number: str) -> bool:
    """A North American toll-free number (with or without the leading 1)."""
    digits = _digits(number)
    digits = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
    return len(digits) == 10 and digits[:3] in TOLL_FREE


def is_personal_phone(number: str, keep_toll_free: bool = True) -> bool:
    """A phone-shaped match to scrub: 8-15 digits and, with ``keep_toll_free``, not a toll-free help line."""
    return 8 <= len(_digits(number)) <= 15 and not (keep_toll_free and is_toll_free(number))


def scrub(text: str, keep_toll_free: bool = True) -> tuple[str, dict[str, int]]:
    """``text`` with e-mails, URLs and phone numbers replaced; returns it and the count of each kind replaced."""
    counts = {"email": 0, "url": 0, "phone": 0}

    def replace(kind: str):
        def sub(match: re.Match) -> str:
            if kind == "phone" and not is_personal_phone(match.group(0), keep_toll_free):
                return match.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]
        return sub

    for kind, pattern in (("email", EMAIL), ("url", URL), ("phone", PHONE)):
        text = pattern.sub(replace(kind), text)
    return text, counts


class PII(Stage):
    name = "pii"
    Config = PIIConfig
    inputs = ("kind", "messages")

    def process_batch(self, batch: dict[str, list]) -> dict[str, list]:
        out = []
        for kind, messages in zip(batch["kind"], batch["messages"]):
            out.append(self._scrub_messages(messages) if kind in ("qa", "vqa") and messages else messages)
        return {**batch, "messages": out}

    def _scrub_messages(self, messages: list[dict]) -> list[dict]:
        changed, result = False, []
        for m in messages:
            if m["role"] in self.config.roles and m["content"]:
                text, counts = scrub(m["content"], self.config.keep_toll_free)
                for kind, n in counts.items():
                    self.counters[f"pii_{kind}"] += n
                changed |= text != m["content"]
                m = {**m, "content": text}
            result.append(m)
        self.counters["pii_rows"] += changed
        return result
