"""The capacity report: per-size figures, the knee, the headroom line, the saturation point, and across
classes the capacity table with its recommendation; as markdown and a chart (p95 and recall against data
size per class, the threshold levels drawn, the knee marked).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.capacity.knee import (
    CACHE_HIT_KNEE,
    Growth,
    SizePoint,
    cache_knee,
    crossing_size,
    latency_knee,
    months_until,
)
from harness.capacity.recommend import CapacityModel, ClassCapacity, Recommendation, Target, recommend
from harness.capacity.results import SweepResult
from harness.thresholds.model import ThresholdSet

MIB = 2**20


@dataclass(frozen=True)
class Knees:
    latency: int | None
    # Measured: the first swept size whose reads missed shared_buffers (the index left memory).
    cache: int | None
    # Estimated from index bytes per document: where the index reaches shared_buffers, instance memory.
    shared_buffers: int | None
    instance_memory: int | None

    @property
    def headroom_limit(self) -> tuple[int | None, str]:
        """The size growth must stay under, and what it is: the earlier of the latency knee and the size at
        which the index reaches shared_buffers (the measured cache knee is a swept size, so coarser)."""
        candidates = [
            (size, what)
            for size, what in (
                (self.latency, "the latency knee"),
                (self.shared_buffers, "the index outgrows shared_buffers"),
                (self.cache, "the measured cache knee"),
            )
            if size is not None
        ]
        return min(candidates) if candidates else (None, "no knee")


def points(result: SweepResult) -> list[SizePoint]:
    return [SizePoint(s.size, s.p95_ms, s.index_bytes) for s in result.sizes]


def knees(result: SweepResult) -> Knees:
    pts = points(result)
    if not result.sizes:
        return Knees(None, None, None, None)
    memory = result.sizes[-1].instance_memory_bytes
    return Knees(
        latency_knee(pts),
        cache_knee([(s.size, s.hit_ratio) for s in result.sizes]),
        crossing_size(pts, result.sizes[-1].shared_buffers_bytes),
        crossing_size(pts, memory) if memory else None,
    )


def class_capacity(result: SweepResult, model: CapacityModel) -> ClassCapacity:
    ok = [s.size for s in result.sizes if s.meets]
    saturation = result.saturation
    return ClassCapacity(
        db_class=result.db_class,
        cache_node=result.cache_node,
        largest_measured=max((s.size for s in result.sizes), default=0),
        largest_ok=max(ok) if ok else None,
        sustained_rate=saturation.rate if saturation else None,
        saturation_size=saturation.size if saturation else None,
        monthly_usd=model.monthly_usd(result.db_class, result.cache_node),
    )


def _fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if value is None else pattern.format(value)


def sweep_markdown(result: SweepResult, today: int | None, growth: Growth | None) -> str:
    lines = [
        f"# Capacity: {result.db_class} + {result.cache_node} (plan {result.plan})",
        "",
        f"Started {result.started}; wall time {result.wall_s / 60:.1f} min.",
        "",
        "| documents | grow s | search p95 ms | qps | recall@10 | cache hit | acquire p95 ms | db cpu mean % "
        "| db RSS peak MiB | index MiB | shared_buffers MiB | reads/s past shared_buffers | buffer hit | host load "
        "| thresholds |",
        "| " + " | ".join(["---"] * 15) + " |",
    ]
    for s in result.sizes:
        verdict = "PASS" if s.meets else ", ".join(f"{k} {v}" for k, v in s.thresholds.items() if v != "PASS")
        lines.append(
            f"| {s.size:,} | {s.grow_s:.0f} | {s.p95_ms:.2f} | {s.qps:.0f} | {s.recall:.3f} | "
            f"{_fmt(s.cache_hit_rate, '{:.1%}')} | {s.acquire_p95_ms:.2f} | {_fmt(s.cpu_mean_pct, '{:.0f}')} | "
            f"{_fmt(None if s.rss_peak_bytes is None else s.rss_peak_bytes / MIB, '{:.0f}')} | "
            f"{s.index_bytes / MIB:.0f} | {s.shared_buffers_bytes / MIB:.0f} | {s.reads_per_s:.0f} | "
            f"{_fmt(s.hit_ratio, '{:.2%}')} | {_fmt(s.host_load, '{:.1f}')} | {verdict} |"
        )
    k = knees(result)
    lines += [
        "",
        f"- Latency knee (p95 growing faster than the data): {_size(k.latency, 'none within the sweep')}",
        f"- Cache knee (shared_buffers hit ratio below {CACHE_HIT_KNEE:.0%}, the index left memory): "
        + ("none within the sweep" if k.cache is None else f"{k.cache:,} documents ({_cache_detail(result, k.cache)})"),
        f"- The index outgrows shared_buffers at about {_size(k.shared_buffers, 'unknown')} documents; "
        f"instance memory at about {_size(k.instance_memory, 'unknown')} (interpolated, or extrapolated from "
        "the largest size's bytes per document)",
    ]
    if today is not None and growth is not None:
        lines.append(f"- Headroom: {headroom_line(k, today, growth)}")
    lines += ["", "How each size was reached:", ""]
    lines += [f"- {s.size:,}: {s.grow_detail or f'{s.grow_s:.0f} s'}" for s in result.sizes]
    for sat in result.ramps or ([result.saturation] if result.saturation else []):
        lines += ["", f"## Saturation at {sat.size:,} documents (open model, vector search through the proxy)", ""]
        lines += ["| offered /s | done /s | p95 ms | errors | db cpu % | host cpu % | reads/s | sustained |"]
        lines += ["| " + " | ".join(["---"] * 8) + " |"]
        for st in sat.steps:
            lines.append(
                f"| {st.rate:g} | {st.achieved:.1f} | {_fmt(st.p95_ms)} | {st.errors} | "
                f"{_fmt(st.cpu_mean_pct, '{:.0f}')} | {st.host_cpu_pct:.0f} | {st.reads_per_s:.0f} | "
                f"{'yes' if st.sustained else 'NO'} |"
            )
        rate = "below the first rate tried" if sat.rate is None else f"{sat.rate:g} searches/s"
        limit = sat.limited_by or "nothing ran out within the rates tried (raise the plan's ramp)"
        lines += ["", f"Saturation point: {rate}; ran out first: {limit}."]
    lines += [
        "",
        "- db RSS sums every PostgreSQL process: shared_buffers pages touched by several backends count more "
        "than once.",
        f"- host load is the machine's 1-minute load average ({os.cpu_count()} cores here): load generator, server "
        "and anything else on the machine share them, so a high load inflates every latency above.",
        *[f"- {note}" for note in result.conditions],
        *[f"- {note}" for note in result.not_emulated],
        "",
    ]
    return "\n".join(lines)


def _cache_detail(result: SweepResult, size: int) -> str:
    sizes = sorted(result.sizes, key=lambda s: s.size)
    at = next(i for i, s in enumerate(sizes) if s.size == size)
    now = sizes[at]
    detail = f"hit ratio {_fmt(now.hit_ratio, '{:.1%}')}, {now.reads_per_s:,.0f} reads/s past shared_buffers"
    if at > 0:
        before = sizes[at - 1]
        detail += f", against {before.reads_per_s:,.0f}/s at {before.size:,}"
    return detail


def _size(value: int | None, missing: str) -> str:
    return missing if value is None else f"{value:,}"


def headroom_line(k: Knees, today: int, growth: Growth) -> str:
    limit, what = k.headroom_limit
    if limit is None:
        return f"no knee found, so no headroom figure (today {today:,} documents, growth {growth})"
    months = months_until(today, limit, growth)
    return f"{months:.1f} months from {today:,} documents at {growth} until {what} ({limit:,} documents)"


def table_markdown(rows: Sequence[ClassCapacity], target: Target, recommendation: Recommendation) -> str:
    lines = [
        "| class | cache node | largest size meeting the thresholds | swept to | sustained searches/s (at size) "
        "| monthly USD | for the target |",
        "| " + " | ".join(["---"] * 7) + " |",
    ]
    for r in rows:
        rate = "-" if r.sustained_rate is None else f"{r.sustained_rate:g} (at {r.saturation_size:,})"
        lines.append(
            f"| {r.db_class} | {r.cache_node} | {_size(r.largest_ok, 'none')} | {r.largest_measured:,} | {rate} | "
            f"{_fmt(r.monthly_usd)} | {recommendation.verdicts[r.db_class]} |"
        )
    return "\n".join([*lines, "", recommendation.summary(target), ""])


def compare_classes(results: Sequence[SweepResult], model: CapacityModel, target: Target) -> tuple[str, Recommendation]:
    rows = [class_capacity(r, model) for r in results]
    recommendation = recommend(rows, target)
    return table_markdown(rows, target, recommendation), recommendation


def chart(results: Sequence[SweepResult], thresholds: ThresholdSet, path: Path) -> Path:
    """p95 and recall@10 against data size, one line per class, threshold levels and knees drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = {t.metric: t for t in thresholds.thresholds}
    fig, (ax_p95, ax_recall) = plt.subplots(1, 2, figsize=(11, 4))
    for result in results:
        sizes = [s.size for s in result.sizes]
        ax_p95.plot(sizes, [s.p95_ms for s in result.sizes], marker="o", label=result.db_class)
        ax_recall.plot(sizes, [s.recall for s in result.sizes], marker="o", label=result.db_class)
        knee = knees(result)
        if knee.latency is not None:
            ax_p95.axvline(knee.latency, linestyle=":", color="grey")
            ax_p95.annotate(f"knee {result.db_class}", (knee.latency, ax_p95.get_ylim()[1]), fontsize=7)
        if knee.cache is not None:
            ax_p95.axvline(knee.cache, linestyle="-.", color="tab:red", alpha=0.6)
            ax_p95.annotate(f"cache knee {result.db_class}", (knee.cache, ax_p95.get_ylim()[0]), fontsize=7)
        if knee.shared_buffers is not None and knee.shared_buffers <= max(sizes, default=0) * 1.5:
            ax_p95.axvline(knee.shared_buffers, linestyle="--", color="tab:purple", alpha=0.5)
    for ax, metric in ((ax_p95, "vector_search.latency_ms"), (ax_recall, "vector_search.recall_at_10")):
        threshold = levels.get(metric)
        if threshold is not None:
            for name, colour in (("warning", "orange"), ("critical", "red")):
                level = threshold.level(name)
                if level is not None:
                    ax.axhline(level, color=colour, linewidth=1, label=f"{name} {level:g}")
        ax.set_xscale("log")
        ax.set_xlabel("documents")
        ax.legend(fontsize=7)
    ax_p95.set_ylabel("search p95 (ms)")
    ax_p95.set_yscale("log")
    ax_recall.set_ylabel("recall@10")
    ax_p95.set_title("p95 against data size (dashed: index = shared_buffers; dash-dot: cache knee)", fontsize=9)
    ax_recall.set_title("recall@10 against data size", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
