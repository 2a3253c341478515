"""Dataset cards: who made a dataset, under which licence, what it is and how to cite it.

A card lives in the metadata (``metadata["card"]``: ``license``, an SPDX expression checked against the SPDX
list; ``authors``; ``description``; ``task``; ``citation``; ``tags``) and is written out as a ``README.md``
with YAML front matter, the Hugging Face convention that LeRobot and the Hub use: inside a dataset that is
a folder, beside one that is a file (``NAME.README.md``). The card is about the data, not the data: editing
it leaves the content digest as it was.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError

FIELDS = ("license", "authors", "description", "task", "citation", "tags")
#: A card's text fields may hold this many characters...
MAX_TEXT = 64 * 1024
#: ... and a README.md is read up to this many bytes (a larger one is refused unread).
MAX_README = 4 * MAX_TEXT
_LISTS = ("authors", "tags")


def check(card: Any) -> dict[str, Any]:
    """The card with its licence normalised (``mit`` -> ``MIT``); a ``UsageError`` naming what is wrong
    with it otherwise."""
    if not isinstance(card, Mapping):
        raise UsageError(f"a card is a JSON object of {', '.join(FIELDS)}, not {type(card).__name__}")
    unknown = sorted(set(card) - set(FIELDS))
    if unknown:
        raise UsageError(f"a card holds {', '.join(FIELDS)}; not {', '.join(map(repr, unknown))}")
    out: dict[str, Any] = {}
    for key, value in card.items():
        if key in _LISTS:
            if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= MAX_TEXT for v in value):
                raise UsageError(f"the card's {key} must be a list of texts")
        elif not isinstance(value, str) or len(value) > MAX_TEXT:
            raise UsageError(f"the card's {key} must be a text of at most {MAX_TEXT:,} characters")
        out[key] = value
    if "license" in out:
        out["license"] = spdx(out["license"])
    return out


def spdx(expression: str) -> str:
    """An SPDX licence expression (``MIT``, ``CC-BY-4.0``, ``Apache-2.0 OR MIT``), normalised; an unknown
    licence is a ``UsageError``."""
    from license_expression import get_spdx_licensing

    try:
        found = get_spdx_licensing().validate(expression, strict=True)
    except Exception:  # license-expression itself fails on some malformed text (control characters)
        raise UsageError(f"{expression!r} is not an SPDX licence expression; see https://spdx.org/licenses/ (for "
                         "example MIT, Apache-2.0, CC-BY-4.0)") from None
    if found.errors or not found.normalized_expression:
        raise UsageError(f"{expression!r} is not an SPDX licence expression ({'; '.join(found.errors)}); see "
                         "https://spdx.org/licenses/ (for example MIT, Apache-2.0, CC-BY-4.0)")
    return str(found.normalized_expression)


def readme_path(dataset: Path) -> Path:
    """Where a dataset's card is written: inside a folder, beside a file."""
    return dataset / "README.md" if dataset.is_dir() else dataset.with_name(dataset.name + ".README.md")


def render(card: Mapping[str, Any], summary: Mapping[str, Any], name: str) -> str:
    """The card as a README.md: YAML front matter (the Hub's ``license`` and ``tags``, and the whole card),
    then the description, the figures ``info`` computes, the authors and the citation."""
    front = {"license": card["license"].lower() if "license" in card else None, "tags": card.get("tags"),
             "expertdata": {"card": dict(card), "digest": summary.get("digest")}}
    lines = ["---", *[f"{k}: {json.dumps(v)}" for k, v in front.items() if v is not None], "---", "", f"# {name}", ""]
    if card.get("description"):
        lines += [card["description"], ""]
    returns = summary.get("episode_returns")
    shown = ("no rewards" if returns is None else
             f"{returns['min']:.6g} to {returns['max']:.6g}, mean {returns['mean']:.6g}")
    lines += ["## Contents", "", f"- env: {summary.get('env_id') or 'not recorded'}",
              f"- task: {card.get('task') or 'not given'}",
              f"- {summary['episodes']:,} episodes, {summary['transitions']:,} transitions", f"- returns: {shown}",
              f"- content digest: `{summary.get('digest')}` (`expertdata verify`)", ""]
    if card.get("authors"):
        lines += ["## Authors", "", *[f"- {a}" for a in card["authors"]], ""]
    if card.get("citation"):
        lines += ["## Citation", "", "```bibtex", card["citation"], "```", ""]
    lines += [f"Licence: {card.get('license', 'not given')}.", ""]
    return "\n".join(lines)


def parse(text: str, where: Any = "README.md") -> dict[str, Any]:
    """The card a README.md's front matter holds (ours in full; a Hub card's ``license`` and ``tags``); YAML
    parsed by the guard (no aliases, bounded depth)."""
    from . import guard

    if not text.startswith("---"):
        return {}
    _, _, rest = text[:MAX_README].partition("\n")
    front, sep, _ = rest.partition("\n---")
    if not sep:
        return {}
    data = guard.parse_yaml(front, f"{where}: front matter", limit=MAX_README)
    if not isinstance(data, dict):
        return {}
    ours = (data.get("expertdata") or {}).get("card") if isinstance(data.get("expertdata"), dict) else None
    if isinstance(ours, dict):
        return check(ours)
    found = {k: data[k] for k in ("license", "tags") if k in data}
    if isinstance(found.get("tags"), str):
        found["tags"] = [found["tags"]]
    try:
        return check(found)
    except UsageError:  # a Hub card may name a licence outside SPDX ("other"): shown as it is written
        return {k: (v if isinstance(v, list) else str(v)) for k, v in found.items()}
