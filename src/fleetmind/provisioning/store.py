"""The SQLite store of jobs and enrolment tokens: what survives a restart, or a kill -9, of the API.

A job is written ``queued`` in the same transaction that checks and consumes the caller's token and checks
that the node has no job in flight (a partial unique index makes "one active job per node" a database fact,
not a hope). The runner moves it to ``running`` and then to a final state. When the API starts again,
:meth:`JobStore.recover` marks every job still ``running`` as ``interrupted`` (its process died with the API)
and hands back the ``queued`` ones to run. WAL mode lets the CLI read while the service writes."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetmind.provisioning.errors import AuthenticationError, NodeBusyError, NodeIdentityError, NotFoundError
from fleetmind.provisioning.schemas import ACTIVE_STATES, CallHomeRequest, Job
from fleetmind.provisioning.tokens import EnrolmentToken

INTERRUPTED_MESSAGE = "the provisioning API stopped while this job was running"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL,
    max_uses INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    hostname TEXT NOT NULL,
    role TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT,
    trigger TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    rc INTEGER,
    error TEXT,
    output_tail TEXT NOT NULL DEFAULT '[]',
    token_id TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_host ON jobs(hostname, seq);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_one_active ON jobs(hostname) WHERE state IN ('queued', 'running');
"""

_JOB_COLUMNS = (
    "id, hostname, role, ip, mac, trigger, state, created_at, started_at, finished_at, rc, error, output_tail"
)


def _job(row: sqlite3.Row) -> Job:
    data: dict[str, Any] = dict(row)
    data["output_tail"] = json.loads(data["output_tail"] or "[]")
    return Job.model_validate(data)


def _token(row: sqlite3.Row) -> EnrolmentToken:
    data: dict[str, Any] = dict(row)
    data["revoked"] = bool(data["revoked"])
    return EnrolmentToken(**data)


class JobStore:
    """Jobs and tokens in one SQLite file; safe to share between threads and between processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit mode: every transaction below is an explicit BEGIN IMMEDIATE ... COMMIT
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    # -- tokens --------------------------------------------------------------------------------------------
    def add_token(
        self,
        *,
        name: str,
        sha256: str,
        role: str,
        expires_at: float | None = None,
        max_uses: int | None = None,
    ) -> EnrolmentToken:
        token = EnrolmentToken(
            id="tok_" + secrets.token_hex(6),
            name=name,
            sha256=sha256,
            role=role,
            created_at=time.time(),
            expires_at=expires_at,
            max_uses=max_uses,
            uses=0,
            revoked=False,
        )
        with self._tx() as db:
            db.execute(
                "INSERT INTO tokens (id, name, sha256, role, created_at, expires_at, max_uses) VALUES (?,?,?,?,?,?,?)",
                (token.id, name, sha256, role, token.created_at, expires_at, max_uses),
            )
        return token

    def tokens(self) -> list[EnrolmentToken]:
        return [_token(r) for r in self._query("SELECT * FROM tokens ORDER BY created_at")]

    def token_by_hash(self, sha256: str) -> EnrolmentToken | None:
        rows = self._query("SELECT * FROM tokens WHERE sha256 = ?", (sha256,))
        return _token(rows[0]) if rows else None

    def revoke_token(self, token_id: str) -> EnrolmentToken:
        with self._tx() as db:
            if db.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,)).rowcount == 0:
                raise NotFoundError(f"no enrolment token with id {token_id!r}")
        return next(t for t in self.tokens() if t.id == token_id)

    # -- accepting work ------------------------------------------------------------------------------------
    def accept_call_home(self, token_sha256: str, request: CallHomeRequest) -> Job:
        """Check and consume the token, refuse a node with a job in flight, record the job: atomically."""
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT * FROM tokens WHERE sha256 = ?", (token_sha256,)).fetchone()
            if row is None:
                raise AuthenticationError("invalid enrolment token")
            token = _token(row)
            if (problem := token.problem(now)) is not None:
                raise AuthenticationError(problem)
            self._check_free(db, request.hostname)
            last = db.execute(
                "SELECT mac FROM jobs WHERE hostname = ? AND mac IS NOT NULL ORDER BY seq DESC LIMIT 1",
                (request.hostname,),
            ).fetchone()
            # a node once bound to a MAC is only ever claimed again with that MAC: leaving it out is no way round
            if last is not None and last["mac"] != request.mac:
                raise NodeIdentityError(
                    f"node {request.hostname!r} is enrolled with "
                    + ("another MAC address" if request.mac else "a MAC address, and this call-home sent none")
                    + "; remove it from the inventory first if the machine was replaced",
                    param="mac",
                )
            db.execute("UPDATE tokens SET uses = uses + 1 WHERE id = ?", (token.id,))
            job = Job(
                id=_job_id(),
                hostname=request.hostname,
                role=token.role,
                ip=request.ip,
                mac=request.mac,
                trigger="call-home",
                state="queued",
                created_at=now,
            )
            self._insert(db, job, token.id)
        return job

    def create_retry(self, hostname: str) -> Job:
        """A new queued job for a node that has run before, with its last known address and role."""
        with self._tx() as db:
            row = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE hostname = ? ORDER BY seq DESC LIMIT 1", (hostname,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no node {hostname!r} has called home", param="hostname")
            self._check_free(db, hostname)
            last = _job(row)
            job = last.model_copy(
                update={
                    "id": _job_id(),
                    "trigger": "retry",
                    "state": "queued",
                    "created_at": time.time(),
                    "started_at": None,
                    "finished_at": None,
                    "rc": None,
                    "error": None,
                    "output_tail": [],
                }
            )
            self._insert(db, job, None)
        return job

    @staticmethod
    def _check_free(db: sqlite3.Connection, hostname: str) -> None:
        placeholders = ",".join("?" for _ in ACTIVE_STATES)
        busy = db.execute(
            f"SELECT id FROM jobs WHERE hostname = ? AND state IN ({placeholders})",
            (hostname, *ACTIVE_STATES),
        ).fetchone()
        if busy is not None:
            raise NodeBusyError(hostname, busy["id"])

    @staticmethod
    def _insert(db: sqlite3.Connection, job: Job, token_id: str | None) -> None:
        db.execute(
            "INSERT INTO jobs (id, hostname, role, ip, mac, trigger, state, created_at, token_id) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                job.id,
                job.hostname,
                job.role,
                job.ip,
                job.mac,
                job.trigger,
                job.state,
                job.created_at,
                token_id,
            ),
        )

    # -- running -------------------------------------------------------------------------------------------
    def claim(self, job_id: str) -> Job | None:
        """Move a queued job to running; ``None`` if it is no longer queued (so it never runs twice)."""
        with self._tx() as db:
            updated = db.execute(
                "UPDATE jobs SET state = 'running', started_at = ? WHERE id = ? AND state = 'queued'",
                (time.time(), job_id),
            ).rowcount
        return self.get(job_id) if updated else None

    def finish(
        self,
        job_id: str,
        state: str,
        *,
        rc: int | None = None,
        error: str | None = None,
        tail: list[str] | None = None,
    ) -> Job:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, rc = ?, error = ?, output_tail = ? WHERE id = ?",
                (state, time.time(), rc, error, json.dumps(tail or []), job_id),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def recover(self) -> tuple[list[Job], list[Job]]:
        """At start-up: running jobs become interrupted; returns (those, the queued jobs to run again)."""
        with self._tx() as db:
            stale = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE state = 'running'")]
            db.execute(
                "UPDATE jobs SET state = 'interrupted', finished_at = ?, error = ? WHERE state = 'running'",
                (time.time(), INTERRUPTED_MESSAGE),
            )
        interrupted = [j for j in (self.get(i) for i in stale) if j is not None]
        return interrupted, self.jobs(state="queued", oldest_first=True, limit=None)

    # -- reading -------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        rows = self._query(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def jobs(
        self,
        *,
        hostname: str | None = None,
        state: str | None = None,
        limit: int | None = 100,
        oldest_first: bool = False,
    ) -> list[Job]:
        where, params = [], []
        if hostname is not None:
            where.append("hostname = ?")
            params.append(hostname)
        if state is not None:
            where.append("state = ?")
            params.append(state)
        sql = f"SELECT {_JOB_COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq " + ("ASC" if oldest_first else "DESC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_job(r) for r in self._query(sql, tuple(params))]

    def counts(self) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")}

    def latest_per_host(self) -> dict[str, Job]:
        rows = self._query(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE seq IN (SELECT MAX(seq) FROM jobs GROUP BY hostname)"
        )
        return {r["hostname"]: _job(r) for r in rows}


def _job_id() -> str:
    return "job_" + secrets.token_hex(8)
