"""Following an asynchronous job with queryAsyncJobResult: jobstatus 0 running, 1 done, 2 failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from kvmfleet.cloudstack_api.client import ApiError, Client, JsonObject

RUNNING, SUCCEEDED, FAILED = 0, 1, 2


class JobTimeoutError(ApiError):
    """The job was still running when we stopped waiting (it may still finish)."""


@dataclass(frozen=True)
class Clock:
    """Time as the waiting loops see it (tests replace it)."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


def job_id(command: str, answer: JsonObject) -> str:
    jobid = answer.get("jobid")
    if not isinstance(jobid, str):
        raise ApiError(command, "unexpected answer (no jobid for an asynchronous command)")
    return jobid


def wait_for_job(
    client: Client,
    command: str,
    jobid: str,
    *,
    timeout: float,
    interval: float,
    progress: Callable[[str], None],
    clock: Clock,
) -> JsonObject:
    """The job's result once it succeeded; ApiError with CloudStack's error once it failed."""
    start = clock.now()
    while True:
        job = client.call("queryAsyncJobResult", {"jobid": jobid}, safe=True)
        status = job.get("jobstatus")
        result = job.get("jobresult")
        if status == SUCCEEDED:
            return result if isinstance(result, dict) else {}
        if status == FAILED:
            error = result if isinstance(result, dict) else {}
            code = error.get("errorcode", job.get("jobresultcode"))
            text = error.get("errortext", "the job failed without an error text")
            raise ApiError(
                command,
                f"job {jobid} failed: CloudStack error {code}: {text}",
                code if isinstance(code, int) else None,
            )
        if status != RUNNING:
            raise ApiError(command, f"job {jobid}: unexpected jobstatus {status!r}")
        elapsed = clock.now() - start
        if elapsed >= timeout:
            raise JobTimeoutError(
                command, f"job {jobid} still running after {int(elapsed)} s (it may still finish)"
            )
        progress(f"{command}: job {jobid} running ({int(elapsed)} s)")
        clock.sleep(interval)


def run_async(
    client: Client,
    command: str,
    params: dict[str, str | int | bool | None],
    *,
    timeout: float,
    interval: float,
    progress: Callable[[str], None],
    clock: Clock,
) -> JsonObject:
    """Start an asynchronous command (never retried: it changes state) and wait for its result."""
    answer = client.call(command, params, safe=False)
    return wait_for_job(
        client,
        command,
        job_id(command, answer),
        timeout=timeout,
        interval=interval,
        progress=progress,
        clock=clock,
    )
