"""The report as JSON: the `Report` dataclass as it is, plus its derived figures
(pass ratios, number of runs); times in ISO 8601, UTC."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from exporters.report.data import Report


def report_dict(report: Report) -> dict[str, Any]:
    data = asdict(report)
    for name in ("now", "start"):
        compliance = getattr(report, name)
        if compliance is not None:
            data[name]["pass_ratio"] = compliance.pass_ratio
    data["health"]["runs"] = report.health.runs
    return data


def render_json(report: Report) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        return str(value)

    return json.dumps(report_dict(report), indent=2, default=default) + "\n"
