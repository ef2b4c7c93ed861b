"""`contentforge process`: real media through the real pipeline, with nothing installed by hand.

With no DATABASE_URL / REDIS_URL / STORAGE_URL it starts an embedded PostgreSQL and Redis and uses
a local folder, all under ``data_dir`` (reused by the next run). It applies the migrations, makes a
demo tenant, uploads each file as an asset, enqueues its jobs through the same public API upload
services use (``contentforge.api``), runs real Dramatiq worker processes (``contentforge worker``)
until every asset is ready or failed, shows progress per asset, prints what was produced, and stops
everything it started.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contentforge import api
from contentforge.db import connect
from contentforge.errors import ContentforgeError
from contentforge.services import broker, database, session_database, storage_url
from contentforge.settings import Settings

#: Longest the command waits for all assets to finish, in seconds.
PROCESS_TIMEOUT_SECONDS = 900
DEMO_TENANT_SLUG = "demo"


class BadInputFile(ContentforgeError):
    exit_code = 2


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _demo_tenant(conn: Any) -> uuid.UUID:
    row = conn.execute("SELECT id FROM public.tenants WHERE slug = %s", (DEMO_TENANT_SLUG,)).fetchone()
    if row:
        return row["id"]
    return conn.execute("INSERT INTO public.tenants (name, slug) VALUES ('Demo', %s) RETURNING id",
                        (DEMO_TENANT_SLUG,)).fetchone()["id"]


def _upload(conn: Any, store: Any, tenant: uuid.UUID, path: Path) -> tuple[uuid.UUID, str, bool]:
    """Store the original and create its asset row once per content hash; return (id, kind, new)."""
    from jobs.probe import sniff

    sniffed = sniff(path)
    digest = _sha256(path)
    key = f"{tenant}/originals/{digest}{path.suffix.lower()}"
    row = conn.execute("SELECT id FROM public.assets WHERE storage_bucket = 'assets' AND storage_path = %s",
                       (key,)).fetchone()
    if row:
        return row["id"], sniffed.kind, False
    store.put_file(key, path, sniffed.mime)
    asset_id = conn.execute(
        """INSERT INTO public.assets (tenant_id, original_filename, file_type, mime_type, file_size, storage_path)
           VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
        (tenant, path.name, sniffed.kind, sniffed.mime, path.stat().st_size, key)).fetchone()["id"]
    return asset_id, sniffed.kind, True


@contextlib.contextmanager
def _workers(settings: Settings, db_url: str, redis_url: str, store_url: str, log_file: Path) -> Iterator[None]:
    """Real `contentforge worker` processes for the duration of the block, stopped gracefully."""
    env = {**os.environ, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "STORAGE_URL": store_url,
           "CONTENTFORGE_LOG_FORMAT": "json", "CONTENTFORGE_METRICS_PORT": "0"}
    processes = str(min(settings.worker_processes, 2))
    with open(log_file, "ab") as log:
        # setpriv --pdeathsig: the worker drains and stops if this command is killed (SIGKILL, a
        # timeout) instead of running on as an orphan with its embedded PostgreSQL and Redis gone.
        setpriv = shutil.which("setpriv")
        guard = [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []
        proc = subprocess.Popen(
            [*guard, sys.executable, "-m", "cli", "worker", "--processes", processes, "--threads", "1"],
            env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            yield
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(settings.shutdown_grace_seconds + 15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _snapshot(conn: Any, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    return conn.execute(
        """SELECT a.id, a.original_filename, a.file_type, a.processing_status::text AS status,
                  a.processing_progress AS progress, a.processing_error AS error, a.variants, a.metadata,
                  a.transcript_text, a.duration_seconds,
                  (SELECT extract(epoch FROM max(j.completed_at) - min(j.created_at))
                   FROM public.asset_processing_jobs j WHERE j.asset_id = a.id) AS seconds
           FROM public.assets a WHERE a.id = ANY (%s) ORDER BY a.created_at""", (ids,)).fetchall()


def _wait(conn: Any, ids: list[uuid.UUID], show_progress: bool) -> list[dict[str, Any]]:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    deadline = time.monotonic() + PROCESS_TIMEOUT_SECONDS
    with Progress(TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[status]:<10}"), TimeElapsedColumn(),
                  disable=not show_progress, transient=False) as bars:
        tasks = {}
        while True:
            rows = _snapshot(conn, ids)
            for r in rows:
                if r["id"] not in tasks:
                    tasks[r["id"]] = bars.add_task(r["original_filename"][:28], total=100, status=r["status"])
                bars.update(tasks[r["id"]], completed=r["progress"], status=r["status"])
            if all(r["status"] in ("ready", "failed") for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise ContentforgeError(f"processing did not finish within {PROCESS_TIMEOUT_SECONDS} s; "
                                        "see the worker log for details")
            time.sleep(0.3)


def _summary(r: dict[str, Any], root: str) -> dict[str, Any]:
    variants = r["variants"] or {}
    renditions = sorted(n for n in variants if n.endswith(".mp4") or n in ("audio.m4a", "audio.opus"))
    text = (r["transcript_text"] or "").strip()
    return {
        "asset_id": str(r["id"]), "file": r["original_filename"], "kind": r["file_type"], "status": r["status"],
        "error": r["error"], "variants": len(variants), "renditions": renditions,
        "media_duration": float(r["duration_seconds"]) if r["duration_seconds"] is not None else None,
        "processing_seconds": round(float(r["seconds"]), 1) if r["seconds"] is not None else None,
        "transcript": text[:120] + ("…" if len(text) > 120 else ""),
        "files": sorted(v.get("key", "") for v in variants.values()),
        "storage": root,
    }


def _print_table(summaries: list[dict[str, Any]], root: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="contentforge: what was produced")
    for col in ("file", "kind", "status", "outputs", "renditions", "length", "took"):
        table.add_column(col, overflow="fold")
    for s in summaries:
        length = f"{s['media_duration']:.1f} s" if s["media_duration"] else "-"
        took = f"{s['processing_seconds']:.1f} s" if s["processing_seconds"] is not None else "-"
        table.add_row(s["file"], s["kind"], s["status"], str(s["variants"]), ", ".join(s["renditions"]) or "-",
                      length, took)
    console = Console(width=max(Console().width, 110))
    console.print(table)
    for s in summaries:
        if s["error"]:
            console.print(f"[red]{s['file']}[/red]: {s['error']}")
        elif s["transcript"]:
            console.print(f"[bold]{s['file']}[/bold] transcript: {s['transcript']}")
    console.print(f"Files are under [bold]{root}[/bold] (one folder per tenant and asset).")


def cmd_process(args: argparse.Namespace, settings: Settings) -> int:
    from cli.samples import make_samples
    from contentforge.storage import open_storage
    from jobs.registry import job_types_for
    from schema import migrate

    files = [Path(p) for p in args.files]
    for p in files:
        if not p.is_file():
            raise BadInputFile(f"{p}: no such file")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not files:
        files = make_samples(settings.data_dir / "samples")
    store_url = storage_url(settings)
    store = open_storage(store_url)
    started = time.monotonic()
    with database(settings) as db_url, broker(settings) as redis_url:
        session, setting = session_database(settings, db_url)
        migrate(session, setting=setting)
        with connect(db_url, autocommit=True) as conn:
            tenant = _demo_tenant(conn)
            ids: list[uuid.UUID] = []
            for path in files:
                asset_id, kind, _new = _upload(conn, store, tenant, path)
                types = job_types_for(kind)
                api.enqueue_many(conn, asset_id, types, idempotency_key=f"process-{asset_id}")
                ids.append(asset_id)
            if any(r["status"] not in ("ready", "failed") for r in _snapshot(conn, ids)):
                with _workers(settings, db_url, redis_url, store_url, settings.data_dir / "worker.log"):
                    rows = _wait(conn, ids, show_progress=not args.json)
            else:
                rows = _snapshot(conn, ids)
    root = store_url.removeprefix("file://")
    summaries = [_summary(r, root) for r in rows]
    if args.json:
        print(json.dumps({"seconds": round(time.monotonic() - started, 1), "assets": summaries}, indent=2))
    else:
        _print_table(summaries, root)
    return 0 if all(s["status"] == "ready" for s in summaries) else 1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "process", help="process media files end to end (embedded services when none are configured)",
        description="Upload FILEs (or generated samples: a photo, a short video with speech, a podcast clip) "
        "as assets of a demo tenant, run every job that fits each file on real workers, and print what was "
        "produced. Without DATABASE_URL/REDIS_URL/STORAGE_URL everything runs embedded under "
        "CONTENTFORGE_DATA_DIR (default ./contentforge-data). Exit 0 when every asset is ready, 1 when one failed.")
    p.add_argument("files", nargs="*", metavar="FILE", help="media files to process (default: generated samples)")
    p.add_argument("--json", action="store_true", help="machine-readable summary instead of the table")
    p.set_defaults(handler=cmd_process)
