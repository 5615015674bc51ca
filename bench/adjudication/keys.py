"""The key file: the study's secret, units and packets, with the HMAC-SHA256 tokens and row signatures
that tie a returned packet to its export."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promedical.bench.adjudication.errors import AdjudicationError
from promedical.bench.adjudication.units import Unit

KEY_FORMAT = "promedical-bench adjudication key"
KEY_VERSION = 1
KEY_FILE = "key.json"
QUEUE_KEY_FILE = "adjudication-key.json"


def canonical(text: Any) -> str:
    """What is compared and signed: line endings normalised and surrounding whitespace trimmed."""
    value = "" if text is None else str(text)
    return value.replace("\r\n", "\n").replace("\r", "\n").strip()


def row_mac(secret: bytes, study: str, packet: str, row_id: str, unit: str, swap: bool, cells: dict[str, str]
            ) -> str:
    message = json.dumps([study, packet, row_id, unit, swap, {k: canonical(v) for k, v in sorted(cells.items())}],
                         ensure_ascii=False, separators=(",", ":"))
    return hmac.new(secret, message.encode("utf-8"), hashlib.sha256).hexdigest()


def token(secret: bytes, *parts: str, length: int = 12) -> str:
    return hmac.new(secret, "|".join(parts).encode("utf-8"), hashlib.sha256).hexdigest()[:length]


@dataclass
class Study:
    """The content of a key file, in memory."""

    kind: str
    study_id: str
    secret: bytes
    items: dict[str, dict[str, Any]]
    responses: dict[str, dict[str, dict[str, Any]]]
    display: dict[str, Any]
    units: dict[str, Unit]
    packets: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def cells(self, unit: Unit, swap: bool, previous: str | None = None) -> dict[str, str]:
        shown = list(unit.responses[::-1] if swap else unit.responses)
        texts = [self.display["responses"][unit.item_id][r] for r in shown]
        cells = {"task": unit.task, "prompt": self.display["prompts"][unit.item_id],
                 "criterion": self.display["criteria"][unit.item_id][unit.criterion_id],
                 "criterion_type": unit.criterion_type, "response_a": texts[0],
                 "response_b": texts[1] if len(texts) > 1 else ""}
        if previous is not None:
            cells["previous_ratings"] = previous
        return cells

    def to_json(self) -> dict[str, Any]:
        return {"format": KEY_FORMAT, "version": KEY_VERSION, "kind": self.kind, "study_id": self.study_id,
                "secret": self.secret.hex(), **self.extra, "items": self.items, "responses": self.responses,
                "display": self.display, "units": {u.id: u.as_dict() for u in self.units.values()},
                "packets": self.packets}


def load_key(path: str | Path) -> Study:
    """Read and check a key file written by :func:`export_study` or :func:`import_study`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AdjudicationError([f"{path}: no such key file"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdjudicationError([f"{path}: not a key file (invalid JSON: {error})"]) from None
    if not isinstance(data, dict) or data.get("format") != KEY_FORMAT:
        raise AdjudicationError([f"{path}: not a promedical-bench adjudication key file"])
    if data.get("version") != KEY_VERSION:
        raise AdjudicationError([f"{path}: key version {data.get('version')!r}; this version reads {KEY_VERSION}"])
    try:
        units = {uid: Unit.from_dict(uid, u) for uid, u in data["units"].items()}
        extra = {k: v for k, v in data.items() if k not in {"format", "version", "kind", "study_id", "secret", "items",
                                                           "responses", "display", "units", "packets"}}
        return Study(data["kind"], data["study_id"], bytes.fromhex(data["secret"]), data["items"], data["responses"],
                     data["display"], units, data["packets"], extra)
    except (KeyError, TypeError, ValueError) as error:
        raise AdjudicationError([f"{path}: incomplete key file ({type(error).__name__}: {error})"]) from None
