#!/usr/bin/env python3
"""A training report from gpt-pretrain / gpt-finetune run directories (docs/report.md).

    scripts/plot_run.py RUN_DIR... [--out report] [--eval-json FILE...] [--samples FILE.jsonl...]
                        [--smooth N] [--title TEXT]

Reads each RUN_DIR's log.jsonl (one JSON object per step), config.json (the resolved settings) and
OUT/best (the best checkpoint's trainer_state.json), and writes into --out:

  loss-<kind>.png   train loss (smoothed, the raw curve faint) and validation loss against steps
                    and against tokens; one figure per kind of loss (language model, SFT
                    completion, classification), the runs of a kind overlaid
  lr.png            learning rate against steps
  grad_norm.png     gradient norm (global L2, before clipping) against steps, log scale
  throughput.png    tokens/s against steps, with each run's median
  accuracy.png      fine-tuning with a class head: validation accuracy (and F1 when logged), the
                    best checkpoint and the early-stopping point marked
  forgetting.png    from --eval-json files written by `gpt-eval --task lm --forgetting --out-json`:
                    the base and the fine-tuned model's loss on general text, with and without replay
  index.html, report.md   the settings, the plots, a final metrics table, evaluations and sample
                    generations (RUN_DIR/sample.jsonl, --samples files as `gpt-generate --jsonl`
                    writes, or the generations in a `gpt-eval --task generate` JSON)

Every link is relative, so the folder can be copied anywhere. Prints the report's path. Needs
matplotlib (scripts/python_deps.sh installs it into .venv).
"""
import argparse
import datetime
import html
import json
import math
import os
import re
import shlex
import statistics
import sys

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import EngFormatter
    import numpy as np
except ImportError as e:  # pragma: no cover - reported to the user
    sys.exit(f"plot_run.py: {e}; run scripts/python_deps.sh and use .venv/bin/python")

KINDS = {
    "lm": ("Language-model loss", "loss (nats/token)"),
    "sft": ("SFT completion loss (prompt masked out)", "loss (nats/completion token)"),
    "classify": ("Classification loss", "loss (nats/example)"),
}
DPI = 100


def warn(msg):
    print(f"plot_run.py: {msg}", file=sys.stderr)


# ---- reading runs ----------------------------------------------------------------------------------

def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_log(path):
    """log.jsonl as {step: merged record}; gpt-finetune writes val_accuracy on a line of its own."""
    steps = {}
    bad = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1  # e.g. the last line of a run still being written
                continue
            if not isinstance(r, dict) or not isinstance(r.get("step"), int):
                bad += 1
                continue
            steps.setdefault(r["step"], {}).update(r)
    if bad:
        warn(f"{path}: skipped {bad} unreadable line(s)")
    return [steps[s] for s in sorted(steps)]


def read_best(run_dir):
    """(step, trainer_state) of OUT/best (a file naming the checkpoint directory, or a link to it)."""
    p = os.path.join(run_dir, "best")
    target = None
    if os.path.isdir(p):
        target = p
    elif os.path.isfile(p):
        try:
            name = open(p, encoding="utf-8").read().strip()
        except OSError:
            name = ""
        if name:
            target = name if os.path.isabs(name) else os.path.join(run_dir, name)
    if not target:
        return None, None
    st = read_json(os.path.join(target, "trainer_state.json"))
    if not isinstance(st, dict) or not isinstance(st.get("step"), int):
        return None, None
    return st["step"], st


class Run:
    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.rows = read_log(os.path.join(path, "log.jsonl"))
        self.config = read_json(os.path.join(path, "config.json")) or {}
        self.best_step, self.best_state = read_best(path)
        c = self.config
        task = c.get("task")
        if task is None:
            self.program = "gpt-pretrain"
            self.kind = "lm"
        else:
            self.program = "gpt-finetune"
            self.kind = task if task in KINDS else "lm"
        self.best_metric = (self.best_state or {}).get("metric") or ("val_loss" if task is None else None)
        if self.best_metric is None and task is not None:
            self.best_metric = "accuracy" if any("val_accuracy" in r for r in self.rows) else "val_loss"
        self.tokens_per_step = None
        tbt, bs, sl = c.get("total_batch_tokens"), c.get("batch_size"), c.get("seq_len")
        if isinstance(tbt, (int, float)) and tbt > 0:
            self.tokens_per_step = int(tbt)
        elif isinstance(bs, int) and isinstance(sl, int) and bs > 0 and sl > 0:
            self.tokens_per_step = bs * sl
        self.steps_configured = c.get("steps") if isinstance(c.get("steps"), int) else None
        self.last_step = self.rows[-1]["step"] if self.rows else 0
        self.end = self._end()

    def series(self, key):
        xs = [r["step"] for r in self.rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        ys = [float(r[key]) for r in self.rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        return np.array(xs, dtype=float), np.array(ys, dtype=float)

    def f1_key(self):
        for k in ("val_f1", "val_macro_f1", "val_f1_macro"):
            if any(k in r for r in self.rows):
                return k
        return None

    def _end(self):
        """('early stop' | 'stopped' | 'complete' | None, step)."""
        if not self.rows or self.steps_configured is None:
            return None, self.last_step
        if self.last_step >= self.steps_configured:
            return "complete", self.last_step
        last = self.rows[-1]
        patience = self.config.get("patience")
        if isinstance(patience, int) and patience > 0 and "val_loss" in last:
            return "early stop", self.last_step
        return "stopped", self.last_step

    def describe(self):
        c = self.config
        if self.program == "gpt-pretrain":
            return "pretrain"
        s = f"finetune {c.get('task', '?')}"
        if c.get("method"):
            s += f", {c['method']}"
        if isinstance(c.get("replay_ratio"), (int, float)) and c["replay_ratio"] > 0:
            s += f", replay {c['replay_ratio']:g}"
        return s


def unique_names(paths):
    """Run labels: the directory name, with parents added until the labels are unique."""
    parts = [os.path.normpath(os.path.abspath(p)).split(os.sep) for p in paths]
    depth = 1
    while True:
        names = [os.sep.join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth > max(len(p) for p in parts):
            return names
        depth += 1


# ---- plotting helpers ------------------------------------------------------------------------------

def smooth(y, window):
    """Centred moving average of about `window` points. At the start the window shrinks
    symmetrically (the loss falls fastest there, and a one-sided window would pull the first points
    down); at the end it keeps its width by reaching further back (the last points are the ones a
    reader compares, so they are averaged as much as the rest)."""
    n = len(y)
    if window <= 1 or n < 3:
        return y
    h = min(window // 2, (n - 1) // 2)
    i = np.arange(n)
    right = np.minimum(h, n - 1 - i)
    left = np.where(i < h, i, h + (h - right))
    right = np.where(i < h, np.minimum(i, right), right)
    c = np.concatenate([[0.0], np.cumsum(y)])
    return (c[i + right + 1] - c[i - left]) / (left + right + 1)


def running_quantile(y, window, q):
    """Running q-quantile over a window of fixed size (shifted, not shrunk, at the ends)."""
    n = len(y)
    w = min(n, max(3, window))
    out = np.empty(n)
    for i in range(n):
        a = min(max(0, i - w // 2), n - w)
        out[i] = np.quantile(y[a:a + w], q)
    return out


def task_loss_with_replay(y, ratio, window):
    """The task's own train loss in a classification run with replay: a share `ratio` of the steps
    are language-model batches whose loss (nats/token over the vocabulary) lies far above a class
    head's loss, so the task steps' median is the (1 - ratio) / 2 quantile of all the steps."""
    return running_quantile(y, max(window, 25), (1.0 - ratio) / 2.0)


def auto_window(n, requested):
    if requested and requested > 0:
        return int(requested)
    return int(min(200, max(1, n // 20)))


def new_fig(w=9.0, h=4.8, ncols=1, sharey=False):
    fig, axes = plt.subplots(1, ncols, figsize=(w, h), dpi=DPI, sharey=sharey, squeeze=False)
    for ax in axes[0]:
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=10)
    return fig, axes[0]


def save(fig, out, name, made):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=DPI)
    plt.close(fig)
    made.append(name)


def legend(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=9, framealpha=0.85, **kw)


def key_legend(ax, runs, colors, keys, **kw):
    """One entry per run (its colour) and one per line style (in black): short, whatever the runs."""
    handles = [Line2D([], [], color=colors[r.name], lw=2.5, label=r.name) for r in runs]
    handles += [Line2D([], [], color="black", label=label, **style) for style, label in keys]
    ax.legend(handles=handles, fontsize=9, framealpha=0.85, **kw)


def window_text(windows):
    ws = sorted(windows) or [1]
    if len(ws) == 1:
        return f"{ws[0]} step{'s' if ws[0] != 1 else ''}"
    return f"{ws[0]}-{ws[-1]} steps"


def replay_ratio(run):
    r = run.config.get("replay_ratio")
    return float(r) if isinstance(r, (int, float)) and r > 0 and run.program == "gpt-finetune" else 0.0


END_STYLE = {"ls": ":", "lw": 1.4}
BEST_STYLE = {"marker": "*", "ms": 14, "ls": "none", "markeredgecolor": "black", "markerfacecolor": "0.6"}


def mark_end(ax, run, color, xscale=1.0):
    """A dotted vertical line where a run ended before its configured steps (early stopping)."""
    kind, step = run.end
    if kind in ("early stop", "stopped"):
        ax.axvline(step * xscale, color=color, **END_STYLE)
        return True
    return False


# ---- the plots -------------------------------------------------------------------------------------

def plot_loss(runs, kind, colors, out, made, smooth_n):
    title, ylabel = KINDS[kind]
    have_tokens = any(r.tokens_per_step for r in runs)
    fig, axes = new_fig(13.0 if have_tokens else 8.0, 5.0, 2 if have_tokens else 1, sharey=True)
    windows, shown = set(), []  # shown: the smoothed and validation values, which set the y range
    any_val = any_best = any_end = any_replay = False
    for ai, ax in enumerate(axes):
        by_tokens = ai == 1
        for r in runs:
            if by_tokens and not r.tokens_per_step:
                continue
            scale = r.tokens_per_step if by_tokens else 1.0
            c = colors[r.name]
            xs, ys = r.series("train_loss")
            if len(xs):
                w = auto_window(len(xs), smooth_n)
                windows.add(w)
                # With replay into a class head, whole steps are language-model batches of a much
                # higher loss: follow the task's steps rather than the mean of the two.
                split = kind == "classify" and replay_ratio(r) > 0
                sm = task_loss_with_replay(ys, replay_ratio(r), w) if split else smooth(ys, w)
                any_replay |= split
                ax.plot(xs * scale, ys, color=c, alpha=0.22, lw=0.8)
                ax.plot(xs * scale, sm, color=c, lw=1.8, ls="-." if split else "-")
                shown += list(sm)
            vx, vy = r.series("val_loss")
            if len(vx):
                any_val = True
                shown += list(vy)
                ax.plot(vx * scale, vy, color=c, lw=1.6, ls="--", marker="o", ms=5, markerfacecolor="white")
                if r.best_step is not None and r.best_metric == "val_loss":
                    m = vx == r.best_step
                    if m.any():
                        any_best = True
                        ax.plot(vx[m] * scale, vy[m], **{**BEST_STYLE, "markerfacecolor": c})
            any_end |= mark_end(ax, r, c, scale)
        if by_tokens:
            ax.set_xlabel("tokens processed (steps × tokens per step)", fontsize=11)
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.set_title("against tokens", fontsize=11)
        else:
            ax.set_xlabel("step (optimizer updates)", fontsize=11)
            ax.set_title("against steps", fontsize=11)
            ax.set_ylabel(ylabel, fontsize=11)
        ax.tick_params(labelleft=True)
    if shown:  # raw spikes (and replay batches) may leave the frame; the curves that matter stay in
        lo, hi = min(shown), max(shown)
        pad = 0.08 * (hi - lo) + 1e-3
        axes[0].set_ylim(lo - pad, hi + pad)
    keys = [({"lw": 1.8}, "train (moving average, raw faint)")]
    if any_replay:
        keys.append(({"lw": 1.8, "ls": "-."}, "train, task steps only (replay steps left out)"))
    if any_val:
        keys.append(({"lw": 1.6, "ls": "--", "marker": "o", "ms": 5, "markerfacecolor": "white"}, "validation"))
    if any_best:
        keys.append((BEST_STYLE, "best checkpoint (OUT/best)"))
    if any_end:
        keys.append((END_STYLE, "ended early (early stopping)"))
    key_legend(axes[0], runs, colors, keys, loc="upper right")
    fig.suptitle(f"{title}: train (smoothed over {window_text(windows)}) and validation", fontsize=12)
    save(fig, out, f"loss-{kind}.png", made)


def plot_lr(runs, colors, out, made):
    fig, (ax,) = new_fig(9.0, 4.5)
    for r in runs:
        xs, ys = r.series("lr")
        if len(xs):
            ax.plot(xs, ys, color=colors[r.name], lw=1.8, label=r.name)
    ax.set_xlabel("step (optimizer updates)", fontsize=11)
    ax.set_ylabel("learning rate", fontsize=11)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
    ax.set_title("Learning rate schedule (warmup, then cosine decay to min_lr)", fontsize=12)
    ax.set_ylim(bottom=0)
    legend(ax)
    save(fig, out, "lr.png", made)


def plot_grad_norm(runs, colors, out, made, smooth_n):
    fig, (ax,) = new_fig(9.0, 4.5)
    clips = set()
    windows = set()
    for r in runs:
        xs, ys = r.series("grad_norm")
        ok = ys > 0
        xs, ys = xs[ok], ys[ok]
        if not len(xs):
            continue
        w = auto_window(len(xs), smooth_n)
        windows.add(w)
        c = colors[r.name]
        ax.plot(xs, ys, color=c, alpha=0.25, lw=0.8)
        ax.plot(xs, np.exp(smooth(np.log(ys), w)), color=c, lw=1.8, label=r.name)
        g = r.config.get("grad_clip")
        if isinstance(g, (int, float)) and g > 0:
            clips.add(float(g))
    for g in sorted(clips):
        ax.axhline(g, color="0.3", ls="--", lw=1.2, label=f"grad_clip = {g:g} (larger norms are scaled down)")
    ax.set_yscale("log")
    ax.set_xlabel("step (optimizer updates)", fontsize=11)
    ax.set_ylabel("gradient norm (global L2, before clipping)", fontsize=11)
    ax.set_title(f"Gradient norm (geometric moving average over {window_text(windows)}, raw faint)",
                 fontsize=12)
    legend(ax)
    save(fig, out, "grad_norm.png", made)


def plot_throughput(runs, colors, out, made, smooth_n):
    fig, (ax,) = new_fig(9.0, 4.5)
    for r in runs:
        xs, ys = r.series("tokens_per_s")
        if not len(xs):
            continue
        c = colors[r.name]
        med = float(np.median(ys))
        ax.plot(xs, ys, color=c, alpha=0.25, lw=0.8)
        ax.plot(xs, smooth(ys, auto_window(len(xs), smooth_n)), color=c, lw=1.8,
                label=f"{r.name} (median {fmt_rate(med)} tokens/s)")
        ax.axhline(med, color=c, ls="--", lw=1.0)
    ax.set_xlabel("step (optimizer updates)", fontsize=11)
    ax.set_ylabel("tokens/s (token positions per second)", fontsize=11)
    ax.yaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_ylim(bottom=0)
    ax.set_title("Training throughput (smoothed, raw faint; dashed: median)", fontsize=12)
    legend(ax, loc="lower right")
    save(fig, out, "throughput.png", made)


def plot_accuracy(runs, colors, out, made):
    runs = [r for r in runs if len(r.series("val_accuracy")[0])]
    if not runs:
        return
    fig, (ax,) = new_fig(9.0, 4.8)
    any_f1 = any_best = any_end = False
    for r in runs:
        c = colors[r.name]
        xs, ys = r.series("val_accuracy")
        ax.plot(xs, ys, color=c, lw=1.8, marker="o", ms=5)
        fk = r.f1_key()
        if fk:
            any_f1 = True
            fx, fy = r.series(fk)
            ax.plot(fx, fy, color=c, lw=1.4, ls="--", marker="s", ms=4)
        if r.best_step is not None:
            m = xs == r.best_step
            if m.any():
                any_best = True
                ax.plot(xs[m], ys[m], **{**BEST_STYLE, "markerfacecolor": c})
                ax.annotate(f"{ys[m][0]:.3f} @ {r.best_step}", (xs[m][0], ys[m][0]), xytext=(0, 10),
                            textcoords="offset points", ha="center", fontsize=9, color=c,
                            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85})
        any_end |= mark_end(ax, r, c)
    keys = [({"lw": 1.8, "marker": "o", "ms": 5}, "validation accuracy")]
    if any_f1:
        keys.append(({"lw": 1.4, "ls": "--", "marker": "s", "ms": 4}, "validation F1"))
    if any_best:
        keys.append((BEST_STYLE, "best checkpoint (OUT/best)"))
    if any_end:
        keys.append((END_STYLE, "early stopping ended the run"))
    ax.margins(y=0.15)
    ax.set_xlabel("step (optimizer updates)", fontsize=11)
    ax.set_ylabel("validation accuracy (fraction correct)", fontsize=11)
    ax.set_title("Fine-tuning: validation accuracy, best checkpoint and early stopping", fontsize=12)
    key_legend(ax, runs, colors, keys, loc="best")
    save(fig, out, "accuracy.png", made)


def forgetting_label(path):
    """The fine-tuned run's name and its replay ratio (from its config.json) for a model path."""
    p = os.path.normpath(path)
    run_dir = p
    if os.path.basename(p) in ("best", "latest") or re.fullmatch(r"ckpt_\d+", os.path.basename(p)):
        run_dir = os.path.dirname(p)
    cfg = read_json(os.path.join(run_dir, "config.json")) or {}
    replay = cfg.get("replay_ratio")
    if not isinstance(replay, (int, float)):
        replay = 0.25 if "replay" in os.path.basename(run_dir) else 0.0
    return os.path.basename(run_dir) or p, float(replay)


def plot_forgetting(evals, out, made):
    rows = []
    for e in evals:
        m = e["json"].get("metrics", {})
        if not (isinstance(m, dict) and isinstance(m.get("model"), dict) and isinstance(m.get("base"), dict)):
            continue
        model_path = (e["json"].get("model") or {}).get("path", e["file"])
        name, replay = forgetting_label(model_path)
        rows.append((name, replay, m["base"].get("loss"), m["model"].get("loss")))
    rows = [r for r in rows if isinstance(r[2], (int, float)) and isinstance(r[3], (int, float))]
    if not rows:
        return
    rows.sort(key=lambda r: (r[1] > 0, r[0]))
    fig, (ax,) = new_fig(max(8.0, 1.7 * len(rows) + 4), 4.8)
    x = np.arange(len(rows))
    w = 0.38
    base = [r[2] for r in rows]
    after = [r[3] for r in rows]
    ax.bar(x - w / 2, base, w, color="0.65")
    bars = ax.bar(x + w / 2, after, w, color=["tab:orange" if r[1] > 0 else "tab:blue" for r in rows])
    for b, (_, _, b0, a) in zip(bars, rows):
        ax.annotate(f"{a - b0:+.3f}\n({(a - b0) / b0 * 100:+.1f}%)", (b.get_x() + b.get_width() / 2, a),
                    ha="center", va="bottom", fontsize=9, xytext=(0, 2), textcoords="offset points")
    for xb, b0 in zip(x - w / 2, base):
        ax.annotate(f"{b0:.3f}", (xb, b0), ha="center", va="bottom", fontsize=9, xytext=(0, 2),
                    textcoords="offset points", color="0.3")
    handles = [Patch(color="0.65", label="base model (before fine-tuning)")]
    if any(r[1] == 0 for r in rows):
        handles.append(Patch(color="tab:blue", label="fine-tuned, no replay"))
    if any(r[1] > 0 for r in rows):
        handles.append(Patch(color="tab:orange", label="fine-tuned, with replay of pretraining text"))
    ax.set_xticks(x)
    ax.set_xticklabels([r[0] + (f"\n(replay ratio {r[1]:g})" if r[1] > 0 else "") for r in rows], fontsize=10)
    ax.set_ylabel("general-text loss (nats/token)", fontsize=11)
    ax.set_ylim(0, max(base + after) * 1.45)
    ax.set_title("Forgetting: general-text loss before and after fine-tuning (lower is better)", fontsize=12)
    ax.grid(False, axis="x")
    ax.legend(handles=handles, fontsize=9, framealpha=0.85, loc="upper left")
    save(fig, out, "forgetting.png", made)


# ---- tables ---------------------------------------------------------------------------------------

def fmt_rate(v):
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def f4(v):
    return "–" if v is None else f"{v:.4f}"


def metrics_table(runs):
    head = ["run", "type", "steps", "tokens", "last train loss", "best val loss (step)", "last val loss",
            "val perplexity", "val bits/byte", "best val accuracy (step)", "last val accuracy",
            "tokens/s (median)", "end"]
    rows = []
    for r in runs:
        _, tl = r.series("train_loss")
        vx, vl = r.series("val_loss")
        _, bpb = r.series("val_bpb")
        ax_, acc = r.series("val_accuracy")
        _, tps = r.series("tokens_per_s")
        lm_like = r.kind in ("lm", "sft")
        # gpt-finetune logs the selection score as val_loss in trainer_state, but log.jsonl's
        # val_loss is always the validation loss itself.
        best_val = f"{vl.min():.4f} ({int(vx[vl.argmin()])})" if len(vl) else "–"
        steps = f"{r.last_step}" + (f" / {r.steps_configured}" if r.steps_configured else "")
        tokens = fmt_rate(r.last_step * r.tokens_per_step) if r.tokens_per_step else "–"
        if len(acc):
            i = int(acc.argmax())
            if r.best_step is not None and (ax_ == r.best_step).any():
                i = int(np.nonzero(ax_ == r.best_step)[0][0])
            best_acc = f"{acc[i]:.4f} ({int(ax_[i])})"
        else:
            best_acc = "–"
        end_kind, end_step = r.end
        end = {"complete": "all steps", "early stop": f"early stop at {end_step}",
               "stopped": f"stopped at {end_step}"}.get(end_kind, "–")
        rows.append([r.name, r.describe(), steps, tokens, f4(tl[-1] if len(tl) else None), best_val,
                     f4(vl[-1] if len(vl) else None),
                     f"{math.exp(vl[-1]):.3f}" if len(vl) and lm_like and vl[-1] < 50 else "–",
                     f4(bpb[-1] if len(bpb) else None), best_acc, f4(acc[-1] if len(acc) else None),
                     fmt_rate(statistics.median(tps)) if len(tps) else "–", end])
    return head, rows


def eval_tables(evals):
    head = ["file", "task", "model", "metrics"]
    rows = []
    for e in evals:
        j = e["json"]
        m = j.get("metrics", {}) if isinstance(j.get("metrics"), dict) else {}
        task = j.get("task") or ("generate" if "generations" in j else "?")
        model = (j.get("model") or {}).get("path", "?") if isinstance(j.get("model"), dict) else "?"
        parts = []
        if isinstance(m.get("model"), dict) and isinstance(m.get("base"), dict):
            a, b = m["model"], m["base"]
            parts.append(f"forgetting: loss {b.get('loss', 0):.4f} (base) → {a.get('loss', 0):.4f} "
                         f"({m.get('loss_difference', 0):+.4f}, {m.get('relative_change', 0) * 100:+.1f}%)")
            if a.get("bits_per_byte") is not None and b.get("bits_per_byte") is not None:
                parts.append(f"bits/byte {b['bits_per_byte']:.4f} → {a['bits_per_byte']:.4f}")
        else:
            for k, label in (("accuracy", "accuracy"), ("loss", "loss"), ("perplexity", "perplexity"),
                             ("bits_per_byte", "bits/byte"), ("completion_loss", "completion loss"),
                             ("bleu", "BLEU"), ("rougeL", "ROUGE-L"), ("distinct2", "distinct-2"),
                             ("exact_match", "exact match")):
                v = m.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    parts.append(f"{label} {v:.4f}")
            if isinstance(m.get("macro"), dict) and isinstance(m["macro"].get("f1"), (int, float)):
                parts.append(f"macro F1 {m['macro']['f1']:.4f}")
            if isinstance(m.get("gsm8k"), dict):
                g = m["gsm8k"]
                parts.append(f"GSM8K format {g.get('format_rate', 0):.2f}, accuracy {g.get('accuracy', 0):.2f}")
        rows.append([os.path.basename(e["file"]), task, model, "; ".join(parts) or "–"])
    return head, rows


def setting_text(v):
    """A config value as written in a config file, short: strings bare, floats to 6 digits (the
    float32 settings print as 3.0000001e-05 otherwise)."""
    if isinstance(v, str):
        return v if v else '""'
    if isinstance(v, float):
        return format(v, ".6g")
    return json.dumps(v)


def settings_table(runs):
    keys = sorted({k for r in runs for k in r.config})
    head = ["setting"] + [r.name for r in runs]
    rows, differ = [], []
    for k in keys:
        vals = [setting_text(r.config[k]) if k in r.config else "–" for r in runs]
        rows.append([k] + vals)
        differ.append(len(set(vals)) > 1)
    rows.append(["(tokens per step)"] + [str(r.tokens_per_step or "–") for r in runs])
    differ.append(len({r.tokens_per_step for r in runs}) > 1)
    return head, rows, differ


# ---- samples --------------------------------------------------------------------------------------

def read_samples(path, source, limit=None):
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    j = json.loads(line)
                except ValueError:
                    continue
                if isinstance(j, dict) and "completion" in j:
                    out.append({"source": source, "prompt": str(j.get("prompt", "")),
                                "completion": str(j["completion"])})
                if limit and len(out) >= limit:
                    break
    except OSError as e:
        warn(f"{path}: {e.strerror}")
    return out


# ---- writing the report ---------------------------------------------------------------------------

CAPTIONS = {
    "loss": "Train loss per step (faint) and its moving average (solid), validation loss (dashed, "
            "circles) at every validation, against optimizer steps (left) and tokens processed "
            "(right: steps × tokens per step from config.json; with trimmed fine-tuning rows this is "
            "an upper bound). A star marks the best checkpoint when it is chosen by validation loss; "
            "a dotted vertical line, a run that ended before its configured steps.",
    "lr.png": "The learning rate each step used.",
    "grad_norm.png": "Global L2 norm of the gradient before clipping (log scale). Spikes show "
                     "instability; values above the dashed line were clipped.",
    "throughput.png": "Token positions computed per second in each step (trimmed fine-tuning rows "
                      "make it vary with the batch), with each run's median.",
    "accuracy.png": "Validation accuracy at each validation (F1 when the log has it); the star is "
                    "the checkpoint kept as OUT/best, the dotted line where early stopping ended "
                    "the run.",
    "forgetting.png": "gpt-eval --forgetting: the base model's and the fine-tuned model's loss on "
                      "the same general-text windows; the label over each bar is the change.",
}


def caption(name):
    return CAPTIONS["loss"] if name.startswith("loss-") else CAPTIONS.get(name, "")


def plot_title(name):
    if name.startswith("loss-"):
        return KINDS[name[5:-4]][0]
    return {"lr.png": "Learning rate", "grad_norm.png": "Gradient norm", "throughput.png": "Throughput",
            "accuracy.png": "Validation accuracy", "forgetting.png": "Forgetting"}.get(name, name)


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def md_table(head, rows, bold=None):
    lines = ["| " + " | ".join(md_cell(h) for h in head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(rows):
        cells = [md_cell(c) for c in r]
        if bold and bold[i]:
            cells[0] = f"**{cells[0]}**"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(head, rows, highlight=None, cls=""):
    e = html.escape
    out = [f'<table class="{cls}"><thead><tr>' + "".join(f"<th>{e(str(h))}</th>" for h in head) +
           "</tr></thead><tbody>"]
    for i, r in enumerate(rows):
        attr = ' class="differs"' if highlight and highlight[i] else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def fence(text):
    longest = max([len(m) for m in re.findall(r"`+", text)] + [2])
    return "`" * (longest + 1)


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.88em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } tr.differs td { background: #fff6d6; font-weight: 600; }
.scroll { overflow-x: auto; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; max-width: 1000px; }
pre { background: #f7f7f7; border: 1px solid #e2e2e2; padding: 0.6em; white-space: pre-wrap; }
.prompt { font-weight: 700; color: #1f4e9c; }
"""


def write_report(out, args, runs, evals, samples, made, notes):
    e = html.escape
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    cmd = " ".join(shlex.quote(a) for a in ["scripts/plot_run.py"] + sys.argv[1:])
    title = args.title or "Training report"
    mhead, mrows = metrics_table(runs)
    ehead, erows = eval_tables(evals)
    shead, srows, sdiff = settings_table(runs) if runs else ([], [], [])
    run_list = [(r.name, os.path.abspath(r.path), r.describe()) for r in runs]

    # ---- HTML
    h = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{e(title)}</title>"
         f"<style>{CSS}</style></head><body>",
         f"<h1>{e(title)}</h1>",
         f'<p class="meta">Written {e(now)} by <code>{e(cmd)}</code></p>',
         "<h2>Runs</h2><ul>"]
    h += [f"<li><b>{e(n)}</b> ({e(d)}): <code>{e(p)}</code></li>" for n, p, d in run_list]
    h.append("</ul>")
    for n in notes:
        h.append(f"<p class=\"meta\">{e(n)}</p>")
    if runs:
        h += ["<h2>Final metrics</h2>", '<div class="scroll">', html_table(mhead, mrows, cls="metrics"), "</div>",
              '<p class="meta">Validation loss is the mean over the validation set at the run\'s '
              "validations; perplexity = exp(last validation loss) (language-model and SFT runs); "
              "bits per byte when the data's meta.json gives bytes per token.</p>"]
    if erows:
        h += ["<h2>Evaluations (gpt-eval --out-json)</h2>", '<div class="scroll">',
              html_table(ehead, erows, cls="evals"), "</div>"]
    if made:
        h.append("<h2>Plots</h2>")
        for name in made:
            h += [f"<figure><h3>{e(plot_title(name))}</h3>",
                  f'<img src="{e(name)}" alt="{e(plot_title(name))}">',
                  f"<figcaption>{e(caption(name))}</figcaption></figure>"]
    if samples:
        h.append("<h2>Sample generations</h2>")
        for s in samples:
            h.append(f"<h4>{e(s['source'])}</h4><pre><span class=\"prompt\">{e(s['prompt'])}</span>"
                     f"{e(s['completion'])}</pre>")
    if runs:
        h += ["<h2>Settings (config.json)</h2>",
              '<p class="meta">Highlighted: settings that differ between the runs.</p>',
              '<div class="scroll">', html_table(shead, srows, sdiff, cls="settings"), "</div>"]
    h.append("</body></html>\n")
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write("\n".join(h))

    # ---- Markdown
    m = [f"# {title}", "", f"Written {now} by `{cmd}`", "", "## Runs", ""]
    m += [f"- **{n}** ({d}): `{p}`" for n, p, d in run_list]
    m += [""] + [f"_{n}_" for n in notes] + ([""] if notes else [])
    if runs:
        m += ["## Final metrics", "", md_table(mhead, mrows), "",
              "Perplexity = exp(last validation loss) for language-model and SFT runs.", ""]
    if erows:
        m += ["## Evaluations (gpt-eval --out-json)", "", md_table(ehead, erows), ""]
    if made:
        m += ["## Plots", ""]
        for name in made:
            m += [f"### {plot_title(name)}", "", f"![{plot_title(name)}]({name})", "", caption(name), ""]
    if samples:
        m += ["## Sample generations", ""]
        for s in samples:
            text = s["prompt"] + s["completion"]
            fc = fence(text)
            m += [f"**{s['source']}**", "", fc, text, fc, ""]
    if runs:
        m += ["## Settings (config.json)", "", "Bold: settings that differ between the runs.", "",
              md_table(shead, srows, sdiff), ""]
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(m))


def main():
    ap = argparse.ArgumentParser(
        description="Plots and an HTML/Markdown report from gpt-pretrain / gpt-finetune run directories.",
        epilog="Example: scripts/plot_run.py runs/tiny runs/sst2-lora --eval-json runs/forgetting.json "
               "--samples runs/sample.jsonl --out runs/report")
    ap.add_argument("runs", nargs="*", metavar="RUN_DIR", help="directories with log.jsonl and config.json")
    ap.add_argument("--out", default="report", help="output folder (default: report)")
    ap.add_argument("--eval-json", nargs="+", action="extend", default=[], metavar="FILE",
                    help="gpt-eval --out-json files (forgetting files make the forgetting chart)")
    ap.add_argument("--samples", nargs="+", action="extend", default=[], metavar="FILE",
                    help="JSONL files as gpt-generate --jsonl writes (prompt, completion)")
    ap.add_argument("--smooth", type=int, default=0, metavar="N",
                    help="moving-average window in steps for the train curves (default: about 1/20 of a run)")
    ap.add_argument("--title", default="", help="the report's title")
    args = ap.parse_args()

    notes = []
    names = unique_names(args.runs) if args.runs else []
    runs = []
    for path, name in zip(args.runs, names):
        if not os.path.isfile(os.path.join(path, "log.jsonl")):
            warn(f"{path}: no log.jsonl, skipped")
            notes.append(f"{path}: no log.jsonl, skipped")
            continue
        r = Run(path, name)
        if not r.rows:
            warn(f"{path}/log.jsonl: empty, skipped")
            continue
        if not r.config:
            notes.append(f"{name}: no config.json, so no settings and no tokens axis")
        runs.append(r)
    evals = []
    for p in args.eval_json:
        j = read_json(p)
        if not isinstance(j, dict):
            warn(f"{p}: {'not a gpt-eval JSON file' if os.path.isfile(p) else 'no such file'}, skipped")
            continue
        evals.append({"file": p, "json": j})
    if not runs and not evals:
        ap.error("nothing to report: no RUN_DIR with a log.jsonl and no readable --eval-json")

    os.makedirs(args.out, exist_ok=True)
    for f in os.listdir(args.out):  # plots of an earlier report that this one may not redraw
        if f.endswith(".png") and (f.startswith("loss-") or f in CAPTIONS):
            os.remove(os.path.join(args.out, f))
    plt.rcParams.update({"axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9})
    palette = plt.get_cmap("tab10").colors
    colors = {r.name: palette[i % len(palette)] for i, r in enumerate(runs)}
    made = []
    for kind in KINDS:
        group = [r for r in runs if r.kind == kind]
        if group:
            plot_loss(group, kind, colors, args.out, made, args.smooth)
    if any(len(r.series("val_accuracy")[0]) for r in runs):
        plot_accuracy(runs, colors, args.out, made)
    if any(len(r.series("lr")[0]) for r in runs):
        plot_lr(runs, colors, args.out, made)
    if any(len(r.series("grad_norm")[0]) for r in runs):
        plot_grad_norm(runs, colors, args.out, made, args.smooth)
    if any(len(r.series("tokens_per_s")[0]) for r in runs):
        plot_throughput(runs, colors, args.out, made, args.smooth)
    plot_forgetting(evals, args.out, made)

    samples = []
    for r in runs:
        p = os.path.join(r.path, "sample.jsonl")
        if os.path.isfile(p):
            samples += read_samples(p, f"{r.name}/sample.jsonl")
    for p in args.samples:
        samples += read_samples(p, os.path.basename(p))
    for e in evals:
        gens = e["json"].get("generations")
        if isinstance(gens, list):
            for g in gens[:3]:
                if isinstance(g, dict) and "completion" in g:
                    samples.append({"source": f"{os.path.basename(e['file'])} example {g.get('index', '?')}",
                                    "prompt": str(g.get("prompt", "")), "completion": str(g["completion"])})

    write_report(args.out, args, runs, evals, samples, made, notes)
    print(f"report: {os.path.abspath(os.path.join(args.out, 'index.html'))} "
          f"(and report.md, {len(made)} plot{'s' if len(made) != 1 else ''})")


if __name__ == "__main__":
    main()
