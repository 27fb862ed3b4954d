"""RUN_DIR/loss.png: train and validation loss vs steps and vs tokens, growth events marked."""
from __future__ import annotations

from pathlib import Path


def plot_run(run_dir, out: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .loop import read_jsonl

    run_dir = Path(run_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    events = [e for e in read_jsonl(run_dir / "events.jsonl") if e.get("type") == "growth"]
    vals = [r for r in rows if "val_loss" in r]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, label in ((axes[0], "step", "step"), (axes[1], "tokens", "tokens")):
        ax.plot([r[key] for r in rows], [r["loss"] for r in rows], lw=0.8, alpha=0.7,
                label="train")
        ax.plot([r[key] for r in vals], [r["val_loss"] for r in vals], "o-", ms=3,
                label="validation")
        ymax = max([r["loss"] for r in rows] or [1.0])
        for e in events:
            x = e["step"] if key == "step" else e.get("tokens", 0)
            ax.axvline(x, color="tab:red", ls="--", lw=0.8)
            ax.text(x, ymax, f" {e['op']}", rotation=90, va="top", fontsize=7,
                    color="tab:red")
        ax.set_xlabel(label)
        ax.set_ylabel("loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{run_dir.name}: loss with growth events")
    fig.tight_layout()
    path = Path(out) if out else run_dir / "loss.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
