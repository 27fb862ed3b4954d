"""Adversarial fuzzing of the compiler: mutated specs must compile or fail with a located MorphError.

    python -m benchmarks.fuzz [--cases 10000] [--seed 0] [--timeout 5] [--workers 2] [--cli 200]

Each case is a seeded mutation of a reference spec (specs/, specs/bench/, tests/errors/):
token deletions, insertions, swaps and duplications; numbers swapped for huge, tiny, negative,
non-integral values or expressions (`10 ** 100000000`, `2 ** 2 ** 2 ** 2 ** 2`); deep nesting
(`residual {` x 500, `------8`, `((((1))))`); blocks that call themselves or each other; `use`
of odd targets (a directory, a binary file, a NUL byte, /dev/zero, the file itself); huge
`repeat`, `layers`, `pyramid(levels)` and widths. A case runs in a worker process (spawned,
one thread, address space capped at --mem-gib) as parse -> build (static checks) -> compile
and one forward pass when the model is small, and is classified as

    ok          it compiled (and ran)
    located     a MorphError with file, line and column
    unlocated   a MorphError without a location (a defect)
    exception   any other exception (a defect: the user would see a traceback or "internal error")
    hang        no answer within --timeout seconds (the worker is killed)
    memory      MemoryError / an allocator failure (a defect)

`--cli N` also runs N other cases through `morphc check` in subprocesses, 25 files a call (exit
0, 1 or 2 is fine; 3, an internal error, a traceback or a hang is a defect). The summary is printed and written to
benchmarks/results/fuzz.json; the first few defects are shown with their spec text.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted([*ROOT.glob("specs/*.morph"), *ROOT.glob("specs/bench/*.morph"),
                *ROOT.glob("tests/errors/*.morph")])
DEFECTS = ("unlocated", "exception", "hang", "memory")

WORDS = ["{", "}", "(", ")", "[", "]", ",", "=", ":", "->", ".", "*", "**", "-", "+", "/", "//",
         "%", "#", '"', "convex", "block", "use", "spec", "model", "data", "train", "grow",
         "residual", "parallel", "partition", "repeat", "pyramid", "embed", "pos_embed",
         "attention", "rope", "sdpa", "kv_heads", "fraction", "theta", "mlp", "layernorm", "linear",
         "unembed", "relu", "softplus", "mix", "hull",
         "petal", "identity", "scale", "lanes", "heads", "hidden", "dim", "vocab", "ctx", "join",
         "tie", "tok", "d", "x", "step", "add_head", "true", "none", "\n", "0", "1", "-1",
         "1e9", "0.5", '"x"', "max(1, 2)", "sqrt(-1)", "log2(0)", "\x00", "é", "\t", "\\"]
NUMBERS = ["0", "1", "-1", "2", "3", "7", "-0", "0.0", "0.5", "1e300", "1e-300", "1e309",
           "65536", "99999999999", "1000000000000", "2 ** 31", "2 ** 63", "2 ** 64",
           "10 ** 100000000", "2 ** 2 ** 2 ** 2 ** 2", "9" * 5000, "1 / 0", "1 // 0", "7 / 2",
           "(-2) ** 0.5", "2 ** -1", "4 ** 0.5", "max(2 ** 40, 3)", "int(1e300)", "ceil(1e308 * 10)",
           "round(1e400)", "sqrt(10 ** 400)", "log2(10 ** 400)", "abs(-(2 ** 62))"]
ODD_USES = ['"."', '"sub"', '"blob.bin"', '"latin1.morph"', r'"a\u0000b.morph"', '"/dev/zero"',
            '"/dev/null"', '"/proc/self/mem"', '"SELF"', '"nowhere.morph"', '"' + "x" * 5000 + '"',
            '""', '"fifo.morph"', '"../../../../../../etc/passwd"', '"huge.morph"', '"toolarge.morph"', '"ok.morph"']
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|[A-Za-z_]\w*|->|//|\*\*|\S')


# ----------------------------------------------------------------------------- generator
def _tokens(text):
    return [(m.start(), m.end()) for m in TOKEN.finditer(text)]


def _replace_token(rng, text, pick):
    toks = _tokens(text)
    if not toks:
        return text
    a, b = rng.choice(toks)
    return text[:a] + pick(text[a:b]) + text[b:]


def m_delete_token(rng, text):
    return _replace_token(rng, text, lambda t: "")


def m_insert_token(rng, text):
    i = rng.randrange(len(text) + 1)
    return text[:i] + " " + rng.choice(WORDS) + " " + text[i:]


def m_replace_token(rng, text):
    return _replace_token(rng, text, lambda t: rng.choice(WORDS))


def m_swap_tokens(rng, text):
    toks = _tokens(text)
    if len(toks) < 2:
        return text
    (a, b), (c, d) = sorted(rng.sample(toks, 2))
    return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]


def m_number(rng, text):
    nums = [m.span() for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]
    if not nums:
        return m_insert_token(rng, text)
    a, b = rng.choice(nums)
    return text[:a] + rng.choice(NUMBERS) + text[b:]


def m_lines(rng, text):
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    op = rng.randrange(3)
    if op == 0:
        del lines[i]
    elif op == 1:
        lines.insert(i, lines[rng.randrange(len(lines))])
    else:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def _model_line(rng, text):
    """The index of a line inside `model { }` (or any line), for wrapping or inserting."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines) if ln.startswith("model")), 0)
    inner = [i for i in range(start + 1, len(lines)) if lines[i].strip() and lines[i].startswith("  ")]
    return lines, (rng.choice(inner) if inner else len(lines) - 1)


def m_nest(rng, text):
    k = rng.choice([20, 63, 64, 65, 200, 500, 3000, 20000])
    kind = rng.randrange(4)
    if kind == 0:  # residual { residual { ... } }
        lines, i = _model_line(rng, text)
        lines[i] = "residual { " * k + lines[i] + " }" * k
        return "\n".join(lines)
    if kind == 1:
        return _replace_token(rng, text, lambda t: "-" * k + t) if "=" in text else text
    if kind == 2:
        return m_number(rng, text).replace("= ", "= " + "(" * k, 1).replace("\n", ")" * k + "\n", 1) \
            if rng.random() < 0.5 else re.sub(r"= (\d+)", lambda m: "= " + "(" * k + m.group(1) + ")" * k,
                                             text, count=1)
    lines, i = _model_line(rng, text)  # named groups
    lines[i] = "".join(f"g{j} {{ " for j in range(k)) + lines[i] + " }" * k
    return "\n".join(lines)


def m_recursion(rng, text):
    defs = ["block R(d) {\n  x: R(d = d)\n}\n",
            "block R(d) {\n  residual { R(d = d) }\n}\n",
            "block A(d) {\n  b: B(d = d)\n}\nblock B(d) {\n  a: A(d = d)\n}\n",
            "block R(d) {\n  p: pyramid(block = R, width = d, levels = 1)\n}\n"]
    d = rng.choice(defs)
    lines, i = _model_line(rng, text)
    name = "R" if "R(" in d else "A"
    lines.insert(i, f"  rr: {name}(d = 64)")
    return d + "\n".join(lines)


def m_use(rng, text):
    return f"use {rng.choice(ODD_USES)}\n" + text


def m_big(rng, text):
    subs = [(r"repeat\((\w+)\)", lambda: f"repeat({rng.choice(['1000000000000', '65536', '100000', '0', '-1', 'layers'])})"),
            (r"layers\s*=\s*\d+", lambda: f"layers = {rng.choice(['65536', '5000', '100000', '1000000000'])}"),
            (r"levels\s*=\s*\d+", lambda: f"levels = {rng.choice(['99999999999', '65536', '64', '30', '12', '0'])}"),
            (r"\bd\s*=\s*\d+", lambda: f"d = {rng.choice(['30000', '100000', '2 ** 40', '1', '3'])}"),
            (r"heads\s*=\s*\d+", lambda: f"heads = {rng.choice(['2 ** 2 ** 2 ** 2 ** 2', '0', '10 ** 30', '64'])}"),
            (r"vocab\s*=\s*\d+", lambda: f"vocab = {rng.choice(['2 ** 62', '10 ** 12', '1', '0'])}"),
            (r"ctx\s*=\s*\d+", lambda: f"ctx = {rng.choice(['10 ** 9', '1', '0', '65536'])}")]
    rng.shuffle(subs)
    for pat, new in subs:
        if re.search(pat, text):
            return re.sub(pat, lambda m: new(), text, count=1)
    return m_number(rng, text)


def m_garbage(rng, text):
    i = rng.randrange(len(text) + 1)
    junk = "".join(rng.choice(["\x00", "\x7f", "\ufeff", "λ", "\r", "\u2028", "{", "}", "$", "@", "`",
                                "'", ";", "\\", '"']) for _ in range(rng.randint(1, 4)))
    return text[:i] + junk + text[i:]


MUTATORS = [m_delete_token, m_insert_token, m_replace_token, m_swap_tokens, m_number, m_number,
            m_lines, m_nest, m_recursion, m_use, m_big, m_big, m_garbage]


def generate(n: int, seed: int = 0):
    """`n` seeded cases: (case id, seed spec name, mutated text)."""
    rng = random.Random(seed)
    texts = [(p, p.read_text(encoding="utf-8")) for p in SEEDS]
    valid = [t for t in texts if "errors" not in t[0].parts]
    for i in range(n):
        path, text = rng.choice(valid if rng.random() < 0.6 else texts)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            text = rng.choice(MUTATORS)(rng, text)
        yield i, path.name, text


def make_workdir(root: Path) -> Path:
    """A directory holding the odd `use` targets next to where cases are written."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 8)
    (root / "latin1.morph").write_bytes("spec é\nblock B(d) { x: linear(out = d) }\n".encode("latin-1"))
    (root / "huge.morph").write_text("# filler\n" * 28_000)      # 252 KiB: under the limit
    (root / "toolarge.morph").write_text("# filler\n" * 30_000)  # 270 KiB: over it
    (root / "ok.morph").write_text("block B(d) {\n  x: linear(out = d)\n}\n")
    fifo = root / "fifo.morph"
    if not fifo.exists() and hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
    return root


# ----------------------------------------------------------------------------- one case
def classify(text: str, filename: str, max_params: int = 2_000_000) -> tuple[str, str]:
    """Run one case in this process: ("ok" | "located" | "unlocated" | "exception" | "memory", detail)."""
    import morphdsl

    try:
        text = text.replace('"SELF"', json.dumps(Path(filename).name))
        module = morphdsl.parse(text, filename)
        g = morphdsl.build(module)
        if g.n_params() <= max_params:
            import torch

            from morphdsl.compile import example_input

            m = morphdsl.compile(g)
            with torch.no_grad():
                m(example_input(g, 1, 4))
        return "ok", ""
    except morphdsl.MorphError as e:
        if e.span is None or not e.span.line or not e.span.column:
            return "unlocated", f"{type(e).__name__}: {e}"
        return "located", type(e).__name__
    except MemoryError as e:
        return "memory", f"MemoryError: {e}"
    except RecursionError as e:
        return "exception", f"RecursionError: {_where(e)}"
    except Exception as e:  # noqa: BLE001 - that is what we are counting
        msg = f"{type(e).__name__}: {str(e)[:200]} at {_where(e)}"
        if "allocate" in str(e) or "out of memory" in str(e):
            return "memory", msg
        return "exception", msg


def _where(e) -> str:
    import traceback

    tb = traceback.extract_tb(e.__traceback__)
    frames = [f for f in tb if "morphdsl" in f.filename] or tb
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


def _worker(conn, workdir: str, mem_gib: float, run=classify):
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        import resource

        cap = int(mem_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ImportError, ValueError, OSError):
        pass
    import torch

    import morphdsl  # noqa: F401 - imported before "ready", so no case pays for it

    torch.set_num_threads(1)
    os.chdir(workdir)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        i, text = job
        fname = os.path.join(workdir, f"case{i % 7}.morph")
        with open(fname, "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(text)
        conn.send(run(text, fname))


class Pool:
    """Persistent spawned workers; a worker that overruns the timeout is killed and replaced."""

    def __init__(self, n: int, workdir: Path, mem_gib: float, run=classify):
        self.ctx = mp.get_context("spawn")
        self.workdir, self.mem_gib, self.fn = str(workdir), mem_gib, run
        self.workers = [self._start() for _ in range(n)]

    def _start(self):
        a, b = self.ctx.Pipe()
        p = self.ctx.Process(target=_worker, args=(b, self.workdir, self.mem_gib, self.fn),
                             daemon=True)
        p.start()
        if not a.poll(120) or a.recv() != "ready":  # start-up (imports) is not a case's time
            raise RuntimeError("a fuzz worker did not start")
        return [p, a, None, 0.0]  # process, conn, job, started

    def run(self, jobs, timeout: float, on_result):
        jobs = iter(jobs)
        pending = True
        while pending or any(w[2] is not None for w in self.workers):
            for k, w in enumerate(self.workers):
                if w[2] is None and pending:
                    job = next(jobs, None)
                    if job is None:
                        pending = False
                        continue
                    w[1].send((job[0], job[2]))
                    w[2], w[3] = job, time.monotonic()
            for k, w in enumerate(self.workers):
                if w[2] is None:
                    continue
                if w[1].poll(0.002):
                    job, started = w[2], w[3]
                    try:
                        res = w[1].recv()
                        w[2] = None
                    except EOFError:  # the worker died (e.g. killed by the OS)
                        res = ("memory", "worker died")
                        w[0].join()
                        self.workers[k] = self._start()
                    on_result(job, res, time.monotonic() - started)
                elif not w[0].is_alive() or time.monotonic() - w[3] > timeout:
                    job, started = w[2], w[3]
                    dead = not w[0].is_alive()
                    w[0].kill()
                    w[0].join()
                    self.workers[k] = self._start()
                    on_result(job, ("memory", "worker died") if dead else ("hang", f"> {timeout:g} s"),
                              time.monotonic() - started)

    def close(self):
        for p, conn, _, _ in self.workers:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            p.join(timeout=2)
            if p.is_alive():
                p.kill()


def fuzz(cases: int, seed: int = 0, timeout: float = 5.0, workers: int = 2, mem_gib: float = 4.0,
         workdir: Path | None = None, progress: bool = False) -> dict:
    """Run `cases` cases; returns {"counts": {...}, "defects": [...], "slowest": s, ...}."""
    tmp = tempfile.TemporaryDirectory() if workdir is None else None
    wd = make_workdir(Path(tmp.name if tmp else workdir))
    counts = {k: 0 for k in ("ok", "located", *DEFECTS)}
    defects, times = [], []
    t0 = time.time()

    def done(job, res, secs):
        kind, detail = res
        counts[kind] += 1
        times.append(secs)
        if kind in DEFECTS:
            defects.append({"case": job[0], "seed": job[1], "kind": kind, "detail": detail,
                            "text": job[2][:4000]})
        if progress and sum(counts.values()) % 500 == 0:
            print(f"  {sum(counts.values())} cases, {time.time() - t0:.0f} s: {counts}", flush=True)

    pool = Pool(workers, wd, mem_gib)
    try:
        pool.run(generate(cases, seed), timeout, done)
    finally:
        pool.close()
        if tmp:
            tmp.cleanup()
    return {"cases": cases, "seed": seed, "timeout_s": timeout, "counts": counts,
            "slowest_s": round(max(times, default=0.0), 3), "wall_s": round(time.time() - t0, 1),
            "defects": defects}


def fuzz_cli(n: int, seed: int = 0, timeout: float = 60.0, batch: int = 25) -> dict:
    """`n` cases through `morphc check` as subprocesses, `batch` files per call: exit 0, 1 or 2
    (a usage error) is fine; 3 (an internal error), a traceback or a hang is a defect. A batch
    with a defect is rerun file by file to name the case."""
    counts = {"ok": 0, "error": 0, "internal": 0, "hang": 0}
    bad = []
    # this checkout's morphdsl, whatever is installed (the subprocesses run in a temp dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

    def check(files, wd, limit):
        try:
            r = subprocess.run([sys.executable, "-m", "morphdsl", "check", *map(str, files)], cwd=wd,
                               capture_output=True, text=True, timeout=limit, env=env)
        except subprocess.TimeoutExpired:
            return "hang", "timeout"
        if r.returncode not in (0, 1, 2) or "Traceback" in r.stderr or "internal error" in r.stderr:
            return "internal", r.stderr[-500:]
        return "fine", r.stdout

    with tempfile.TemporaryDirectory() as tmp:
        wd = make_workdir(Path(tmp))
        cases = list(generate(n, seed + 1))
        for at in range(0, len(cases), batch):
            files = []
            for i, name, text in cases[at:at + batch]:
                f = wd / f"cli{i}.morph"
                f.write_text(text.replace('"SELF"', json.dumps(f.name)), encoding="utf-8",
                             errors="surrogatepass")
                files.append((i, name, f))
            kind, out = check([f for _, _, f in files], wd, timeout)
            if kind == "fine":
                oks = sum(1 for line in out.splitlines() if ": ok (" in line)
                counts["ok"] += oks
                counts["error"] += len(files) - oks
                continue
            for i, name, f in files:  # find the culprit(s)
                k, detail = check([f], wd, timeout)
                if k == "fine":
                    counts["ok" if ": ok (" in detail else "error"] += 1
                else:
                    counts[k] += 1
                    bad.append({"case": i, "seed": name, "kind": k, "stderr": detail,
                                "text": f.read_text(errors="replace")[:4000]})
    return {"cases": n, "counts": counts, "defects": bad}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mem-gib", type=float, default=4.0)
    ap.add_argument("--cli", type=int, default=200, help="cases also run through `morphc check`")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz.json"))
    a = ap.parse_args(argv)
    print(f"fuzzing {a.cases} cases (seed {a.seed}, {a.workers} workers, {a.timeout:g} s limit)")
    res = fuzz(a.cases, a.seed, a.timeout, a.workers, a.mem_gib, progress=True)
    print(f"in-process: {res['counts']} in {res['wall_s']} s; slowest case {res['slowest_s']} s")
    if a.cli:
        res["cli"] = fuzz_cli(a.cli, a.seed)
        print(f"morphc check: {res['cli']['counts']}")
    for d in res["defects"][:8]:
        print(f"--- case {d['case']} ({d['seed']}): {d['kind']}: {d['detail']}\n{d['text'][:600]}")
    res["date"] = time.strftime("%Y-%m-%d")
    res["command"] = "python -m benchmarks.fuzz " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps({**res, "defects": res["defects"][:50]}, indent=1))
    n_bad = sum(res["counts"][k] for k in DEFECTS)
    n_bad += sum(res.get("cli", {}).get("counts", {}).get(k, 0) for k in ("internal", "hang"))
    return 1 if n_bad else 0


if __name__ == "__main__":
    sys.exit(main())
