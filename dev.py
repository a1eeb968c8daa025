#!/usr/bin/env python3
"""Fresh-machine entry point: `python3 dev.py demo` and `python3 dev.py test`.

Needs only Python >= 3.10. Creates `.venv` beside this file on first use (and again
whenever pyproject.toml changes), installs the package with every extra the demo and
the test suite need, then runs the demo or the full suite. Extra arguments after
`test` go to pytest (`python3 dev.py test -k store -x`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
EXTRAS = "dev,openai,anthropic,postgres,mysql,mcp,pdf"
STAMP = VENV / ".power-loop-stamp"


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(EXTRAS.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def ensure_venv() -> Path:
    """Create or refresh `.venv` so it matches pyproject.toml; return its python."""
    py = _python()
    if py.exists() and STAMP.exists() and STAMP.read_text() == _stamp():
        return py
    if not py.exists():
        print(f"[dev] creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    print(f"[dev] installing power-loop[{EXTRAS}] (first run only)", flush=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
    STAMP.write_text(_stamp())
    return py


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "bench", "env"):
        print(__doc__)
        return 2
    py = ensure_venv()
    cmd, rest = argv[0], argv[1:]
    if cmd == "env":
        print(py)
        return 0
    if cmd == "demo":
        return subprocess.call([str(py), "-m", "power_loop", "demo", *rest], cwd=ROOT)
    if cmd == "bench":
        return subprocess.call([str(py), "-m", "benchmarks", *rest], cwd=ROOT)
    checks = [
        [str(py), "-m", "ruff", "check", "src", "tests", "examples", "benchmarks", "dev.py"],
        [str(py), "-m", "mypy", "src"],
    ]
    for check in checks:
        print(f"[dev] {' '.join(Path(c).name if i == 0 else c for i, c in enumerate(check))}", flush=True)
        code = subprocess.call(check, cwd=ROOT)
        if code:
            return code
    code = subprocess.call([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", *rest], cwd=ROOT)
    return 0 if code == 5 else code  # 5 = no tests collected (a filtered run)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
