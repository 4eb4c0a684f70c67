"""The cost of encryption at rest: each provider's seal/open of a Secret-sized value, per operation.

Run from the repository root::

    python bench/encryption_bench.py            # 1 KiB and 64 KiB values, 20,000 / 2,000 operations
    python bench/encryption_bench.py --quick

Times ``Transformer.to_storage`` (write path) and ``from_storage`` (read path)
of ``skiff.registry.encryption`` in-process, for identity, aescbc, aesgcm and
secretbox, and prints microseconds per operation and the ratio to identity.
A request to the API server costs about a millisecond (docs/apiserver-bench.md),
which is the scale to read these against.  Figures only; nothing is asserted.
Writes bench/out/encryption.json.
"""

from __future__ import annotations

import argparse
import base64
import os
import time
from pathlib import Path

import orjson

from skiff.registry.encryption import parse_config

PROVIDERS = ("identity", "aescbc", "aesgcm", "secretbox")


def config_for(provider: str) -> dict[str, object]:
    key = base64.b64encode(os.urandom(32)).decode()
    body: dict[str, object] = {} if provider == "identity" else {"keys": [{"name": "k1", "secret": key}]}
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [{provider: body}]}],
    }


def measure(provider: str, size: int, count: int) -> dict[str, float]:
    transformer = parse_config(config_for(provider)).transformer_for("", "secrets")
    assert transformer is not None
    value = orjson.dumps({"kind": "Secret", "data": {"k": base64.b64encode(os.urandom(size)).decode()}})
    context = b"/registry/secrets/default/bench"
    started = time.perf_counter()
    for _ in range(count):
        sealed = transformer.to_storage(value, context)
    seal_us = (time.perf_counter() - started) / count * 1e6
    started = time.perf_counter()
    for _ in range(count):
        opened, _stale = transformer.from_storage(sealed, context)
    open_us = (time.perf_counter() - started) / count * 1e6
    assert opened == value
    return {"seal_us": seal_us, "open_us": open_us, "stored_bytes": len(sealed), "value_bytes": len(value)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args()
    runs = [(1024, 2000), (65536, 200)] if args.quick else [(1024, 20000), (65536, 2000)]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for size, count in runs:
        results[str(size)] = {p: measure(p, size, count) for p in PROVIDERS}
        base = results[str(size)]["identity"]
        print(f"\nvalue of {size} random bytes (base64 in a Secret), {count} operations each")
        print(f"{'provider':<10} {'seal µs':>9} {'open µs':>9} {'x identity (seal/open)':>24} {'stored bytes':>13}")
        for p, r in results[str(size)].items():
            ratio = f"{r['seal_us'] / base['seal_us']:.1f} / {r['open_us'] / base['open_us']:.1f}"
            print(f"{p:<10} {r['seal_us']:>9.1f} {r['open_us']:>9.1f} {ratio:>24} {int(r['stored_bytes']):>13}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "encryption.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
