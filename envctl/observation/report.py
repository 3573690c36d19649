"""The start-up report: one self-contained HTML page with an SVG Gantt chart of the timeline."""
from __future__ import annotations

from html import escape
from pathlib import Path

from envctl.observation.timeline import Row, Timeline

REPORT_FILE = "report.html"
COLOURS = {"image": "#9aa5b1", "pull": "#8e6fd8", "push": "#c38fd8", "create": "#f0b429", "start": "#3e8ed0", "wait": "#7bc67b"}
LABEL_WIDTH, CHART_WIDTH, ROW_HEIGHT, TOP = 190, 760, 24, 30


def write_report(directory: Path, timeline: Timeline, title: str) -> Path:
    path = directory / REPORT_FILE
    path.write_text(render(timeline, title), encoding="utf-8")
    return path


def render(timeline: Timeline, title: str) -> str:
    rows = timeline.rows
    height = TOP + ROW_HEIGHT * len(rows) + 30
    scale = CHART_WIDTH / max(timeline.total, 0.001)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LABEL_WIDTH + CHART_WIDTH + 20}" height="{height}" '
           f'role="img" aria-label="start-up timeline">']
    step = _tick_step(timeline.total)
    tick = 0.0
    while tick <= timeline.total + 1e-9:
        x = LABEL_WIDTH + tick * scale
        svg.append(f'<line x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{height - 24}" class="grid"/>'
                   f'<text x="{x:.1f}" y="{TOP - 10}" class="tick">{tick:g}s</text>')
        tick += step
    for index, row in enumerate(rows):
        svg.append(_row(row, TOP + index * ROW_HEIGHT, scale))
    legend_y = height - 8
    for offset, (phase, colour) in enumerate(COLOURS.items()):
        x = LABEL_WIDTH + offset * 110
        svg.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colour}"/>'
                   f'<text x="{x + 16}" y="{legend_y}" class="legend">{phase}</text>')
    svg.append(f'<text x="{LABEL_WIDTH + len(COLOURS) * 110}" y="{legend_y}" class="legend critical-legend">'
               f'red outline: critical path</text></svg>')
    table = "".join(
        f'<tr class="{"critical" if r.critical else ""}{" failed" if r.failed else ""}"><td>{escape(r.name)}</td>'
        f'<td>{"failed" if r.failed else (f"{r.ready_at:.2f}s" if r.ready_at is not None else "-")}</td>'
        f'<td>{escape(r.result)}</td></tr>'
        for r in timeline.service_rows())
    path = " &rarr; ".join(escape(name) for name in timeline.critical_path) or "-"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
 body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1f2933; }}
 h1 {{ font-size: 20px; margin: 0 0 4px; }} .meta {{ color: #52606d; margin-bottom: 16px; }}
 .grid {{ stroke: #e4e7eb; }} .tick, .legend {{ font-size: 11px; fill: #52606d; }}
 .label {{ font-size: 12px; fill: #1f2933; }} .label.critical {{ font-weight: 700; fill: #c81e1e; }}
 .bar.critical rect.span {{ stroke: #c81e1e; stroke-width: 2; }} .failed-mark {{ fill: #c81e1e; }}
 table {{ border-collapse: collapse; margin-top: 16px; }} td, th {{ padding: 3px 10px; border-bottom: 1px solid #e4e7eb; text-align: left; }}
 tr.critical td:first-child {{ color: #c81e1e; font-weight: 700; }} tr.failed td {{ color: #c81e1e; }}
</style></head><body>
<h1>{escape(title)}</h1>
<div class="meta">run <b>{escape(timeline.run)}</b> &middot; started {escape(timeline.started)} &middot;
all ready after <b>{timeline.total:.2f}s</b> &middot; critical path: {path}</div>
{"".join(svg)}
<table><tr><th>service</th><th>ready at</th><th>readiness</th></tr>{table}</table>
</body></html>
"""


def _row(row: Row, y: int, scale: float) -> str:
    kind = "bar" if row.kind == "service" else "image-bar"
    classes = f"{kind}{' critical' if row.critical else ''}{' failed' if row.failed else ''}"
    label = row.name if row.kind == "service" else f"image {row.name}"
    parts = [f'<g class="{classes}" data-name="{escape(row.name)}">',
             f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end" '
             f'class="label{" critical" if row.critical else ""}">{escape(label)}</text>']
    for span in row.spans:
        x = LABEL_WIDTH + span.start * scale
        width = max(span.seconds * scale, 1.5)
        parts.append(f'<rect class="span" x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="{ROW_HEIGHT - 8}" '
                     f'fill="{COLOURS[span.phase]}"><title>{escape(row.name)} {span.phase}: '
                     f'{span.seconds:.2f}s</title></rect>')
    if row.failed:
        x = LABEL_WIDTH + row.end * scale
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" class="failed-mark">failed</text>')
    parts.append("</g>")
    return "".join(parts)


def _tick_step(total: float) -> float:
    for step in (0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120):
        if total / step <= 12:
            return step
    return 300.0
