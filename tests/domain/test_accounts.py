"""The account rules: who manages whom, scope shapes, the password policy and the codes."""

from __future__ import annotations

import re

import pytest

from domain.accounts import (
    CODE_ALPHABET,
    COMMON_PASSWORDS,
    AccountScope,
    Administrator,
    check_scope_shape,
    check_username,
    manages,
    new_activation_code,
    normalise_code,
    password_problems,
)
from domain.organisation import Role

COUNTY = Administrator(Role.COUNTY_OFFICE, "")
CHENGGUAN = Administrator(Role.TOWNSHIP, "城关镇")


def secretary(township: str | None) -> AccountScope:
    return AccountScope(Role.SECRETARY, "org-x", township)


def test_the_county_office_manages_everyone() -> None:
    for role in Role:
        assert manages(COUNTY, AccountScope(role, "", None))


def test_a_township_manages_only_its_own_organisations_secretaries() -> None:
    assert manages(CHENGGUAN, secretary("城关镇"))
    assert not manages(CHENGGUAN, secretary("青石镇"))
    assert not manages(CHENGGUAN, secretary(None))
    assert not manages(CHENGGUAN, AccountScope(Role.TOWNSHIP, "城关镇", "城关镇"))
    assert not manages(CHENGGUAN, AccountScope(Role.INSTRUCTOR, "张指导", None))
    assert not manages(CHENGGUAN, AccountScope(Role.COUNTY_OFFICE, "", None))


@pytest.mark.parametrize(
    "role", [Role.INSTRUCTOR, Role.SECRETARY, Role.GUIDANCE_GROUP, Role.ASSESSMENT_GROUP]
)
def test_other_roles_manage_nobody(role: Role) -> None:
    admin = Administrator(role, "城关镇")
    assert not manages(admin, secretary("城关镇"))


def test_scope_shapes() -> None:
    assert check_scope_shape(Role.COUNTY_OFFICE, "") == []
    assert check_scope_shape(Role.COUNTY_OFFICE, "城关镇")[0].field == "scope_key"
    assert check_scope_shape(Role.GUIDANCE_GROUP, "rural") == []
    assert "系统" in check_scope_shape(Role.GUIDANCE_GROUP, "城关镇")[0].reason
    assert check_scope_shape(Role.SECRETARY, " ")[0].reason == "该角色必须指定范围"
    assert check_scope_shape(Role.TOWNSHIP, "城关镇") == []


def test_usernames() -> None:
    assert check_username("township-城关镇") == []
    assert check_username("county.admin_2") == []
    assert check_username("-lead")[0].field == "username"
    assert check_username("有 空格")
    assert check_username("x" * 65)


@pytest.mark.parametrize(
    "password", ["woaini1314", "qwerty123456", "password123", "a1234567890", "1234567890"]
)
def test_common_passwords_are_refused(password: str) -> None:
    reasons = [p.reason for p in password_problems(password, "li")]
    assert "密码过于常见或简单，容易被猜中" in reasons


def test_the_list_holds_the_obvious_chinese_ones() -> None:
    assert {"123456", "a123456", "woaini1314", "qwerty123", "password"} <= COMMON_PASSWORDS
    assert len(COMMON_PASSWORDS) >= 300


def test_trivial_passwords_are_refused_whatever_the_list() -> None:
    for password in ("zzzzzzzzzzzz", "abababababab", "klmnopqrstuv", "9876543210987"[:10]):
        assert password_problems(password, "li"), password


def test_short_and_username_passwords_give_every_reason() -> None:
    problems = password_problems("Zhang", "zhang")
    assert [p.field for p in problems] == ["new_password", "new_password"]
    reasons = {p.reason for p in problems}
    assert reasons == {"密码至少 10 个字符", "密码不能是账号或包含账号"}
    assert password_problems("my-ZHANGSAN-2026", "zhangsan")[0].reason == "密码不能是账号或包含账号"


def test_a_good_password_passes() -> None:
    assert password_problems("柳树村-春耕-2026", "secretary-org-a") == []
    assert password_problems("Horse battery staple", "li") == []


def test_codes_are_grouped_from_the_unambiguous_alphabet() -> None:
    codes = {new_activation_code() for _ in range(500)}
    assert len(codes) == 500
    for code in codes:
        assert re.fullmatch(r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", code)
        assert set(code.replace("-", "")) <= set(CODE_ALPHABET)
    assert not set("01OIL") & set(CODE_ALPHABET)


def test_typed_codes_are_normalised() -> None:
    assert normalise_code(" abcd-efgh－jkmn ") == "ABCDEFGHJKMN"
    assert normalise_code("ABCD EFGH JKMN") == normalise_code("ABCD-EFGH-JKMN")
