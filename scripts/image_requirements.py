"""Print what the stream-server image installs: the shared package's runtime requirements and
the ``server`` extra of pyproject.toml (``make lock`` compiles this into the hashed lock)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def requirements() -> list[str]:
    """Pinned requirement lines, in order, without comments."""
    shared = (ROOT / "layers" / "shared" / "requirements.txt").read_text().splitlines()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = extra["optional-dependencies"]["server"]
    return [line.strip() for line in shared if line.strip() and not line.startswith("#")] + server


if __name__ == "__main__":
    print("\n".join(requirements()))
