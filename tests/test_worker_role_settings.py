"""``CZ_WORKER_ROLES`` and ``CZ_WORKER_ROLE``: what ``make run`` starts for a list of roles,
and the lists and roles refused before any process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from chuangzheng.cli import app
from chuangzheng.run import banner, process_specs
from chuangzheng.settings import Settings, WorkerRole


def test_one_worker_process_per_listed_role_with_its_role_on_the_command_line() -> None:
    settings = Settings(worker_roles=" Workflows, activities,activities ")
    assert settings.workers == 3
    _, services = process_specs(settings)
    workers = [spec for spec in services if spec.name.startswith("worker-")]
    assert [spec.argv[-3:] for spec in workers] == [
        ["worker", "--role", "workflows"],
        ["worker", "--role", "activities"],
        ["worker", "--role", "activities"],
    ]
    assert [spec.log_file.name for spec in workers] == [
        "worker-1.log",
        "worker-2.log",
        "worker-3.log",
    ]
    assert "3 个工作进程：工作流 1、活动 2" in banner(settings, "r-1")


def test_without_roles_cz_workers_processes_run_both() -> None:
    settings = Settings(workers=2)
    assert settings.worker_process_roles == (WorkerRole.ALL, WorkerRole.ALL)
    _, services = process_specs(settings)
    assert [s.argv[-2:] for s in services if s.name.startswith("worker-")] == [
        ["--role", "all"],
        ["--role", "all"],
    ]
    assert "2 个工作进程)" in banner(settings, "r-1")


@pytest.mark.parametrize(
    ("roles", "message"),
    [
        ("workflows", "must run both workflows and activities"),
        ("activities,activities", "must run both workflows and activities"),
        ("workflows,activity", "unknown role 'activity'"),
    ],
)
def test_role_lists_that_would_stall_or_are_misspelt_are_refused(roles: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(worker_roles=roles)


def test_cz_workers_that_disagrees_with_the_roles_is_refused() -> None:
    with pytest.raises(ValidationError, match="CZ_WORKERS=3 but CZ_WORKER_ROLES lists 2"):
        Settings(workers=3, worker_roles="workflows,activities")
    assert Settings(workers=2, worker_roles="workflows,activities").workers == 2


def test_worker_command_refuses_an_unknown_role_in_chinese() -> None:
    result = CliRunner().invoke(app, ["worker", "--role", "everything"])
    assert result.exit_code == 2
    assert "--role：未知的工作进程角色 'everything'" in result.output
