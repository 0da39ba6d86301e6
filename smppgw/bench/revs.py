"""The gateways a benchmark run compares: the current checkout, and other revisions built into
`.bench/rev-<sha>/` (a snapshot of the commit and a venv with it installed editable).

A revision's snapshot is `git archive` output rather than a registered `git worktree`: it is
never edited, and it leaves nothing behind in the repository's worktree list. It is built once
per sha and reused while its `.ready` stamp is there.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the current checkout


@dataclass(frozen=True)
class Gateway:
    """Where a gateway under test comes from: `python -m smppgw` run in `root`."""

    label: str
    python: str
    root: Path
    sha: str = ""


def current() -> Gateway:
    return Gateway("current", sys.executable, ROOT, _git(ROOT, "rev-parse", "HEAD", check=False))


def _git(root: Path, *args: str, check: bool = True, text: bool = True) -> str:
    r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, check=False)
    if r.returncode and check:
        raise SystemExit(f"bench: git {' '.join(args)}: {r.stderr.decode().strip()}")
    return r.stdout.decode().strip() if text else r.stdout


def resolve(rev: str, root: Path = ROOT) -> str:
    return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def build(rev: str, root: Path = ROOT, cache: Path | None = None, log=print) -> Gateway:
    """The gateway of revision `rev`: its snapshot and venv, built unless already there."""
    sha = resolve(rev, root)
    if not sha:
        raise SystemExit(f"bench: {rev!r} is not a commit in {root}")
    base = (cache or root / ".bench") / f"rev-{sha}"
    src, venv, stamp = base / "src", base / "venv", base / ".ready"
    python = venv / "bin" / "python"
    if not stamp.exists():
        log(f"bench: building {rev} ({sha[:10]}) in {base} …")
        shutil.rmtree(base, ignore_errors=True)
        src.mkdir(parents=True)
        archive = _git(root, "archive", "--format=tar", sha, text=False)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(src, filter="data")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-e", str(src)],
            capture_output=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        if pip.returncode:
            raise SystemExit(f"bench: pip install -e {src} failed:\n{pip.stderr.decode()[-3000:]}")
        stamp.write_text(sha + "\n")
    return Gateway(rev, str(python), src, sha)
