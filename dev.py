#!/usr/bin/env python3
"""Fresh-machine entry point: `python3 dev.py demo` and `python3 dev.py test`.

Needs only Python >= 3.10. Creates `.venv` beside this file on first use (and again
whenever pyproject.toml changes), installs the package with every extra the demo and
the test suite need, then runs the demo or the full suite. Extra arguments after
`test` go to pytest (`python3 dev.py test -k store -x`).

A full `test` run (no extra arguments) then runs the LLM transport conformance tests
(tests/conformance/llm) a second time in `.venv-legacy`, a small pinned environment
with the previous major versions of the `openai` and `anthropic` SDKs, so both majors
stay supported.
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
LEGACY_VENV = ROOT / ".venv-legacy"
# The previous SDK majors (the current ones are in .venv) and only what their tests need.
LEGACY_REQUIREMENTS = ("openai==2.54.0", "anthropic==1.17.0", "pytest>=8", "pytest-asyncio>=0.23")
LEGACY_TESTS = "tests/conformance/llm"


def _python(venv_dir: Path = VENV) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp(*parts: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for part in (EXTRAS, *parts):
        digest.update(part.encode())
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


def ensure_legacy_venv() -> Path:
    """Create or refresh `.venv-legacy` (the package + previous SDK majors); return its python."""
    py = _python(LEGACY_VENV)
    stamp_file = LEGACY_VENV / ".power-loop-stamp"
    stamp = _stamp("legacy", *LEGACY_REQUIREMENTS)
    if py.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return py
    if not py.exists():
        print(f"[dev] creating virtual environment in {LEGACY_VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(LEGACY_VENV)
    sdks = ", ".join(LEGACY_REQUIREMENTS[:2])
    print(f"[dev] installing power-loop with {sdks} (first run only)", flush=True)
    pip = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-e", str(ROOT), *LEGACY_REQUIREMENTS], check=True)
    stamp_file.write_text(stamp)
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
    if code == 5:  # no tests collected (a filtered run)
        return 0
    if code or rest:
        return code
    legacy = ensure_legacy_venv()
    print(f"[dev] {LEGACY_TESTS} with the previous SDK majors ({', '.join(LEGACY_REQUIREMENTS[:2])})",
          flush=True)
    return subprocess.call([str(legacy), "-m", "pytest", "-q", "-p", "no:cacheprovider", LEGACY_TESTS],
                           cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
