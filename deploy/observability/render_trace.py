"""Draw one trace from Jaeger's query API as an SVG waterfall (the picture of a trace in the README).

    python deploy/observability/render_trace.py TRACE_ID [--query http://127.0.0.1:16686] > trace.svg

Each span is a row: its service and operation, a bar from its start to its end on the trace's
time axis, and the attributes that say what it did (the decision, the agent, the batch).
The Jaeger built by ``jaeger.sh`` serves the query API but not its UI's assets, hence this.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from typing import Any
from xml.sax.saxutils import escape

SHOWN = (
    ("agentlog.record", "record"),
    ("agentlog.decision", "decision"),
    ("agentlog.depth", "depth"),
    ("gen_ai.agent.name", "agent"),
    ("messaging.destination.name", "topic"),
    ("messaging.kafka.offset", "offset"),
    ("messaging.batch.message_count", "batch"),
    ("db.system.name", "db"),
)
COLORS = {"agentlog-sdk": "#3b6ea8", "agentlog-gate": "#d1603d", "agentlog-projector": "#6a9f58"}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("trace_id")
    parser.add_argument("--query", default="http://127.0.0.1:16686")
    args = parser.parse_args()
    with urllib.request.urlopen(f"{args.query}/api/traces/{args.trace_id}", timeout=10) as response:
        trace = json.load(response)["data"][0]
    sys.stdout.write(waterfall(trace))


def waterfall(trace: dict[str, Any]) -> str:
    spans = sorted(trace["spans"], key=lambda s: s["startTime"])
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    by_id = {s["spanID"]: s for s in spans}
    start = spans[0]["startTime"]
    end = max(s["startTime"] + s["duration"] for s in spans)
    total = max(end - start, 1)
    row, left, bar_w, width = 58, 230, 400, 1000
    height = 50 + row * len(spans)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica, Arial,'
        ' sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">trace {escape(trace["traceID"])}'
        f" — {len(spans)} spans, {total / 1000:.1f} ms</text>",
    ]
    for i, span in enumerate(spans):
        y = 40 + i * row
        service = services[span["processID"]]
        color = COLORS.get(service, "#8c6bb1")
        x = left + bar_w * (span["startTime"] - start) / total
        w = max(bar_w * span["duration"] / total, 2)
        tags = {t["key"]: t["value"] for t in span["tags"]}
        shown = ", ".join(f"{label}={tags[key]}" for key, label in SHOWN if key in tags)
        links = sum(1 for r in span["references"] if r["refType"] == "FOLLOWS_FROM")
        parents = [
            by_id[r["spanID"]] for r in span["references"] if r["refType"] == "CHILD_OF" and r["spanID"] in by_id
        ]
        parent = f"child of {services[parents[0]['processID']]}'s span" if parents else "root span"
        parts += [
            f'<text x="10" y="{y + 14}" font-weight="bold" fill="{color}">{escape(service)}</text>',
            f'<text x="10" y="{y + 28}">{escape(span["operationName"])}</text>',
            f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="16" fill="{color}" rx="2"/>',
            f'<text x="{left + bar_w + 10}" y="{y + 16}">{span["duration"] / 1000:.1f} ms · {parent}'
            + (f" · {links} link{'s' if links > 1 else ''}" if links else "")
            + "</text>",
            f'<text x="{left}" y="{y + 38}" fill="#555">{escape(shown)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
