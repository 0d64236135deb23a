"""The stream-server image, checked as far as a machine without a Docker engine allows: its
locked dependencies resolve for linux/amd64 Python 3.13 (a missing wheel fails here, not at a
user's docker build), the lock matches what the project pins, and the build context is small."""

from __future__ import annotations

import glob
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "services" / "stream_server" / "requirements.lock"
sys.path.insert(0, str(ROOT / "scripts"))
from image_requirements import requirements  # noqa: E402


def locked() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==([^\s\\]+)", LOCK.read_text(), re.MULTILINE)
    return {name.lower().replace("_", "-"): version for name, version in pins}


def test_the_lock_holds_what_the_project_pins():
    pins = locked()
    for line in requirements():
        name, version = line.split("==")
        assert pins.get(name.lower().replace("_", "-")) == version, f"{line}: run make lock"
    assert "--hash=sha256:" in LOCK.read_text()


def test_the_dockerfile_installs_the_lock_with_hashes_on_a_pinned_base():
    dockerfile = (ROOT / "services" / "stream_server" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.13\.\d+-slim-bookworm$", dockerfile, re.MULTILINE)
    assert "pip install --require-hashes --no-deps --only-binary=:all: -r" in dockerfile
    assert "--platform linux/amd64" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_the_locked_set_resolves_for_linux_amd64_python_3_13(tmp_path):
    """Every locked file exists for the image's platform and matches its hash."""
    done = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--require-hashes", "--only-binary=:all:", "--implementation", "cp",
            "--python-version", "3.13", "--platform", "manylinux_2_28_x86_64",
            "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
            "--dest", str(tmp_path), "-r", str(LOCK),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(list(tmp_path.glob("*.whl"))) == len(locked())


def test_the_build_context_is_what_the_image_copies():
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: anything new stays out unless named"
    included = {
        path
        for pattern in lines[1:]
        for path in glob.glob(pattern.removeprefix("!"), root_dir=ROOT, recursive=True)
        if (ROOT / path).is_file()
    }
    needed = {
        str(p.relative_to(ROOT))
        for folder in ("layers/shared/callstream", "services/stream_server")
        for p in (ROOT / folder).rglob("*.py")
    } | {"services/stream_server/requirements.lock"}
    assert needed <= included
    # and what the Dockerfile copies is in it: a COPY of a file left out fails the build (a
    # folder copies what of it is in the context)
    dockerfile = (ROOT / "services" / "stream_server" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            source = line.split()[1]
            if (ROOT / source).is_file():
                assert source in included, f"{line}: {source} is not in the build context"
            else:
                assert any(path.startswith(source + "/") for path in included), line
    size = sum((ROOT / path).stat().st_size for path in included)
    assert size < 1_000_000, f"build context {size} bytes"
