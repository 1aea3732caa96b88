"""The password rule against what outside testers got through it: the username repeated,
reversed or wrapped in digits and punctuation, one short pattern repeated, and the person's
own name in pinyin (or the username) plus a year. The pinyin spellings come from the service
(``chuangzheng.services.sign_in.personal_words``); the domain takes them as given words."""

from __future__ import annotations

import pytest

from chuangzheng.services.sign_in import personal_words
from domain.accounts import password_problems

NAMED = "密码不能是账号或包含账号"
REPEATED = "密码不能由一小段字符重复组成"
PERSONAL = "密码不能是本人姓名或其拼音（加上年份、生日等数字或符号也不行）"


def reasons(password: str, username: str, display_name: str = "") -> list[str]:
    return [p.reason for p in password_problems(password, username, personal_words(display_name))]


@pytest.mark.parametrize(
    "password",
    [
        "zhangsanzhangsan",  # the testers' case
        "ZhangSan2024!!",
        "2024-zhangsan-!",
        "zhang.san.2024",  # punctuation inside the name
        "zhang8san-good",  # a digit inside the name
        "nasgnahz2024",  # reversed
        "NasGnahZ!!2026",
    ],
)
def test_the_username_in_any_disguise_is_refused(password: str) -> None:
    assert NAMED in reasons(password, "zhangsan"), password


def test_a_username_with_digits_and_punctuation_is_refused_by_its_letters() -> None:
    assert NAMED in reasons("zhangsan-2026!", "zhangsan01")
    assert NAMED in reasons("Seca_19851010", "sec-a")
    # A short username is refused as the password's only word (with digits: a year).
    assert NAMED in reasons("li19851010", "li")
    assert NAMED in reasons("2026@@li@@2026", "li")


def test_the_letters_of_a_short_username_are_not_looked_for_inside_other_words() -> None:
    # "l" (of "l1") is in many words: a username under four letters is refused by its
    # letters only when they are the password's only word (as typed, it is looked for
    # anywhere, as before).
    assert reasons("lemonade-tree-77", "l1") == []
    assert NAMED in reasons("lemonade-l1-tree", "l1")
    assert reasons("Horse battery staple", "li") == []


@pytest.mark.parametrize(
    "password", ["abcabcabcabc", "Zs!Zs!Zs!Zs!", "12ab12ab12ab", "passwordpassword", "xy7xy7xy7x"]
)
def test_one_short_pattern_repeated_is_refused(password: str) -> None:
    assert REPEATED in reasons(password, "someone"), password


def test_a_long_phrase_said_twice_is_not_a_short_pattern() -> None:
    # The unit alone is long enough to be a password: repeating it is not the weakness.
    assert reasons("柳树村春耕忙碌五月天-柳树村春耕忙碌五月天-", "someone") == []


@pytest.mark.parametrize(
    "password",
    [
        "liming1985",
        "LiMing@19850101",
        "1985.li.ming!",
        "mingli-2026-!!",  # given name first
        "LM19850101",  # initials and a birthday
        "gnimil1985xx",  # reversed
        "iamliming2024",  # the full spelling anywhere
        "李明19850101",  # the name itself
    ],
)
def test_the_display_name_in_pinyin_plus_a_year_is_refused(password: str) -> None:
    assert PERSONAL in reasons(password, "sec-a", "李明"), password


def test_every_reading_of_a_name_is_a_spelling() -> None:
    # 单 is "shan" as a family name, "dan" as a word: both are refused.
    words = personal_words("单田芳")
    assert {"shantianfang", "dantianfang", "tianfangshan", "stf"} <= set(words)
    assert PERSONAL in reasons("shantianfang88", "sec-c", "单田芳")
    assert PERSONAL in reasons("dantianfang88", "sec-c", "单田芳")


def test_other_names_and_ordinary_passwords_pass() -> None:
    assert reasons("wangfang1985", "sec-a", "李明") == []
    assert reasons("柳树村-春耕-2026", "secretary-org-a", "李明") == []
    assert reasons("Tea and 2 lemons!", "sec-a", "李明") == []
    # Without a display name, nothing personal is looked for.
    assert personal_words("") == ()
    assert reasons("liming1985", "sec-a") == []


def test_every_reason_is_in_chinese_on_the_new_password_field() -> None:
    problems = password_problems("zszszs", "zs", personal_words("张三"))
    assert {p.field for p in problems} == {"new_password"}
    assert [p.reason for p in problems] == [
        "密码至少 10 个字符",
        "密码过于常见或简单，容易被猜中",
        NAMED,
    ]
