"""The commands that call the HTTP API (``import-roster``, ``start-round``, ``status``,
``plan``, ``what-if``) and ``validate-plan``, run as an operator runs them: the console
script in a subprocess, in an empty directory, with only the ``CZ_*`` variables given here.

A small stand-in for the API (a thread on a free port) answers what the commands ask and
records every request, so the tests see where a command went and as whom. Mistakes print
one Chinese line and exit 2; a service that cannot be reached or fails exits 1; never a
traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from chuangzheng.ports import free_port
from domain.calendar import SHANGHAI

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("chuangzheng")
SEED_PLAN = ROOT / "plans" / "seed-002.yaml"
DEMO_PLAN = ROOT / "plans" / "demo.yaml"

ROW_ERRORS = [
    {"field": "第5行·组织类型", "reason": "不认识的组织类型“不存在的类型”"},
    {"field": "第6行·党员人数", "reason": "应为整数"},
]
PROGRESS = {
    "round_id": "running",
    "total": 3,
    "started": 3,
    "starting_done": True,
    "closed": False,
    "by_phase": {"mobilisation": 2, "public_commitment": 1},
    "by_light": {"green": 3},
    "overdue": 0,
    "outcomes": {},
}


@dataclass
class FakeApi:
    """The stand-in's address and the requests it saw (method, path, JSON body or None)."""

    port: int
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _answer(api: FakeApi, method: str, path: str, body: Any) -> tuple[int, Any]:
    if path == "/api/v1/auth/login":
        api.logins.append((body["username"], body["password"]))
        return 200, {"access_token": "token", "token_type": "bearer"}
    if method == "POST" and path == "/api/v1/roster":
        # As the API answers a roster with bad rows: the rows joined in the message too.
        message = "；".join(f"{e['field']}: {e['reason']}" for e in ROW_ERRORS)
        return 422, {"code": "invalid", "message": message, "errors": ROW_ERRORS}
    if path == "/api/v1/rounds/created":
        progress = {**PROGRESS, "total": None, "started": 0, "starting_done": False}
        return 200, {
            "round_id": "created",
            "name": "演示轮次",
            "status": "created",
            "starts_at": "2026-12-04T01:00:00Z",
            "kicked_off_at": None,
            "status_reason": None,
            "progress": progress,
        }
    if path == "/api/v1/rounds/running":
        return 200, {
            "round_id": "running",
            "name": "演示轮次",
            "status": "running",
            "starts_at": "2026-12-04T01:00:00Z",
            "kicked_off_at": "2026-12-04T01:00:00Z",
            "status_reason": None,
            "progress": PROGRESS,
        }
    if path == "/api/v1/rounds/broken":
        return 500, {"code": "internal", "message": "服务内部错误"}
    if path == "/api/v1/rounds/R/plan-versions":
        errors = [{"field": "reason", "reason": "调整计划必须填写理由"}]
        return 422, {
            "code": "invalid_plan",
            "message": "新版计划有误，未作任何调整",
            "errors": errors,
        }
    return 404, {"code": "not_found", "message": "轮次不存在"}


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None  # a multipart upload
            api.requests.append((self.command, self.path, body))
            status, answer = _answer(api, self.command, self.path, body)
            data = json.dumps(answer, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", api.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The console script in ``cwd`` (no .env there) with only the ``CZ_*`` given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CZ_")}
    environ.update(env or {})
    return subprocess.run(
        [str(CLI), *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    """The command's single line on stderr (no traceback)."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


# ----- 1. user mistakes and an API that is down: one line, exit 2 or 1 ----------------------
def test_a_missing_roster_file_is_named(tmp_path: Path) -> None:
    done = run(tmp_path, "import-roster", "nosuch.csv")
    assert done.returncode == 2
    assert one_line(done) == "无法读取文件：nosuch.csv（文件不存在）"


def test_a_missing_plan_file_is_named(tmp_path: Path) -> None:
    done = run(tmp_path, "plan", "apply", "R", "nosuch.yaml", "--reason", "x")
    assert done.returncode == 2
    assert one_line(done) == "无法读取文件：nosuch.yaml（文件不存在）"


@pytest.mark.parametrize(
    "command",
    [
        ["status", "X"],
        ["start-round", "X"],
        ["plan", "show", "X"],
        ["plan", "versions", "X"],
        ["what-if", "X", "--apply", "--reason", "x"],
    ],
)
def test_an_api_that_is_down_is_one_line_and_exit_1(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    done = run(tmp_path, *command, env={"CZ_API_PORT": str(port)})
    assert done.returncode == 1
    assert one_line(done) == (
        f"无法连接 API（http://127.0.0.1:{port}），请确认服务已启动或用 --api 指定地址"
    )


def test_a_bad_api_address_is_a_mistake(tmp_path: Path) -> None:
    done = run(tmp_path, "status", "X", "--api", "127.0.0.1:8000")
    assert done.returncode == 2
    assert "API 地址有误" in one_line(done)


def test_a_service_failure_exits_1(tmp_path: Path, fake_api: FakeApi) -> None:
    done = run(tmp_path, "status", "broken", "--api", fake_api.url)
    assert done.returncode == 1
    assert "错误 500：服务内部错误" in done.stderr and "Traceback" not in done.stderr


def test_what_if_without_the_database_creates_none(tmp_path: Path) -> None:
    """Without the service's database settings: which settings to give, exit 2, and no
    database file (nor its directory) created."""
    data_dir = tmp_path / "data"
    args = ["what-if", "R", "--extend", "mobilisation", "--by", "1", "--minutes"]
    done = run(tmp_path, *args, env={"CZ_DATA_DIR": str(data_dir)})
    assert done.returncode == 2
    line = one_line(done)
    assert f"找不到数据库文件 {data_dir / 'chuangzheng.db'}" in line
    assert "CZ_DATABASE_URL" in line and "CZ_DATA_DIR" in line
    assert not data_dir.exists()

    # A SQLite file that is not the service's: said so, nothing added to it.
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    done = run(tmp_path, *args, env={"CZ_DATABASE_URL": f"sqlite:///{empty}"})
    assert done.returncode == 2
    assert "没有本服务的数据" in one_line(done)
    with sqlite3.connect(empty) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)


def test_what_if_with_the_default_database_creates_none(tmp_path: Path) -> None:
    """The operator's case: no database setting, so the default file under the data
    directory (a fresh one here: the checkout's own ``.data`` may hold a database) is
    looked for, and neither it nor its directory is created."""
    data_dir = tmp_path / "data"
    done = run(
        tmp_path,
        *("what-if", "R", "--extend", "mobilisation", "--by", "1", "--minutes"),
        env={"CZ_DATA_DIR": str(data_dir)},
    )
    assert done.returncode == 2
    assert "找不到数据库文件" in one_line(done)
    assert not (data_dir / "chuangzheng.db").exists()


# ----- 2. the API address and account come from the settings ----------------------------------
def test_the_api_port_setting_is_used(tmp_path: Path, fake_api: FakeApi) -> None:
    """CZ_API_PORT (and a CZ_API_HOST of 0.0.0.0, reached on 127.0.0.1) decide where the
    commands go; in development the demo account signs in."""
    env = {"CZ_API_HOST": "0.0.0.0", "CZ_API_PORT": str(fake_api.port)}
    done = run(tmp_path, "status", "running", env=env)
    assert done.returncode == 0, done.stderr
    assert fake_api.logins == [("county", "demo")]
    assert ("GET", "/api/v1/rounds/running", None) in fake_api.requests


def test_cz_api_url_wins_over_the_port(tmp_path: Path, fake_api: FakeApi) -> None:
    env = {"CZ_API_PORT": str(free_port()), "CZ_API_URL": fake_api.url + "/"}
    done = run(tmp_path, "status", "running", env=env)
    assert done.returncode == 0, done.stderr
    assert fake_api.requests


def test_outside_development_an_account_is_required(tmp_path: Path, fake_api: FakeApi) -> None:
    env = {
        "CZ_ENVIRONMENT": "test",
        "CZ_SECRET_KEY": "a-private-test-key-of-enough-length-0123456789",
        "CZ_API_PORT": str(fake_api.port),
    }
    done = run(tmp_path, "status", "running", env=env)
    assert done.returncode == 2
    line = one_line(done)
    assert "--user" in line and "CZ_API_USER" in line and "CZ_API_PASSWORD" in line
    assert fake_api.requests == []  # the demo account is never tried

    given = {**env, "CZ_API_USER": "office", "CZ_API_PASSWORD": "secret"}
    done = run(tmp_path, "status", "running", env=given)
    assert done.returncode == 0, done.stderr
    assert fake_api.logins == [("office", "secret")]


# ----- 3. each row error once ------------------------------------------------------------------
def test_roster_row_errors_are_printed_once(tmp_path: Path, fake_api: FakeApi) -> None:
    roster = tmp_path / "bad.csv"
    roster.write_text("组织编号\n", encoding="utf-8")
    done = run(tmp_path, "import-roster", str(roster), "--api", fake_api.url)
    assert done.returncode == 2
    for error in ROW_ERRORS:
        assert done.stderr.count(error["reason"]) == 1, done.stderr
    assert done.stderr.splitlines()[0] == "错误 422：共 2 处错误："


# ----- 4. status in Chinese, before and after kick-off -----------------------------------------
def test_status_before_kick_off(tmp_path: Path, fake_api: FakeApi) -> None:
    done = run(tmp_path, "status", "created", "--api", fake_api.url)
    assert done.returncode == 0, done.stderr
    assert "演示轮次（created）状态：尚未启动" in done.stdout
    assert "尚未启动，还没有组织进度" in done.stdout
    assert "None" not in done.stdout and "created" not in done.stdout.replace("（created）", "")


def test_status_of_a_running_round(tmp_path: Path, fake_api: FakeApi) -> None:
    done = run(tmp_path, "status", "running", "--api", fake_api.url)
    assert done.returncode == 0, done.stderr
    assert "演示轮次（running）状态：进行中" in done.stdout
    assert "已启动 3 / 3 个组织" in done.stdout
    assert "动员部署 2" in done.stdout


# ----- 5. plan apply names the missing reason --------------------------------------------------
def test_plan_apply_without_a_reason_says_so(tmp_path: Path, fake_api: FakeApi) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("id: x\n", encoding="utf-8")
    done = run(tmp_path, "plan", "apply", "R", str(plan), "--api", fake_api.url)
    assert done.returncode == 2
    line = one_line(done)
    assert "未填写调整理由" in line and "--reason" in line and "新版计划有误" not in line
    assert fake_api.requests == []  # refused before anything is sent

    # A reason the API refuses (only invisible characters) is named as the reason too.
    done = run(
        tmp_path, "plan", "apply", "R", str(plan), "--reason", "\u200b", "--api", fake_api.url
    )
    assert done.returncode == 2
    line = one_line(done)
    assert "调整理由有误" in line and "调整计划必须填写理由" in line


# ----- 6. validate-plan notes a start the API would refuse -------------------------------------
def test_validate_plan_notes_a_start_in_the_past(tmp_path: Path) -> None:
    done = run(
        tmp_path, "validate-plan", str(SEED_PLAN), "--start", "2020-01-01", "--round", "round-2"
    )
    assert done.returncode == 0, done.stderr
    assert "动员部署  截止 2020-02-05 24:00" in done.stdout
    today = datetime.now(SHANGHAI).date()
    note = one_line(done)
    assert note.startswith("注意：开始日期 2020-01-01 早于今天")
    assert f"北京时间 {today}" in note and "会被拒绝" in note


def test_validate_plan_has_no_note_for_a_start_from_today(tmp_path: Path) -> None:
    tomorrow = datetime.now(SHANGHAI).date() + timedelta(days=1)
    done = run(tmp_path, "validate-plan", str(DEMO_PLAN), "--start", tomorrow.isoformat())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
