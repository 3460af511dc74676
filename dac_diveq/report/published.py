"""Published figures of released codecs: reference rows a report shows beside its own runs.

They come from a JSON file (e.g. ``dac_diveq/data/corpora/librispeech_test_clean_published.json``,
the GPU reports' LibriSpeech test-clean figures): ``{"about": text, "figures": [{"codec", "kbps",
"values": {metric: value}, "test_set", "source"}, ...]}``. They are context, never tested: another
paper scored them on its own sample of the set with its own resampling.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..errors import DataError
from .runs import METRICS


@dataclass(frozen=True)
class PublishedFigure:
    """One released codec's scores at one bitrate, as a paper printed them.

    Attributes:
        codec: what was scored (model, configuration).
        kbps: its bitrate.
        values: metric name (the report's: ``pesq_wb``, ``stoi``, ...) -> value.
        test_set: the data the paper scored.
        source: the paper and table.
    """

    codec: str
    kbps: float
    values: Mapping[str, float]
    test_set: str
    source: str


@dataclass(frozen=True)
class Published:
    """A file of published figures: what they are (``about``) and the figures."""

    about: str
    figures: tuple[PublishedFigure, ...]


def load_published(path: str | Path) -> Published:
    """Read and check a published-figures file.

    Raises:
        DataError: unreadable, not JSON, or a figure without its codec, bitrate, test set and
            source, or with a metric the reports do not know or a value that is not a number
            (one line naming the file).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read published figures ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("figures"), list) or not data["figures"]:
        raise DataError(f"{path}: published figures need a non-empty 'figures' list")
    figures = []
    for i, item in enumerate(data["figures"]):
        where = f"{path}: figure {i + 1}"
        if not isinstance(item, dict):
            raise DataError(f"{where} is not an object")
        missing = [k for k in ("codec", "kbps", "values", "test_set", "source") if not item.get(k)]
        if missing:
            raise DataError(f"{where} lacks {', '.join(missing)}")
        values = item["values"]
        if not isinstance(values, dict):
            raise DataError(f"{where}: 'values' must map metric names to numbers")
        unknown = sorted(set(values) - set(METRICS))
        if unknown:
            raise DataError(f"{where}: unknown metrics {unknown}")
        numbers = [values[k] for k in values] + [item["kbps"]]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise DataError(f"{where}: 'kbps' and every value must be finite numbers")
        figures.append(PublishedFigure(str(item["codec"]), float(item["kbps"]),
                                       {k: float(v) for k, v in values.items()}, str(item["test_set"]),
                                       str(item["source"])))
    return Published(str(data.get("about", "")), tuple(figures))
