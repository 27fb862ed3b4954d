"""Console output of a run: a rich live progress bar on a terminal, plain lines otherwise (CI)."""
from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeRemainingColumn)
from rich.table import Table


def _fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def describe_event(row: dict) -> str:
    if row.get("type") == "growth":
        return (f"step {row['step']}: grow {row['op']}({row['target']}"
                + "".join(f", {k}={v}" for k, v in (row.get("args") or {}).items())
                + f")  params {_fmt_params(row['params_before'])} -> "
                f"{_fmt_params(row['params_after'])}  loss {row['loss_before']:.4f} -> "
                f"{row['loss_after']:.4f}  max err {row['max_verify_error']:.1e}  [{row['reason']}]")
    if row.get("type") == "growth_failed":
        return (f"step {row['step']}: growth {row['op']}({row['target']}) failed and was skipped "
                f"(the model is unchanged): {row['error']}  [{row['reason']}]")
    if row.get("type") == "rollback":
        return (f"step {row['step']}: loss {row['loss']} - rolled back to step "
                f"{row['resumed_from']}, lr x{row['lr_scale']:g} (failure {row['failures']})")
    if row.get("type") == "crystallize":
        what = (f"{len(row['petals'])} petal(s) of {row['hull']} (hull now "
                f"{row['frozen_share']:.0%} crystallized)" if "hull" in row
                else f"{row['rows']} of {row['of']} row(s) of {row['tensor']}")
        return f"step {row['step']}: crystallized {what}"
    return str(row)


class Reporter:
    """Progress, evaluations and growth events; `enabled=False` prints nothing, except the
    one-line summary at the end when `summary` (`morphc train --quiet`)."""

    def __init__(self, enabled: bool = True, console: Console | None = None,
                 live: bool | None = None, summary: bool = False):
        self.enabled, self.summary = enabled, summary
        self.console = console or Console(file=sys.stdout)
        self.live = self.console.is_terminal if live is None else live
        self.progress = self.task = None
        self.total = 1
        self.every = 1

    def start(self, step: int, total: int, params: int) -> None:
        if not self.enabled:
            return
        self.total, self.every = total, max(1, total // 20)
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}  {task.fields[tok_s]} tok/s  "
                           "{task.fields[params]} params"), TimeRemainingColumn(),
                console=self.console, transient=False)
            self.task = self.progress.add_task("train", total=total, completed=step,
                                               loss="-", tok_s="-", params=_fmt_params(params))
            self.progress.start()
        else:
            print(f"training from step {step} to {total}, {_fmt_params(params)} params",
                  flush=True)

    def update(self, step: int, loss: float, tok_s: float, params: int) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.update(self.task, completed=step, loss=f"{loss:.4f}",
                                 tok_s=f"{tok_s:,.0f}", params=_fmt_params(params))
        elif step % self.every == 0 or step == self.total:
            print(f"step {step}/{self.total}  loss {loss:.4f}  {tok_s:,.0f} tok/s  "
                  f"{_fmt_params(params)} params", flush=True)

    def _print(self, text: str, style: str | None = None) -> None:
        if self.progress is not None:
            self.progress.console.print(text, style=style, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def eval(self, step: int, val: float) -> None:
        if self.enabled:
            self._print(f"step {step}: val loss {val:.4f}  ppl {math.exp(min(val, 50)):.2f}")

    def event(self, row: dict) -> None:
        if self.enabled:
            self._print(describe_event(row), style="yellow")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def finish(self, summary: dict, sample: str | None, run_dir=None) -> None:
        self.stop()
        if not self.enabled:
            if self.summary:
                print(f"step {summary['step']}: final val loss {summary['val_loss']:.4f}, "
                      f"{summary['params']:,} params, {summary['growth_events']} growth events, "
                      + (f"{summary['growth_failed']} FAILED (skipped; see events.jsonl), "
                         if summary.get("growth_failed") else "") +
                      f"{summary['time_s']:.1f} s" + (f" ({run_dir})" if run_dir else ""), flush=True)
            return
        table = Table(title="training summary", show_header=False)
        rows = [("steps", str(summary["step"])), ("tokens", f"{summary['tokens']:,}"),
                ("training FLOPs", f"{summary.get('flops', 0):.3g}"),
                ("final val loss", f"{summary['val_loss']:.4f}"),
                ("val perplexity", f"{summary['val_ppl']:.2f}"),
                ("params", f"{summary['params']:,}"),
                ("growth events", str(summary["growth_events"])),
                *([("growth failed", f"{summary['growth_failed']} (skipped; see events.jsonl)")]
                  if summary.get("growth_failed") else []),
                ("time", f"{summary['time_s']:.1f} s")]
        if run_dir is not None:
            rows.append(("run dir", str(run_dir)))
        for k, v in rows:
            table.add_row(k, v)
        if self.live:
            self.console.print(table)
        else:
            for k, v in rows:
                print(f"{k}: {v}", flush=True)
        if sample is not None:
            print("sample:\n" + sample, flush=True)
