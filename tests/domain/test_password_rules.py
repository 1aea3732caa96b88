"""The password rule against what outside testers got through it: the username repeated,
reversed or wrapped in digits and punctuation, one short pattern repeated, and the person's
own name in pinyin (or the username) plus a year. The pinyin spellings come from the service
(``chuangzheng.services.sign_in.personal_words``); the domain takes them as given words."""

from __future__ import annotations

import pytest

from chuangzheng.services.sign_in import personal_words, place_words
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


@pytest.mark.parametrize(
    ("password", "username", "display_name"),
    [
        ("cuixiao1985", "instructor-崔晓", "指导员崔晓"),
        ("dengfenglan1980", "secretary-org-0003-邓峰兰", "杏湾街道胜利社区党支部书记邓峰兰"),
        ("zhangsan2026", "office-zs", "县委活动办张三"),
    ],
)
def test_a_roster_accounts_person_is_found_at_the_end_of_its_display_name(
    password: str, username: str, display_name: str
) -> None:
    # Roster accounts are named by office and person; an outside operator activated all
    # three of these.
    assert PERSONAL in reasons(password, username, display_name), password


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


# ----- common passwords in disguise (an outside tester's list) -----

COMMON = "密码过于常见或简单，容易被猜中"


@pytest.mark.parametrize(
    "password",
    [
        "P@ssw0rd2026",  # look-alike characters and a year
        "Password1!",
        "Qwerty2026!",  # a keyboard row
        "1234567890!",
        "chuangzheng2026",  # the service's own name
        "Admin@123456",
        "qwertyuiop1",
        "woaini131452",  # 我爱你 and the love numbers
        "dangjian2026",  # 党建
    ],
)
def test_the_testers_common_passwords_with_a_suffix_are_refused(password: str) -> None:
    found = reasons(password, "someone", "李明")
    assert any(reason.startswith(COMMON) for reason in found), (password, found)


def test_the_testers_repeat_with_a_tail_is_refused() -> None:
    assert REPEATED in reasons("abcabcabca1", "someone")
    assert REPEATED in reasons("1xyzxyzxyzx", "someone")
    assert REPEATED in reasons("haha2026haha2026!", "someone")


@pytest.mark.parametrize(
    "password",
    [
        "2026Password!",  # the year before
        "p4$$w0rd-2026",
        "@dmin2026!!",
        "!!Welcome2026",
        "qweasdzxc2026",  # rows one under another
        "1qaz2wsx3edc!",  # columns
        "asdfghjkl;'",
        "zxcvbnm,./123",
        "147258369!!",  # the keypad
        "ytrewq2026!!",  # a row backwards
        "abcdefghij1",  # the alphabet
        "5201314!!!",
        "Iloveyou2026",
        "woaiwojia@2026",
        "Chuangxian2026",
        "cxzy20262026",
        "Dangyuan_2026!",
        "gongchandang1921",
        "党建2026-2026",
        "创先争优@2026",
        "Zhongguo2026!",
        "Mima@123456789",
        "qwertyuiopqwertyuiop",  # a common one said twice, however long
        "Password2026Password2026",
    ],
)
def test_common_words_walks_and_love_numbers_with_digits_or_symbols_are_refused(
    password: str,
) -> None:
    found = reasons(password, "someone")
    assert any(reason.startswith(COMMON) for reason in found), (password, found)


def test_the_county_s_name_and_its_pinyin_are_refused_with_digits() -> None:
    local = place_words("青石县")
    assert {"青石县", "青石", "qingshixian", "qingshi"} <= set(local)
    for password in ("Qingshi@2026", "qingshixian2026", "青石县2026-2026", "2026.QingShi!"):
        found = [p.reason for p in password_problems(password, "someone", (), local)]
        assert any(reason.startswith(COMMON) for reason in found), password
    # Another county's name is not refused for it.
    assert password_problems("Qingshi@2026", "someone", (), place_words("长乐区")) == []


@pytest.mark.parametrize(
    "password",
    [
        "青山绿水-2026-春耕",
        "correct horse battery",
        "Horse battery staple",
        "柳树村-春耕-2026",
        "柳树村-秋收-2027",
        "Tea and 2 lemons!",
        "wangfang1985",
        "mountain-tea-2026",
        "8472-9130-5526",  # random digits in groups
        "Rk7#vP2q!mZ9",  # random
        "3.1415926535",
        "xiaoqiao-liushu-88",
        "lemonade-tree-77",
    ],
)
def test_reasonable_passwords_still_pass(password: str) -> None:
    assert reasons(password, "someone", "李明") == [], password


def test_only_the_disguise_gets_the_longer_reason_the_plain_one_keeps_its_wording() -> None:
    assert reasons("password123", "someone") == [COMMON]
    [disguised] = reasons("Password123!", "someone")
    assert disguised.startswith(COMMON + "（") and "年份" in disguised
