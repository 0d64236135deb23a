"""``make bench``: run every benchmark and print its table (``--quick`` shortens the load test).

Results with their dates and machine are kept in bench/RESULTS.md.
"""

import argparse
import subprocess
import sys

SUITES = ["bench.protocol", "bench.codecs", "bench.vad_accuracy", "bench.transcript_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a short load test (250 streams, 10 s)"
    )
    args = parser.parse_args()
    load = (
        ["--streams", "250", "--seconds", "10"]
        if args.quick
        else ["--streams", "250", "500", "1000", "--seconds", "20", "--baseline"]
    )
    for module, extra in [*((m, []) for m in SUITES), ("bench.load", load)]:
        print(f"\n## {module}\n", flush=True)
        subprocess.run([sys.executable, "-m", module, *extra], check=True)


if __name__ == "__main__":
    main()
