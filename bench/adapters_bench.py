"""Adapter throughput and memory on large exports (``make bench`` calls ``measure``).

``measure(records)`` writes a CSV (Dudley, and the YAML-only Coventry
example), an XML (Sandwell) and a JSON (Wolverhampton) export of
``records`` records into a temporary directory, converts each in a fresh
subprocess (so the peak RSS is that conversion's alone), and reports
records/s and peak RSS. The target is a peak RSS under 150 MB whatever the
file size: the adapters stream.

Run on its own: ``python -m bench.adapters_bench [RECORDS]`` prints a table.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from adapters import registry
from adapters.base import Converted

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
EXAMPLE = ROOT / "docs" / "examples" / "coventry-331"
TARGET_RSS_MB = 150.0
REGION = ("330", "331", "332", "333", "334", "335", "336")


def _csv(sample: Path, ref: bytes, count: int) -> Iterator[bytes]:
    data = sample.read_bytes()
    lines = data.split(b"\r\n" if b"\r\n" in data else b"\n")
    yield lines[0] + b"\r\n"
    for n in range(count):
        yield lines[1].replace(ref, b"R%09d" % n) + b"\r\n"


def _xml(count: int) -> Iterator[bytes]:
    data = (DATA / "sandwell-333" / "fwi-forms-20261005.xml").read_bytes()
    form = data[data.index(b"<Form ") : data.index(b"</Form>") + len(b"</Form>")]
    yield b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<FWIExport source="SMBC-FWI">\n'
    for n in range(count):
        yield form.replace(b"FWI-553901", b"FWI-%09d" % n) + b"\n"
    yield b"</FWIExport>\n"


def _json(count: int) -> Iterator[bytes]:
    document = json.loads((DATA / "wolverhampton-336" / "ehm-export-2026-10-01.json").read_bytes())
    episode = json.dumps(document["episodes"][0], ensure_ascii=False).encode("utf-8")
    yield b'{"system": "EarlyHelpModule 7.4", "localAuthority": {"code": "336"}, "episodes": [\n'
    for n in range(count):
        yield (b",\n" if n else b"") + episode.replace(b"EHM-77120", b"EHM-%09d" % n)
    yield b"\n]}\n"


def _exports(folder: Path, count: int) -> list[tuple[str, str, Path]]:
    """(adapter, format, file) for each export written into ``folder``."""
    made = {
        ("dudley-csv", "csv", "dudley.csv"): _csv(
            DATA / "dudley-332" / "caf-register-2026-09.csv", b"DUD-2026-00417", count
        ),
        ("coventry-csv", "csv (YAML only)", "coventry.csv"): _csv(
            EXAMPLE / "caf-cases-2026-10.csv", b"COV-1001", count
        ),
        ("sandwell-xml", "xml", "sandwell.xml"): _xml(count),
        ("wolverhampton-json", "json", "wolverhampton.json"): _json(count),
    }
    out = []
    for (adapter, kind, name), parts in made.items():
        path = folder / name
        with path.open("wb") as stream:
            stream.writelines(parts)
        out.append((adapter, kind, path))
    return out


def _vm_hwm_kib() -> int:
    """This process's peak RSS. Not ru_maxrss: Linux keeps that across fork and
    exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _convert(adapters_dir: Path, adapter: str, path: Path) -> dict[str, float]:
    """Run in the child process: convert ``path`` and report count, time and peak RSS."""
    built = registry.create(adapter, adapters_dir, REGION)
    started = time.perf_counter()
    good = bad = 0
    with path.open("rb") as stream:
        for result in built.read(stream, path.name):
            if isinstance(result, Converted):
                good += 1
            else:
                bad += 1
    seconds = time.perf_counter() - started
    peak_kib = _vm_hwm_kib()
    return {"converted": good, "rejected": bad, "seconds": seconds, "peak_kib": peak_kib}


def measure(records: int) -> list[dict[str, object]]:
    """Convert a ``records``-record export per adapter, each in its own process."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="cafgw-bench-") as tmp:
        folder = Path(tmp)
        adapters_dir = folder / "adapters"
        shutil.copytree(ROOT / "config" / "adapters", adapters_dir)
        shutil.copy(EXAMPLE / "coventry-csv.yaml", adapters_dir)
        for adapter, kind, path in _exports(folder, records):
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.adapters_bench",
                    "--convert",
                    adapter,
                    str(path),
                    str(adapters_dir),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                rows.append({"adapter": adapter, "format": kind, "records": records, "error": last})
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rss_mb = result["peak_kib"] / 1024
            rows.append(
                {
                    "adapter": adapter,
                    "format": kind,
                    "records": records,
                    "converted": int(result["converted"]),
                    "rejected": int(result["rejected"]),
                    "file_mb": round(path.stat().st_size / 1_000_000, 1),
                    "seconds": round(result["seconds"], 2),
                    "records_per_s": round(records / max(result["seconds"], 1e-9)),
                    "peak_rss_mb": round(rss_mb, 1),
                    "target_rss_mb": TARGET_RSS_MB,
                    "within_target": rss_mb < TARGET_RSS_MB,
                }
            )
    return rows


def table(rows: list[dict[str, object]]) -> str:
    """The rows as a plain text table."""
    columns = ("adapter", "format", "records", "file_mb", "records_per_s", "peak_rss_mb")
    lines = [" | ".join(f"{c:>16}" for c in (*columns, "< 150 MB"))]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['adapter']:>16} | FAILED: {row['error']}")
            continue
        cells = [f"{row[c]!s:>16}" for c in columns]
        lines.append(" | ".join([*cells, f"{'yes' if row['within_target'] else 'NO':>16}"]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--convert"]:
        adapter, path, adapters_dir = argv[1], Path(argv[2]), Path(argv[3])
        print(json.dumps(_convert(adapters_dir, adapter, path)))
        return 0
    count = int(argv[0]) if argv and re.fullmatch(r"[0-9_]+", argv[0]) else 100_000
    rows = measure(count)
    print(table(rows))
    return 0 if all(r.get("within_target") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
