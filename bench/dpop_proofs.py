"""What a DPoP proof costs the provider (run by hand, never in CI).

    .venv/bin/python bench/dpop_proofs.py [--repeat 2000]

Verifies proofs in this process, as the token endpoint and userinfo do (header, key import, signature,
claims, RFC 7638 thumbprint), for each algorithm the provider accepts, and prints the mean and p99 in
microseconds. The `jti` record (one Redis INCR) and the network are not counted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.dpop import DpopKey

from idp.oidc.dpop import ALGORITHMS, verify_proof

URL = "https://idp.example/token"


def measure(alg: str, repeat: int) -> list[float]:
    key = DpopKey.generate(alg)
    proofs = [key.proof("POST", URL, access_token="token") for _ in range(repeat)]
    timings = []
    for proof in proofs:
        started = time.perf_counter()
        verify_proof(
            proof, expected_method="POST", expected_url=URL, now=time.time(), window=60, access_token="token"
        )
        timings.append((time.perf_counter() - started) * 1e6)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    repeat = parser.parse_args().repeat
    print(f"{'alg':8} {'mean µs':>8} {'p99 µs':>8}")
    for alg in ALGORITHMS:
        timings = sorted(measure(alg, repeat))
        print(f"{alg:8} {statistics.fmean(timings):8.0f} {timings[int(len(timings) * 0.99)]:8.0f}")


if __name__ == "__main__":
    main()
