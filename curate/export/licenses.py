"""Which licence a dataset mixing several sources must carry.

Consumes the licence strings on rows and in the source catalog, however spelt ("CC BY-NC-SA 4.0", "CC0-1.0", "MIT
License"); produces a ``LicenseDecision``: the licence for the card's YAML (a Hub licence id, or ``other``), each
source's normalised licence and the warnings the card must show.

Every known licence imposes a set of conditions on a derived dataset (attribution, share-alike, non-commercial,
no-derivatives); ``TABLE`` lists them from least to most restrictive. A mix must meet every condition of every source,
so it carries the most restrictive source licence whose conditions cover them all. When no source licence does (e.g.
cc-by-sa-4.0 mixed with cc-by-nc-4.0) it carries the newest licence in the table with exactly those conditions, with a
warning to check compatibility. A licence that is not in the table, or none at all, makes the card say ``other`` with
a warning naming the sources; so does ``all-rights-reserved`` material, with a warning that it may not be
redistributed. CC 3.0 licences (the IGO ones too) allow adaptations under a later version with the
same elements, so WHO's cc-by-nc-sa-3.0-igo material is published under cc-by-nc-sa-4.0.

``blocks_publishing`` says which licences a push must refuse (all rights reserved, no-derivatives, unknown: none
given, ``other`` or a licence not in the table); ``notices`` the non-commercial and share-alike lines that head a card.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

BY, SA, NC, ND = "attribution", "share-alike", "non-commercial", "no-derivatives"
RESERVED = "all-rights-reserved"

# licence id -> conditions, least to most restrictive; among equals the later entry wins.
TABLE: dict[str, frozenset[str]] = {
    "public-domain": frozenset(),
    "unlicense": frozenset(),
    "pddl": frozenset(),
    "cc0-1.0": frozenset(),
    "mit": frozenset({BY}),
    "bsd-2-clause": frozenset({BY}),
    "bsd-3-clause": frozenset({BY}),
    "apache-2.0": frozenset({BY}),
    "odc-by": frozenset({BY}),
    "cc-by-3.0": frozenset({BY}),
    "cc-by-4.0": frozenset({BY}),
    "odbl": frozenset({BY, SA}),
    "cc-by-sa-3.0": frozenset({BY, SA}),
    "cc-by-sa-4.0": frozenset({BY, SA}),
    "cc-by-nc-3.0": frozenset({BY, NC}),
    "cc-by-nc-4.0": frozenset({BY, NC}),
    "cc-by-nc-sa-3.0": frozenset({BY, NC, SA}),
    "cc-by-nc-sa-3.0-igo": frozenset({BY, NC, SA}),
    "cc-by-nc-sa-4.0": frozenset({BY, NC, SA}),
    "cc-by-nd-4.0": frozenset({BY, ND}),
    "cc-by-nc-nd-4.0": frozenset({BY, NC, ND}),
}
# Table entries that are not Hub licence ids, and what a card says instead.
HUB_ID = {"public-domain": "other", "cc-by-nc-sa-3.0-igo": "cc-by-nc-sa-4.0"}
ALIASES = {
    "cc0": "cc0-1.0", "cc-zero": "cc0-1.0", "pd": "public-domain", "us-government-work": "public-domain",
    "us-public-domain": "public-domain", "apache": "apache-2.0", "apache2": "apache-2.0", "bsd": "bsd-3-clause",
    "odc-odbl": "odbl", "odc-pddl": "pddl", "proprietary": RESERVED, "copyright": RESERVED,
}


@dataclass
class LicenseDecision:
    license: str
    license_name: str | None
    per_source: dict[str, str | None]
    conditions: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def normalise(text: str | None) -> str | None:
    """The table id for a licence string, or None when it is unknown."""
    if not text:
        return None
    key = re.sub(r"[\s_/]+", "-", text.strip().lower())
    key = re.sub(r"(^|-)licen[cs]e(-|$)", r"\1", key).strip("-")
    key = re.sub(r"-+", "-", key.replace("cc-0", "cc0"))
    key = ALIASES.get(key, key)
    return key if key in TABLE or key == RESERVED else None


def decide(licenses: dict[str, str | None]) -> LicenseDecision:
    """The licence for a mix of sources, given each source's licence string ({source name: licence})."""
    per_source = {name: normalise(lic) for name, lic in licenses.items()}
    known = [lic for lic in per_source.values() if lic in TABLE]
    needed = frozenset().union(*(TABLE[lic] for lic in known))
    chosen, warnings = _mix(known, needed)
    card = HUB_ID.get(chosen, chosen) if chosen else "other"
    name = chosen if card == "other" and chosen else None
    reserved = sorted(n for n, lic in per_source.items() if lic == RESERVED)
    unknown = sorted(n for n, lic in per_source.items() if lic is None)
    if reserved:
        card, name = "other", RESERVED
        warnings.append(f"source(s) {', '.join(reserved)} are all rights reserved: their material may not be "
                        "redistributed; leave them out of a dataset you publish")
    if unknown:
        card, name = "other", name if reserved else "mixed, see the sources table"
        given = ", ".join(f"{n} ({licenses[n] or 'none given'})" for n in unknown)
        warnings.append(f"unknown licence for source(s) {given}: the card says 'other'; check their terms before "
                        "using or publishing this dataset")
    warnings += [f"source {n} is {lic}: no-derivatives material may not be shared in adapted form"
                 for n, lic in per_source.items() if ND in TABLE.get(lic, ())]
    notes = [f"{chosen} material is shared under {card}: a CC 3.0 licence lets adaptations use a later version with "
             "the same licence elements"] if chosen in HUB_ID and card == HUB_ID[chosen] != "other" else []
    return LicenseDecision(card, name, per_source, sorted(needed), warnings, notes)


def _mix(known: list[str], needed: frozenset[str]) -> tuple[str | None, list[str]]:
    """The table licence for the known licences, and a warning when no single one of them covers the others."""
    if not known:
        return None, []
    chosen = _covering(known, needed)
    if chosen is not None:
        return chosen, []
    chosen = next((lic for lic in reversed(TABLE) if TABLE[lic] == needed and lic not in HUB_ID), None)
    return chosen, [f"no source licence covers every condition ({', '.join(sorted(needed))}); the mix is marked "
                    f"{chosen or 'other'}: check that {', '.join(sorted(set(known)))} may be combined"]


def _covering(known: list[str], needed: frozenset[str]) -> str | None:
    """The most restrictive of the ``known`` licences whose conditions include ``needed``."""
    order = list(TABLE)
    covering = [lic for lic in known if TABLE[lic] >= needed]
    return max(covering, key=order.index) if covering else None


def key(text: str | None) -> str:
    """A licence string as compared by ``--allow-license``: the table id, else the text lower-cased, else unknown."""
    return normalise(text) or (text.strip().lower() if text and text.strip() else "unknown")


def blocks_publishing(text: str | None) -> bool:
    """Whether rows under this licence may not be published: all rights reserved, no-derivatives or unknown terms."""
    lic = normalise(text)
    return lic is None or lic == RESERVED or ND in TABLE[lic]


def notices(decision: LicenseDecision) -> list[str]:
    """One line each for the non-commercial and the share-alike conditions of a mix, naming the sources that set it."""
    lines = []
    for condition, text in ((NC, "**Non-commercial:** the licence of {} forbids commercial use of this data"),
                            (SA, "**Share-alike:** the licence of {} requires adaptations of this data to be shared "
                                 "under the same licence")):
        names = sorted(n for n, lic in decision.per_source.items() if condition in TABLE.get(lic, ()))
        if names:
            lines.append(text.format(", ".join(f"{n} ({decision.per_source[n]})" for n in names)))
    return lines
