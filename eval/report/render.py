"""A self-contained report of a run: HTML (plotly inline once, works offline) or Markdown.

Every piece of user text (questions, answers, chunk texts, config filters, index and dataset names,
manifest values) goes through `html.escape` in the HTML report; the Markdown report writes `<`, `>` and `&` as
entities and backslash-escapes the characters Markdown acts on (links, images, emphasis, code, tables), so a
text renders as itself, and ids in code spans take a fence longer than any backtick run in them.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from eval.analysis.diagnostics import run_warnings
from eval.analysis.leaderboard import compare_runs
from eval.analysis.plan import plan, plan_caption
from eval.analysis.racing import race_text, raced
from eval.analysis.recommend import Recommendation, rank_order, ranking_metric, ranking_rule, recommend
from eval.analysis.threshold import run_threshold_text
from eval.analysis.why import CAUSE_NAMES, CAUSES, WhyReport
from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.labels.decide import Decision, decision_text, rule_text
from eval.labels.decide_session import DecideSession, logged_session
from eval.labels.rescore import grade_label, judged_text, row_grades
from eval.metrics import METRICS
from eval.report import charts as chart_builders
from eval.runs.store import Run
from eval.runs.summary import PARAMETER_COLUMNS, label_source, quality_metrics, scored_text, summarize, weighting_note

MAIN_METRICS = (
    "hit_rate",
    "recall",
    "mrr",
    "ndcg",
    "precision",
    "passage_precision",
    "passage_recall",
    "passage_ndcg",
    "judged",
    "answer_hit_rate",
    "ild",
    "distinct_doc_ratio",
    "n_retrieved",
)
WORST = 5
THRESHOLD_HEADING = "A score_threshold with a guarantee"
WHY_NOT_COMPUTED = "Not computed: it needs the run's index (python -m eval why RUN, or Compare's Why missed tab)."
COUNTS = ("k", "fetch_k", "n_retrieved")  # parameters and per-question values that are whole numbers


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def format_cell(value: Any, digits: int = 3, missing: str = "-") -> str:
    """A table cell: floats rounded, missing values (None, NaN) as `missing`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def report_metrics(run: Run) -> list[str]:
    present = quality_metrics(run.rows)
    return [m for m in MAIN_METRICS if m in present] or present


def leaderboard_frame(summary: pd.DataFrame, metrics: Sequence[str], sort_by: str | None = None) -> pd.DataFrame:
    """The leaderboard of a `summarize` table as display strings: parameters (empty where one does not apply to
    the search type), `mean [low, high]` per metric (" *" when significantly different from the baseline),
    latency p50/p95 in ms ("-" when not measured). `sort_by` orders the rows
    best first by `eval.recommend.ranking_rule` on that metric (configs without a mean last)."""
    table = summary[["config_id", *[c for c in PARAMETER_COLUMNS if c in summary]]].copy()
    for column in PARAMETER_COLUMNS:
        if column in table:  # fetch_k is a float column (similarity rows have none): show it whole
            digits = 0 if column in COUNTS else 3
            table[column] = table[column].map(partial(format_cell, digits=digits, missing=""))
    for metric in metrics:
        if f"{metric}_mean" in summary:
            sig = summary[f"{metric}_sig"] if f"{metric}_sig" in summary else pd.Series(False, summary.index)
            # a value that is the same on every question (low == high) is fixed by the config, not estimated:
            # a test against the baseline says nothing about it, so it gets no star
            table[METRICS[metric].label] = [
                f"{format_cell(m)} [{format_cell(lo)}, {format_cell(hi)}]" + (" *" if bool(s) and lo != hi else "")
                for m, lo, hi, s in zip(
                    summary[f"{metric}_mean"], summary[f"{metric}_low"], summary[f"{metric}_high"], sig
                )
            ]
    for column in ("retrieval_ms_p50", "retrieval_ms_p95", "ttft_ms_p50", "total_ms_p50"):
        if column in summary and summary[column].notna().any():
            table[column] = summary[column].map(lambda v: format_cell(v, 2))
    if sort_by is not None and f"{sort_by}_mean" in summary:
        table = table.loc[rank_order(summary, sort_by)]
    return table


COMPARISON_NOTE = (
    "Means over the questions both runs answered; change = b - a, paired by question, with a 95% "
    "bootstrap interval; * = the paired randomization test finds it significant (p < 0.05)."
)


def comparison_frame(table: pd.DataFrame, metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """A `compare_runs` table as display strings: per metric the mean in run a and in run b, and the paired change
    `+d [low, high]` (" *" when the randomization test finds it significant; empty for a config in one run)."""
    metrics = list(metrics) if metrics else [c[: -len("_a")] for c in table.columns if c.endswith("_a")]
    shown = table[["config_id"]].copy()
    for metric in metrics:
        name = METRICS[metric].label if metric in METRICS else metric
        shown[f"{name} a"] = table[f"{metric}_a"].map(format_cell)
        shown[f"{name} b"] = table[f"{metric}_b"].map(format_cell)
        shown[f"{name} change"] = [
            "" if pd.isna(d) else f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" + (" *" if bool(sig) else "")
            for d, lo, hi, sig in zip(
                table[f"{metric}_delta"],
                table[f"{metric}_delta_low"],
                table[f"{metric}_delta_high"],
                table[f"{metric}_delta_sig"],
            )
        ]
    return shown


def worst_questions(run: Run, config_id: str, n: int = WORST, metric: str = "ndcg") -> pd.DataFrame:
    rows = run.rows[run.rows["config_id"] == config_id]
    metric = metric if metric in rows else "hit_rate"
    return rows.sort_values([metric, "question_id"], kind="stable").head(n)


@dataclass
class ReportContext:
    """What both reports show: the metrics, the summary, the best config by the ranking rule the dashboard
    uses too, its worst questions, the recommendation, the label source the rows were scored under (with its
    judged share and how many questions were scored), which mean it shows (weighted or not), and the run's
    questions and chunk texts."""

    metrics: list[str]
    summary: pd.DataFrame
    rank_by: str
    best: str
    worst: pd.DataFrame
    recommendation: Recommendation
    source: str
    labels: list[str]  # the label source, its judged share and the scored count, in words
    weighting: str  # which mean the report shows, in words ("" when the questions carry no weights)
    questions: dict
    texts: dict
    decided: DecideSession | None = None  # the run's decide log for the label source (else its latest one)

    @property
    def decision(self) -> Decision | None:
        return self.decided.decision() if self.decided else None

    @classmethod
    def of(cls, run: Run, n: int, weighted: bool = False) -> ReportContext:
        metrics = report_metrics(run)
        summary = summarize(run, metrics=metrics, weighted=weighted)
        rank_by = ranking_metric(metrics)
        best = str(summary.loc[rank_order(summary, rank_by)[0], "config_id"])
        source = label_source(run.rows)
        labels = [f"label source: {source}", judged_text(run.rows, source), scored_text(run.rows, rank_by, source)]
        recommendation = recommend(run, summary, rank_by, weighted=weighted)
        worst = worst_questions(run, best, n, rank_by)
        # the run keeps its question set and the texts of the chunks it retrieved
        texts = run.questions_by_id, run.chunk_texts
        weighting = weighting_note(run, weighted)
        decided = logged_session(run, source)
        return cls(metrics, summary, rank_by, best, worst, recommendation, source, labels, weighting, *texts, decided)

    def recommendation_lines(self) -> list[str]:
        """The recommendation: Decide's when the run has a decide log (with the label-metric ranking beside it,
        stated as such), else the label-metric ranking's."""
        ranking = f"{_plain(self.recommendation.text)} (Label source: {self.source}.)"
        decision = self.decision
        if decision is None or self.decided is None:
            return [ranking]
        lines = [
            f"Decide ({self.decided.source}, rule {decision.rule}): {_capital(decision_text(decision))}.",
            f"Ranking by the label metric with unjudged pairs counted not relevant: {ranking}",
        ]
        if decision.recommended != self.recommendation.config_id:
            lines.append(
                "The two differ: Decide's estimate weighs the chance that unjudged pairs are relevant, the ranking "
                "counts them not relevant; Decide's pick is the one its interval supports."
            )
        return lines

    def plan_lines(self, run: Run) -> list[str]:
        """Compare's captions under the recommendation: the planner's (when there is a recommendation) and, for a
        raced run, the rows racing saved."""
        lines = [race_text(run)] if raced(run) else []
        if not self.recommendation.config_id or f"{self.rank_by}_mean" not in self.summary:
            return lines
        return [plan_caption(plan(run, metric=self.rank_by, summary=self.summary)), *lines]

    def decided_lines(self) -> tuple[str, list[str], pd.DataFrame]:
        """The "Decided with N labels" section: heading, lines in the Decide tab's words, every config's row."""
        decision, session = self.decision, self.decided
        assert decision is not None and session is not None
        row = decision.table.set_index("config_id").loc[decision.recommended]
        lines = [
            f"Rule: {decision.rule} ({rule_text(decision.rule, session.decider.epsilon)}).",
            _capital(decision_text(decision)) + ".",
            f"Recommended config: {decision.recommended}, nDCG estimate {row['estimate']:.3f}, "
            f"95% interval {row['low']:.3f}-{row['high']:.3f}.",
            *([f"Tie set: {', '.join(decision.indistinguishable)}."] if decision.rule == "tie-set" else []),
            _capital(session.judged_text()) + ".",
        ]
        table = decision.table.sort_values("estimate", ascending=False).round(3)
        return f"Decided with {decision.labels} labels", lines, table


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _marks(row: dict, question) -> list[str]:
    """Each retrieved chunk's grade under the report's label source, in words."""
    return [grade_label(g) for g in row_grades(row, question.relevant_ids if question else ())]


def _plain(text: str) -> str:
    """A recommendation's text without its Markdown emphasis."""
    return text.replace("**", "")


# ---------------------------------------------------------------- HTML

CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}.relevant{background:#e8f6e8}
.chunk{white-space:pre-wrap;max-width:60em}.wide{overflow-x:auto;max-width:100%}.warning{background:#fff4e0;padding:.5em}pre{background:#f7f7f7;padding:1em;overflow:auto}
"""


def _html_table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def why_frames(why: WhyReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The "why missed" section's tables: misses per config by cause (causes with none left out), and the
    what-ifs that recover at least one miss."""
    counts = why.counts()
    counts = counts[["misses", *[c for c in CAUSES if counts[c].sum()]]].rename(columns=CAUSE_NAMES)
    what_ifs = pd.DataFrame(
        [(w.config_id, w.text) for w in why.what_ifs if w.recovered], columns=["config_id", "what if"]
    )
    return counts.reset_index(), what_ifs


def why_notes(why: WhyReport) -> list[str]:
    notes = [
        f"Label source: {why.source}. A miss is a relevant document none of whose relevant spans a retrieved chunk "
        "overlaps; the candidates are recomputed on the run's index with the sweep's own fast path."
    ]
    notes += [f"{config_id}: not diagnosed ({reason})." for config_id, reason in why.skipped.items()]
    if why.requeried:
        notes.append(f"{why.requeried} ranks come from a deeper re-query (past the search the run made).")
    return notes


def _why_html(why: WhyReport | str | None, first_chart: bool) -> list[str]:
    parts = ["<h2>Why configs missed</h2>"]
    if not isinstance(why, WhyReport):
        return parts + [f"<p>{esc(why or WHY_NOT_COMPUTED)}</p>"]
    counts, what_ifs = why_frames(why)
    parts += [f"<p>{esc(note)}</p>" for note in why_notes(why)]
    parts += [f'<div class="wide">{_html_table(counts)}</div>']
    if counts["misses"].sum():
        figure = chart_builders.miss_causes(why.counts())
        parts.append(figure.to_html(full_html=False, include_plotlyjs=first_chart))
    parts += ["<h3>What-ifs, on the same candidates</h3>", _html_table(what_ifs) if len(what_ifs) else "<p>none</p>"]
    return parts


def _why_markdown(why: WhyReport | str | None) -> list[str]:
    out = ["## Why configs missed", ""]
    if not isinstance(why, WhyReport):
        return out + [_md(why or WHY_NOT_COMPUTED), ""]
    counts, what_ifs = why_frames(why)
    out += [line for note in why_notes(why) for line in (_md(note), "")]
    out += [_md_table(counts), "", "### What-ifs, on the same candidates", ""]
    out += [_md_table(what_ifs) if len(what_ifs) else "none", ""]
    return out


def report_html(run: Run, worst: int = WORST, weighted: bool = False, why: WhyReport | str | None = None) -> str:
    """The report as one HTML document (plotly.js inlined once); `weighted`: weighted means (`summarize`);
    `why`: the run's miss diagnosis (`eval.analysis.why`), or why there is none."""
    context = ReportContext.of(run, worst, weighted)
    metrics, summary, rank_by, texts = context.metrics, context.summary, context.rank_by, context.texts
    manifest, index = run.info, run.info.index
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        f"<title>Retriever Lab report {esc(run.run_id)}</title><style>{CSS}</style></head><body>",
        f"<h1>Retriever Lab report: run {esc(run.run_id)}</h1>",
    ]
    settings = pd.DataFrame(
        [
            ("status", manifest.status),
            ("created", manifest.created_at),
            ("index", index.name),
            ("dataset", index.dataset),
            ("embedding model", index.embedding_model),
            ("distance space", index.space),
            ("chunk size / overlap", f"{index.chunk_size} / {index.chunk_overlap}"),
            ("chunks", index.chunks),
            ("questions", f"{manifest.questions.count} from {manifest.questions.source}"),
            ("labels", "; ".join(context.labels)),
            ("configurations", len(run.configs)),
            ("retrieval path", manifest.path),
            ("latency sample", manifest.latency_sample),
            ("generation", json.dumps(manifest.generation, ensure_ascii=False) if manifest.generation else "none"),
            *[(f"version: {k}", v) for k, v in {**index.versions, **manifest.versions}.items()],
        ],
        columns=["setting", "value"],
    )
    parts += ["<h2>Settings and versions</h2>", _html_table(settings)]
    parts += [
        "<h2>Recommendation</h2>",
        *[f"<p>{esc(line)}</p>" for line in context.recommendation_lines() + context.plan_lines(run)],
        *[f'<p class="warning">{esc(warning)}</p>' for warning in run_warnings(run)],
    ]
    if context.decided:
        heading, lines, table = context.decided_lines()
        parts += [f"<h2>{esc(heading)}</h2>", *[f"<p>{esc(line)}</p>" for line in lines], _html_table(table)]
    parts += [
        "<h2>Leaderboard</h2>",
        f"<p>{esc(context.weighting)} Means with 95% bootstrap confidence intervals. {esc(ranking_rule(rank_by))}</p>",
        f"<p>{esc('; '.join(context.labels))}.</p>",
        f'<div class="wide">{_html_table(leaderboard_frame(summary, metrics, sort_by=rank_by))}</div>',
    ]
    figures = chart_builders.run_charts(summary, run)
    first = True  # plotly.js goes with the first chart (none here: with the why section's first)
    if figures:
        parts.append("<h2>Charts</h2>")
        for title, figure in figures.items():
            parts.append(f"<h3>{esc(title)}</h3>")
            parts.append(figure.to_html(full_html=False, include_plotlyjs=first))
            first = False
    parts += _why_html(why, first)
    parts += [f"<h2>{THRESHOLD_HEADING}</h2>", f"<p>{esc(run_threshold_text(run))}</p>"]
    parts.append(
        f"<h2>Worst questions on the best configuration ({esc(context.best)}, by {esc(METRICS[rank_by].label)})"
        f" under label source {esc(context.source)}</h2>"
    )
    for row in context.worst.to_dict("records"):
        question = context.questions.get(row["question_id"])
        parts.append(f"<h3>{esc(row['question_id'])}: {esc(question.question if question else '')}</h3>")
        if question and question.answers:
            parts.append(f"<p>Gold answer: {esc(' | '.join(question.answers))}</p>")
        scores = ", ".join(f"{m} {format_cell(row.get(m), 0 if m in COUNTS else 3)}" for m in metrics if m in row)
        parts.append(f"<p>{esc(scores)}</p>")
        if row.get("answer") is not None:
            parts.append(f"<p>Generated answer: {esc(row['answer'])}</p>")
        lines = [
            "<table><thead><tr><th>rank</th><th>score</th><th>chunk</th><th>document</th>"
            f"<th>{esc(context.source)}</th><th>text</th></tr></thead><tbody>"
        ]
        retrieved = zip(row["chunk_ids"], row["doc_ids"], row["scores"], _marks(row, question))
        for rank, (chunk_id, doc_id, score, mark) in enumerate(retrieved, 1):
            css = ' class="relevant"' if mark.startswith("relevant") else ""
            lines.append(
                f"<tr{css}><td>{rank}</td><td>{float(score):.4f}</td><td>{esc(chunk_id)}</td>"
                f"<td>{esc(doc_id)}</td><td>{esc(mark)}</td>"
                f'<td class="chunk">{esc(texts.get(chunk_id, ""))}</td></tr>'
            )
        lines.append("</tbody></table>")
        parts.append("".join(lines) if len(row["chunk_ids"]) else "<p>No chunks retrieved.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def comparison_html(first: Run, second: Run, metrics: Sequence[str] | None = None) -> str:
    """Two runs side by side in one self-contained HTML document: settings, per-config means and changes."""

    table = compare_runs(first, second, list(metrics) if metrics else None)
    shown = [c[: -len("_a")] for c in table.columns if c.endswith("_a")]
    settings = pd.DataFrame(
        [
            (label, *[value(run.info) for run in (first, second)])
            for label, value in (
                ("index", lambda m: m.index.name),
                ("embedding model", lambda m: m.index.embedding_model),
                ("chunk size", lambda m: m.index.chunk_size),
                ("chunk overlap", lambda m: m.index.chunk_overlap),
                ("questions", lambda m: m.questions.count),
            )
        ]
        + [("label source", *[label_source(run.rows) for run in (first, second)])]
        + [
            (
                "scored",
                *[scored_text(run.rows, ranking_metric(shown), label_source(run.rows)) for run in (first, second)],
            )
        ],
        columns=["setting", f"a: {first.run_id}", f"b: {second.run_id}"],
    )
    figure = chart_builders.comparison_bars(table, shown[0] if "ndcg" not in shown else "ndcg")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html><head><meta charset="utf-8">',
            f"<title>Retriever Lab comparison {esc(first.run_id)} vs {esc(second.run_id)}</title>"
            f"<style>{CSS}</style></head><body>",
            f"<h1>Run {esc(first.run_id)} (a) vs run {esc(second.run_id)} (b)</h1>",
            "<h2>Settings</h2>",
            _html_table(settings),
            "<h2>Per configuration (questions in both runs only)</h2>",
            f"<p>{esc(COMPARISON_NOTE)}</p>",
            f'<div class="wide">{_html_table(comparison_frame(table))}</div>',
            figure.to_html(full_html=False, include_plotlyjs=True),
            "</body></html>",
        ]
    )


# ---------------------------------------------------------------- Markdown


MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
MD_ACTIVE = set("\\`*_[]!|~$#")  # what makes links, images, emphasis, code, tables, headings and math


def _md(value: Any) -> str:
    """User text as Markdown that renders as the text itself, on one line."""
    text = re.sub(r"[\r\n]+", " ", "" if value is None else str(value))
    return "".join(MD_ENTITIES.get(char) or ("\\" + char if char in MD_ACTIVE else char) for char in text)


def _md_code(value: Any) -> str:
    """User text as a Markdown code span (shown verbatim, whatever backticks it holds)."""
    text = re.sub(r"[\r\n]+", " ", "" if value is None else str(value))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(frame: pd.DataFrame, user_columns: Sequence[str] = ("config_id", "filter")) -> str:
    """A Markdown table: the user's text (config ids, filters) escaped, the lab's own (labels, numbers) as it is,
    with `|` escaped everywhere."""
    lines = ["| " + " | ".join(str(c).replace("|", "\\|") for c in frame.columns) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    escape = [_md if column in user_columns else lambda v: str(v).replace("|", "\\|") for column in frame.columns]
    lines += ["| " + " | ".join(f(v) for f, v in zip(escape, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def report_markdown(run: Run, worst: int = WORST, weighted: bool = False, why: WhyReport | str | None = None) -> str:
    """The report as Markdown (the same sections as the HTML report, without charts)."""
    context = ReportContext.of(run, worst, weighted)
    rank_by = context.rank_by
    manifest, index = run.info, run.info.index
    out = [
        f"# Retriever Lab report: run {_md(run.run_id)}",
        "",
        f"- status: {_md(manifest.status)}, created {_md(manifest.created_at)}",
        f"- index: {_md(index.name)} ({_md(index.embedding_model)}, {_md(index.space)}, chunk size "
        f"{_md(index.chunk_size)} / overlap {_md(index.chunk_overlap)}, {_md(index.chunks)} chunks)",
        f"- questions: {_md(manifest.questions.count)} from {_md(manifest.questions.source)}",
        f"- labels: {_md('; '.join(context.labels))}",
        f"- versions: {_md(json.dumps(manifest.versions, ensure_ascii=False))}",
        "",
        "## Recommendation",
        "",
        *[part for line in context.recommendation_lines() + context.plan_lines(run) for part in (_md(line), "")],
        *[line for warning in run_warnings(run) for line in (f"**Warning:** {_md(warning)}", "")],
        *_decided_markdown(context),
        "## Leaderboard",
        "",
        _md_table(leaderboard_frame(context.summary, context.metrics, sort_by=rank_by)),
        "",
        f"{ranking_rule(rank_by)} {context.weighting} Means with 95% bootstrap confidence intervals.",
        "",
        _md("; ".join(context.labels)) + ".",
        "",
        *_why_markdown(why),
        f"## {THRESHOLD_HEADING}",
        "",
        _md(run_threshold_text(run)),
        "",
        f"## Worst questions on the best configuration ({_md(context.best)}, by {_md(METRICS[rank_by].label)}) "
        f"under label source {_md(context.source)}",
        "",
    ]
    for row in context.worst.to_dict("records"):
        question = context.questions.get(row["question_id"])
        out.append(f"### {_md(row['question_id'])}: {_md(question.question if question else '')}")
        if question and question.answers:
            out.append(f"Gold answer: {_md(' | '.join(question.answers))}")
        out.append("")
        retrieved = zip(row["chunk_ids"], row["scores"], _marks(row, question))
        for rank, (chunk_id, score, mark) in enumerate(retrieved, 1):
            text = context.texts.get(chunk_id, "")
            out.append(f"{rank}. {_md_code(chunk_id)} {float(score):.4f} ({_md(mark)}) {_md(text[:300])}")
        out.append("")
    return "\n".join(out)


def _decided_markdown(context: ReportContext) -> list[str]:
    if not context.decided:
        return []
    heading, lines, table = context.decided_lines()
    return [f"## {_md(heading)}", "", *[part for line in lines for part in (_md(line), "")], _md_table(table), ""]


def write_report(
    run: Run, path: str | Path, fmt: str = "html", weighted: bool = False, why: WhyReport | str | None = None
) -> Path:
    """Write the report atomically; `fmt` is html or md; `weighted`: weighted means; `why`: see `report_html`."""
    if fmt not in ("html", "md"):
        raise LabError(f"unknown report format '{fmt}' (use html or md)")
    write = report_html if fmt == "html" else report_markdown
    text = write(run, weighted=weighted, why=why)
    path = Path(path)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path
