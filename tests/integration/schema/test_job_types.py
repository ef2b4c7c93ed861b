"""The registry of job functions and the database's job types agree, and so do the two copies of
the parameter schemas (jobs/params.py and app_private.job_params): both read from the database."""

from __future__ import annotations

import psycopg

from jobs import JOB_TYPES
from jobs.params import PARAMS


def test_registry_matches_the_databases_job_types(conn: psycopg.Connection) -> None:
    """Every job type of the database has a job function taking the same file types, and vice versa."""
    rows = conn.execute("SELECT job_type, file_types::text[] AS file_types FROM app_private.job_types").fetchall()
    database = {r["job_type"]: set(r["file_types"]) for r in rows}
    registry = {name: set(spec.file_types) for name, spec in JOB_TYPES.items()}
    assert registry == database


def test_parameter_schemas_match_the_database(conn: psycopg.Connection) -> None:
    """app_private.job_params holds exactly the fields, kinds, bounds, choices and limit names of jobs.params."""
    rows = conn.execute("SELECT * FROM app_private.job_params").fetchall()
    database = {(r["job_type"], r["name"]): (r["kind"], None if r["minimum"] is None else float(r["minimum"]),
                                             None if r["maximum"] is None else float(r["maximum"]), r["max_items"],
                                             tuple(r["choices"]) if r["choices"] else None, r["limit_name"])
                for r in rows}
    python = {(jt, name): (fld.kind, None if fld.minimum is None else float(fld.minimum),
                           None if fld.maximum is None else float(fld.maximum), fld.max_items, fld.choices, fld.limit)
              for jt, fields in PARAMS.items() for name, fld in fields.items()}
    assert python == database
    assert set(PARAMS) == {r["job_type"] for r in conn.execute("SELECT job_type FROM app_private.job_types")}
