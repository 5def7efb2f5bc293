"""`gala diff`: two runs side by side, per phase and link, and whether each change is beyond noise.

Rates, error ratios and percentiles of run A and run B, with the change. Whether a latency change is
real uses the gate's noise model (`gala.gate.noise`): each run's per-second percentiles summarised by
their median ("the median second's p95"), its standard error by a block bootstrap within each phase,
the two errors in quadrature times `noise_z`, and at least one latency bucket. The whole-phase
percentiles (from the merged histograms) are shown beside it, labelled as such: they are not the same
figure. An error ratio's change is beyond noise when it exceeds `noise_z` binomial standard errors.
The report is a list of blocks (`gala.contract.document`) rendered as Markdown and HTML, with a chart
of both runs' per-second p95 per link.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gala.contract.atomic import write_bytes_atomic, write_text_atomic
from gala.contract.document import Block, Bullets, Chart, Heading, Para, Table, num, render_html, render_markdown
from gala.contract.results import ALL, Run, load_run
from gala.gate.noise import compare_percentile, per_second_percentiles, percentile_noise_ms

PERCENTILES = ("p50_ms", "p95_ms", "p99_ms")
VERDICT = {"regressed": "slower (beyond noise)", "improved": "faster (beyond noise)", "unchanged": "within noise"}


@dataclass
class DiffResult:
    a: Run
    b: Run
    rates: pd.DataFrame     # phase, link, requests/req/s/error ratio of A and B, change, beyond noise
    latency: pd.DataFrame   # phase, link, whole-phase p50/p95/p99 of A and B, median per-second p95, verdict
    noise_z: float

    @property
    def beyond_noise(self) -> pd.DataFrame:
        """The latency rows whose median per-second p95 changed beyond noise."""
        return self.latency[self.latency["verdict"] != VERDICT["unchanged"]]


def _phases(a: Run, b: Run) -> list[str]:
    names = [p.name for p in a.info.phases] + [p.name for p in b.info.phases]
    return [*dict.fromkeys(names), ALL]


def _row(run: Run, phase: str, link: str) -> pd.Series | None:
    df = run.phase_link
    hit = df[(df["phase"] == phase) & (df["link"] == link)]
    return None if hit.empty else hit.iloc[0]


def _value(row: pd.Series | None, column: str) -> float:
    return float(row[column]) if row is not None and pd.notna(row[column]) else math.nan


def _change(a: float, b: float) -> float:
    return (b - a) / a if a and math.isfinite(a) and math.isfinite(b) else math.nan


def _error_beyond_noise(fa: float, na: float, fb: float, nb: float, z: float) -> bool:
    """Two-proportion test: the error ratios differ by more than z pooled binomial standard errors."""
    if not (na > 0 and nb > 0) or fa + fb == 0:
        return False
    p = (fa + fb) / (na + nb)
    se = math.sqrt(p * (1 - p) * (1 / na + 1 / nb))
    return abs(fb / nb - fa / na) > z * se


def _median_p95(run: Run, link: str, phase: str) -> tuple[float, float]:
    """The median second's p95 and its standard error (the gate's noise model)."""
    x, strata = per_second_percentiles(run, link, None if phase == ALL else phase, "p95_ms")
    if not np.isfinite(x).any():
        return math.nan, math.inf
    return float(np.nanmedian(x)), percentile_noise_ms(x, strata)


def diff_runs(a: Run, b: Run, noise_z: float = 3.0) -> DiffResult:
    """Compare run B against run A (the reference), per phase and link."""
    rates, latency = [], []
    links = sorted((set(a.phase_link["link"]) | set(b.phase_link["link"])) - {ALL})
    for phase in _phases(a, b):
        for link in links:
            ra, rb = _row(a, phase, link), _row(b, phase, link)
            if ra is None and rb is None:
                continue
            na, nb = _value(ra, "requests"), _value(rb, "requests")
            fa, fb = _value(ra, "failures"), _value(rb, "failures")
            ea, eb = (fa / na if na else math.nan), (fb / nb if nb else math.nan)
            rates.append({
                "phase": phase, "link": link, "requests A": na, "requests B": nb,
                "req/s A": _value(ra, "rps"), "req/s B": _value(rb, "rps"),
                "req/s change": _change(_value(ra, "rps"), _value(rb, "rps")),
                "error ratio A": ea, "error ratio B": eb,
                "errors": ("more (beyond noise)" if eb > ea else "fewer (beyond noise)")
                if _error_beyond_noise(fa, na, fb, nb, noise_z) else "within noise",
            })
            (ma, sa), (mb, sb) = _median_p95(a, link, phase), _median_p95(b, link, phase)
            if math.isfinite(ma) and math.isfinite(mb):
                status, change, noise = compare_percentile(mb, ma, sb, sa, 0.0, noise_z)
                verdict = VERDICT[status]
            else:
                change, noise, verdict = math.nan, math.nan, "not in both runs"
            row = {"phase": phase, "link": link}
            for col in PERCENTILES:
                row[f"{col[:-3]} A"], row[f"{col[:-3]} B"] = _value(ra, col), _value(rb, col)
            row.update({"median per-second p95 A": ma, "median per-second p95 B": mb, "change": change,
                        "noise ±ms": noise, "verdict": verdict})
            latency.append(row)
    return DiffResult(a=a, b=b, rates=pd.DataFrame(rates), latency=pd.DataFrame(latency), noise_z=noise_z)


def p95_chart(a: Run, b: Run) -> bytes | None:
    """Both runs' per-second p95 per link, one panel per link (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    links = [l for l in dict.fromkeys([*a.info.links, *b.info.links])
             if (a.timeseries["link"] == l).any() or (b.timeseries["link"] == l).any()]
    if not links:
        return None
    fig = Figure(figsize=(8.0, 1.9 * len(links) + 0.6))
    FigureCanvasAgg(fig)
    first = None
    for i, link in enumerate(links):
        ax = fig.add_subplot(len(links), 1, i + 1, sharex=first)
        first = first or ax
        for run, label, color in ((a, "A", "#2e86c1"), (b, "B", "#c0392b")):
            ts = run.timeseries[run.timeseries["link"] == link]
            ax.plot(ts["t_s"], ts["p95_ms"], color=color, lw=1.2, label=f"{label}: {run.run_id}")
        for p in a.info.phases:
            if p.started_s is not None:
                ax.axvline(p.started_s, color="#95a5a6", lw=0.8, ls=":")
        ax.set_ylabel(f"{link}\np95 ms")
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        if i == 0:
            ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("seconds since the run started (dotted: A's phase starts)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _signed(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.0%}"


def display(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as people read it: changes as signed percentages, ratios to 4 places, the rest as numbers."""
    out = frame.copy()
    for col in out.columns:
        if col in ("change", "req/s change"):
            out[col] = out[col].map(_signed)
        elif col.startswith("error ratio"):
            out[col] = out[col].map(lambda x: "n/a" if not math.isfinite(x) else f"{x:.4f}")
        elif col == "noise ±ms":
            out[col] = out[col].map(lambda x: "too few seconds" if not math.isfinite(x) else num(x))
        elif out[col].dtype.kind == "f":
            out[col] = out[col].map(num)
    return out


def diff_blocks(d: DiffResult) -> list[Block]:
    a, b = d.a, d.b
    notes = [f"A: {a.run_id} ({a.info.scenario.name}, --duration-scale {a.info.duration_scale:g}, {a.info.status})",
             f"B: {b.run_id} ({b.info.scenario.name}, --duration-scale {b.info.duration_scale:g}, {b.info.status})"]
    if a.info.scenario.sha256 != b.info.scenario.sha256:
        notes.append("the runs played different scenario files: compare with care")
    blocks: list[Block] = [
        Heading(f"gala diff: {b.run_id} against {a.run_id}", 1), Bullets(notes),
        Para(f"Latency: p50/p95/p99 are each whole phase's percentiles (from the merged histograms). The verdict is "
             f"on a different figure, the median per-second p95, as the gate's baseline uses it: a change is "
             f"beyond noise when it exceeds {d.noise_z:g} standard errors of both medians (block bootstrap of "
             f"the per-second values within each phase) and one latency bucket. `_all` is the whole run."),
        Heading("Latency per phase and link (ms)"), Table(display(d.latency)),
        Heading("Rates and errors per phase and link"),
        Para(f"An error ratio's change is beyond noise when it exceeds {d.noise_z:g} pooled binomial standard errors."),
        Table(display(d.rates)),
    ]
    png = p95_chart(a, b)
    if png is not None:
        blocks += [Heading("Per-second p95"), Chart("p95", "Per-second p95 of both runs, per link (log scale)", png)]
    return blocks


@dataclass
class DiffOutcome:
    result: DiffResult
    markdown: str
    out_dir: Path


def diff_folders(run_a: str | Path, run_b: str | Path, out_dir: str | Path | None = None,
                 noise_z: float = 3.0) -> DiffOutcome:
    """Read two results folders, compare them, write diff.md, diff.html and charts/p95.png into out_dir
    (default: RUN_B/diff/). Bad input (a folder that is not a finished run) raises InputError."""
    a, b = load_run(run_a), load_run(run_b)
    result = diff_runs(a, b, noise_z)
    blocks = diff_blocks(result)
    out = Path(out_dir) if out_dir is not None else b.path / "diff"
    (out / "charts").mkdir(parents=True, exist_ok=True)
    for block in blocks:
        if isinstance(block, Chart):
            write_bytes_atomic(out / "charts" / f"{block.name}.png", block.png)
    markdown = render_markdown(blocks)
    write_text_atomic(out / "diff.md", markdown)
    write_text_atomic(out / "diff.html", render_html(blocks, f"gala diff: {b.run_id} against {a.run_id}"))
    return DiffOutcome(result=result, markdown=markdown, out_dir=out)
