"""``chuangzheng plan``: a running round's plan versions through the HTTP API (scoped,
audited and idempotent exactly like the page): fetch the plan in force as YAML, list the
versions with what each changed, preview or apply an edited plan as the next version.

The API address and account come from options or ``CZ_API_URL`` / ``CZ_API_USER`` /
``CZ_API_PASSWORD``, else from the settings (see ``chuangzheng.admin``). A refused draft
prints every field and reason in Chinese and exits with 2; nothing is changed.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Annotated

import httpx
import typer

from chuangzheng.admin import (
    ApiPassword,
    ApiUrl,
    ApiUser,
    _check,
    _client,
    bad_input,
    read_text,
)

app = typer.Typer(help="运行中轮次的计划版本：查看、预览、启用新版本", no_args_is_help=True)


@app.command("show")
def show(
    round_id: str,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="写入文件")] = None,
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """输出本轮当前版本的计划（YAML），可编辑后用 apply 启用。"""
    with _client(api, user, password) as client:
        body = _check(client.get(f"/api/v1/rounds/{round_id}/plan"))
    if output is None:
        typer.echo(body["plan_yaml"])
    else:
        try:
            output.write_text(body["plan_yaml"], encoding="utf-8")
        except OSError as exc:
            bad_input(f"无法写入文件：{output}（{exc.strerror or exc}）")
    typer.echo(f"当前为第{body['version']}版（{body['plan_ref']}）", err=True)


@app.command("versions")
def versions(
    round_id: str,
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """列出本轮计划的各个版本：启用人、时间、理由和调整内容。"""
    with _client(api, user, password) as client:
        rows = _check(client.get(f"/api/v1/rounds/{round_id}/plan-versions"))
    for row in rows:
        typer.echo(
            f"第{row['version']}版  {row['applied_at'] or ''}  {row['applied_by']}  {row['reason']}"
        )
        for change in row["changes"]:
            typer.echo(f"    - {change}")


@app.command("apply")
def apply(
    round_id: str,
    file: Annotated[Path, typer.Argument(help="新版计划（YAML），通常由 show 导出后修改")],
    reason: Annotated[str, typer.Option("--reason", help="调整理由（必填）")] = "",
    base_version: Annotated[
        int | None, typer.Option("--base-version", help="草稿所基于的版本，已被他人调整时拒绝")
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="幂等键：重试时给出同一个，只启用一次")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="只预览调整内容，不启用")] = False,
    api: ApiUrl = None,
    user: ApiUser = None,
    password: ApiPassword = None,
) -> None:
    """预览或启用新版计划：未完成的阶段按新版本重新计算截止时间和督办时间。"""
    plan_yaml = read_text(file)
    if not dry_run and not reason.strip():
        bad_input("未填写调整理由：启用新版计划须用 --reason 说明理由（--dry-run 预览时可不填）")
    body = {"plan_yaml": plan_yaml, "reason": reason, "base_version": base_version}
    idempotency_key = key or f"cli-{uuid.uuid4()}"
    with _client(api, user, password) as client:
        if dry_run:
            answer = _check(
                client.post(f"/api/v1/rounds/{round_id}/plan-versions/preview", json=body)
            )
            typer.echo(f"启用后将成为第{answer['version']}版：")
        else:
            response = client.post(
                f"/api/v1/rounds/{round_id}/plan-versions",
                json=body,
                headers={"Idempotency-Key": idempotency_key},
            )
            _refused_reason(response)
            answer = _check(response)
            done = "已启用" if answer["applied"] else "此前已启用（同一幂等键）"
            typer.echo(f"{done}第{answer['version']}版（幂等键 {idempotency_key}）：")
    for change in answer["changes"] or ["无调整"]:
        typer.echo(f"  - {change}")


def _refused_reason(response: httpx.Response) -> None:
    """A refusal of the reason alone (e.g. only invisible characters) named as such, not as
    a faulty plan: exit 2 with the API's reason."""
    if response.status_code != 422:
        return
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return
    if errors and all(isinstance(e, dict) and e.get("field") == "reason" for e in errors):
        reasons = "；".join(str(e.get("reason")) for e in errors)
        bad_input(f"调整理由有误，未作任何调整：{reasons}（请用 --reason 说明理由）")
