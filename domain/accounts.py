"""Accounts, as the county office administers them: who may manage whom, what scope each
role carries, the password policy and the one-time activation codes.

Pure rules: the service (``chuangzheng.services.accounts``) reads the accounts and the
roster, hashes and stores; this module only decides. Nothing here knows the clock or the
database; the code generator takes its randomness from :mod:`secrets`.
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from domain.errors import FieldError
from domain.organisation import Role, is_system_key


class AccountSource(StrEnum):
    """Who keeps an account: roster imports, the county office's admin page, or the demo."""

    ROSTER = "roster"
    ADMIN = "admin"
    DEMO = "demo"


class ScopeKind(StrEnum):
    """What a role's ``scope_key`` names."""

    NONE = "none"  # county-wide roles: the key is empty
    SYSTEM = "system"  # a guidance group: the key of one of the county's groups
    TOWNSHIP = "township"  # a township committee: the township's name
    INSTRUCTOR = "instructor"  # an instructor: their name as the roster's 指导员 column has it
    ORGANISATION = "organisation"  # a secretary: the organisation's id
    CADRE = "cadre"  # a leading cadre: the key their contact points (联系点) name them by


SCOPE_KINDS: dict[Role, ScopeKind] = {
    Role.COUNTY_OFFICE: ScopeKind.NONE,
    # Above the county: their counties are ``account_counties`` rows, not a scope key.
    Role.CITY_OFFICE: ScopeKind.NONE,
    Role.PROVINCE_OFFICE: ScopeKind.NONE,
    Role.ASSESSMENT_GROUP: ScopeKind.NONE,
    Role.GUIDANCE_GROUP: ScopeKind.SYSTEM,
    Role.TOWNSHIP: ScopeKind.TOWNSHIP,
    Role.INSTRUCTOR: ScopeKind.INSTRUCTOR,
    Role.SECRETARY: ScopeKind.ORGANISATION,
    Role.LEADING_CADRE: ScopeKind.CADRE,
}

#: The roles that administer accounts at all (each within :func:`manages`).
ADMIN_ROLES: frozenset[Role] = frozenset({Role.COUNTY_OFFICE, Role.TOWNSHIP})

#: How long an activation code stays valid after it is issued.
CODE_LIFETIME = timedelta(days=14)

#: Letters and digits nobody misreads on paper: no 0/O, 1/I/L, and no U (reads as V).
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
CODE_LENGTH = 12
CODE_GROUP = 4

#: Usernames: letters, digits, Chinese characters and ``_ . -`` (the roster's accounts are
#: named like ``township-城关镇``), starting with a letter, digit or Chinese character.
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,63}$")

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256


@dataclass(frozen=True)
class Administrator:
    """Who administers: their role and the key of what it covers."""

    role: Role
    scope_key: str


@dataclass(frozen=True)
class AccountScope:
    """An account as the scope rules see it: its role, its key, and the township it belongs
    to (a township's own name, a secretary's organisation's township; None otherwise)."""

    role: Role
    scope_key: str
    township: str | None


def manages(admin: Administrator, account: AccountScope) -> bool:
    """Whether ``admin`` may see and change ``account``: the county office manages everyone;
    a township committee only the secretaries of its own organisations; nobody else anyone."""
    if admin.role is Role.COUNTY_OFFICE:
        return True
    if admin.role is Role.TOWNSHIP:
        return account.role is Role.SECRETARY and account.township == admin.scope_key
    return False


def may_administer(admin: Administrator) -> bool:
    """Whether ``admin``'s role administers accounts at all."""
    return admin.role in ADMIN_ROLES


def check_username(username: str) -> list[FieldError]:
    """Problems with a new account's username (empty when it is acceptable)."""
    if not USERNAME_PATTERN.fullmatch(username):
        return [
            FieldError(
                "username",
                "账号应为 1–64 个字母、数字、汉字或 _ . -，以字母、数字或汉字开头",
            )
        ]
    return []


def check_scope_shape(role: Role, scope_key: str) -> list[FieldError]:
    """Problems with ``scope_key`` for ``role`` that need no roster (a county-wide role has
    no key, a guidance group names a system, the other roles name something). Whether the
    township, organisation or instructor exists is the service's check."""
    kind = SCOPE_KINDS[role]
    if kind is ScopeKind.NONE:
        return [] if scope_key == "" else [FieldError("scope_key", "该角色覆盖全县，范围应为空")]
    if not scope_key.strip():
        return [FieldError("scope_key", "该角色必须指定范围")]
    if kind is ScopeKind.SYSTEM and not is_system_key(scope_key):
        # Which groups exist is the county's data (issue 15): the service checks that.
        reason = "指导小组的范围应为其所属系统的编号（小写字母、数字或 _，以字母开头）"
        return [FieldError("scope_key", reason)]
    return []


# ----- passwords -----------------------------------------------------------------------------

# Passwords people pick first, including the ones common among Chinese users (pinyin, 520 and
# 1314 love numbers, keyboard walks). Shorter ones are refused by length anyway; they stay in
# the list because a padded variant ("123456123456") is refused by the same lookup.
_COMMON_PASSWORD_TEXT = """
    123456 1234567 12345678 123456789 1234567890 12345678910 0123456789 9876543210 987654321
    111111 1111111111 000000 0000000000 666666 6666666666 888888 8888888888 999999 9999999999
    123123 123123123 123123123123 123321 1234554321 112233 11223344 1122334455 123654
    654321 123456123456 123456654321 12341234 1234512345 147258369 147258 159357 159753
    741852963 789456123 789456 456789 135792468 1357924680 13579 2468013579 5201314
    520520 5201314520 1314520 1314521 13145201314 520131400 521521 woaini woaini1314
    woaini520 woaini521 woaiwojia woainima iloveyou iloveyou1 iloveyou123 iloveyou1314
    5211314 a123456 a1234567 a12345678 a123456789 a1234567890 aa123456 aa12345678
    abc123 abc123456 abc1234567 abc12345678 abcd1234 abcd123456 abcd12345678 abcdef
    abcdefg abcdefgh abcdefghij abcde12345 a1b2c3d4 a1b2c3d4e5 1a2b3c4d 1q2w3e4r 1q2w3e4r5t
    1qaz2wsx 1qaz2wsx3edc 1qazxsw2 zaq12wsx zaq1xsw2 qazwsx qazwsxedc qazwsx123 qwe123
    qwe123456 qweasd qweasdzxc qweasd123 qwer1234 qwerty qwerty1 qwerty12 qwerty123
    qwerty1234 qwerty12345 qwertyui qwertyuiop asdfgh asdfghjkl asdf1234 asd123456
    zxcvbn zxcvbnm zxcvbnm123 zxc123456 password password1 password12 password123
    password1234 passw0rd p@ssw0rd p@ssword pass1234 pass123456 admin admin123
    admin1234 admin12345 admin123456 administrator root root123 root123456 test test123
    test123456 test1234 guest guest123 user user123 user123456 welcome welcome1 welcome123
    letmein letmein123 changeme changeme123 default default123 secret secret123 master
    master123 login login123 dragon monkey football baseball sunshine princess shadow
    superman batman trustno1 starwars whatever freedom michael jordan23 hello hello123
    hello1234 helloworld loveyou love1314 lovelove 88888888 66666666 11111111 00000000
    12121212 11112222 12344321 1234qwer 1234abcd qq123456 qq1234567 qq12345678 aini1314
    aini520 zhang123 zhang123456 wang123 wang123456 li123456 liu123456 chen123456
    yang123456 zhao123456 huang123456 zhou123456 wu123456 xu123456 sun123456 ma123456
    zhongguo zhongguo123 china123 china123456 beijing beijing123 shanghai shanghai123
    baidu123 taobao123 wangyi123 tencent123 weixin123 woshishui woshinidie nihao123
    nihao123456 nicai123 xiaoming xiaoming123 laopo520 laogong520 laopo1314 laogong1314
    baobao520 baobei520 baobei1314 asd123 asdasd asdasdasd asdasd123 qwe123qwe
    qweqweqwe zxczxczxc 1qaz@wsx 1qaz!qaz !qaz2wsx p@ssw0rd123 admin@123 admin@1234
    admin#123 abc@123 abc@123456 a123456789. aa123123 aa112233 abc123abc 123abc 123abc456
    123qwe 123qweasd 123qweasdzxc 123asd 123456abc 123456aa 123456a 123456qq 123456789a
    123456789q 12345qwert 12345abcde 1234567a 1234567q 12345678a 12345678q qwer123456
    dangyuan123 dangjian123 dangzhibu123 chuangzheng cxzy123456 gongchandang zhengfu123
    dangwei123 shuji123456 zhidaoyuan xiangzhen123 cunweihui123 password2024 password2025
    password2026 admin2024 admin2025 admin2026 woaini2024 woaini2025 woaini2026
    abc12345678910 aaaaaaaaaa aaaaaa1111 qwertyuiop123 1234567890a 1234567890q
    0987654321 asdfghjkl123 zxcvbnm1234 q1w2e3r4t5 q1w2e3r4 a1s2d3f4 z1x2c3v4
    mima123456 mimamima mima1234 wodemima wodemima123 huanying123 ceshi123456 ceshi
    qwerty123456 qwerty1234567 qwe1234567 qwer12345678 asdf123456 zxcv123456 abcd1234567
    iloveyou520 iloveyou5201314 woaini123456 woaini5201314 wo5201314 5201314a a5201314
"""

# Words a password is commonly built on, refused with digits, a year or symbols around them
# (``woaini131452``, ``Dangjian@2026``) as much as alone: the service's own words and the
# Party-work words around it (创先争优, 党建, in pinyin and in characters), love words and
# numbers, and the ordinary Chinese ones.
_COMMON_WORD_TEXT = """
    chuangzheng chuangxian chuangxianzhengyou zhengyou cxzy czxt dangjian dangjiangongzuo
    jicengdangjian dangyuan dangzhibu zhibu zhibushuji shuji dangwei dangzuzhi zuzhi zuzhibu
    gongchandang zhonggong zhongguogongchandang dangxiao xianwei xianzhengfu zhengfu
    xiangzhen cunweihui shequ zhidaoyuan kaohe pingyi gongzuo bangong bangongshi
    woaini woaiwojia wojiaini aini woaini1314 5201314 1314520 520520 521521 1314 woxihuanni
    iloveyou loveyou laopo laogong baobei baobao qinaide nihao nihaoma zhongguo china
    beijing shanghai mima wodemima ceshi huanying haha hehe xixi
    创先争优 创争 党建 党员 支部 党支部 党委 组织部 共产党 中国共产党 县委 政府 中国 我爱你 密码
"""
COMMON_PASSWORDS: frozenset[str] = frozenset(_COMMON_PASSWORD_TEXT.split())
#: :data:`COMMON_PASSWORDS` and the words passwords are built on: what is left of a
#: password once the digits and symbols around it are gone may be none of these.
COMMON_WORDS: frozenset[str] = COMMON_PASSWORDS | frozenset(_COMMON_WORD_TEXT.split())

#: Keyboard rows and columns, the keypad's, and the alphabet: a password that is a few runs
#: along them (``qwertyuiop``, ``qweasdzxc``, ``1qaz2wsx``, ``147258369``), either way, is
#: typed without thinking.
_KEY_RUNS = (
    "1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "qazwsxedcrfvtgbyhnujmikolp",
    "zaq1xsw2cde3vfr4bgt5nhy6mju7ki8lo9p0", "1470", "2580", "3690",
)  # fmt: skip
_KEY_WALKS = _KEY_RUNS + tuple(run[::-1] for run in _KEY_RUNS)
_LONGEST_RUN = max(len(run) for run in _KEY_RUNS)
#: A walk is at most this many runs, each at least this long.
_WALK_RUNS = 4
_WALK_RUN = 3

#: Digits and symbols that stand for letters (``P@ssw0rd``); ``1``, ``!`` and ``|`` for ``i``
#: or ``l``, both tried.
_LEET = {"@": "a", "4": "a", "8": "b", "3": "e", "6": "g", "9": "g", "0": "o",
         "$": "s", "5": "s", "7": "t", "+": "t"}  # fmt: skip
_LEET_I = str.maketrans(_LEET | {"1": "i", "!": "i", "|": "l"})
_LEET_L = str.maketrans(_LEET | {"1": "l", "!": "l", "|": "l"})
#: The most runs of digits or of symbols peeled off each end of a password.
_MOST_PEELS = 4
#: What may follow (or precede) one short pattern repeated, and how long the repeated part
#: must be then: ``abcabcabca1``.
_REPEAT_TAIL = 4
_REPEAT_HEAD = 8
#: The shortest part left between digits and symbols that is refused for being one short
#: pattern repeated (``abcabc2026!``).
_REPEATED_CORE = 6


def _is_trivial(password: str) -> bool:
    """One character repeated, or a run of consecutive keys/digits (``0123456789ab``…)."""
    if len(set(password)) <= 2:
        return True
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(password)}
    return steps <= {1} or steps <= {-1}


def _is_repeated(folded: str) -> bool:
    """One short pattern said again and again (``abcabcabcabc``, ``Zs!Zs!Zs!Zs!``, a partial
    last copy allowed): repeating adds next to nothing a guesser has to try, so a pattern
    shorter than a password may be is refused however often it is repeated."""
    size = len(folded)
    for unit in range(1, min(size // 2, MIN_PASSWORD_LENGTH - 1) + 1):
        if (folded[:unit] * (size // unit + 1))[:size] == folded:
            return True
    return False


def _peeled_ends(text: str) -> list[str]:
    """``text`` and what is left of it as runs of digits and runs of other non-letters are
    peeled off its end one by one (``admin@123456``: ``admin@``, ``admin``)."""
    found = [text]
    for _ in range(_MOST_PEELS):
        if not text or text[-1].isalpha():
            break
        digits = text[-1].isdigit()
        while text and not text[-1].isalpha() and text[-1].isdigit() == digits:
            text = text[:-1]
        found.append(text)
    return found


def _cores(folded: str) -> set[str]:
    """What a (case-folded) password may be built on: itself and what is left once digits,
    years and symbols are peeled off either end (the word said over and over: said once),
    each also with the digits and symbols that stand for letters read as letters
    (``P@ssw0rd2026``: ``password``)."""
    cores: set[str] = set()
    for tail in _peeled_ends(folded):
        for core in _peeled_ends(tail[::-1]):
            core = _repeated_unit(core[::-1])
            cores.add(core)
            if any(c.isalpha() for c in core):  # digits alone are not letters in disguise
                cores.update((core.translate(_LEET_I), core.translate(_LEET_L)))
    cores.discard("")
    return cores


def _repeated_unit(text: str) -> str:
    """The word ``text`` is said over and over, however long (``qwertyuiopqwertyuiop``:
    ``qwertyuiop``); ``text`` itself when it is not a repetition."""
    size = len(text)
    for unit in range(1, size // 2 + 1):
        if size % unit == 0 and text[:unit] * (size // unit) == text:
            return text[:unit]
    return text


def _is_key_walk(text: str) -> bool:
    """``text`` is a few runs along a keyboard row or column or the alphabet (see
    :data:`_KEY_RUNS`): ``qwerty``, ``asdfghjkl``, ``qweasdzxc``, ``1qaz2wsx``."""
    size = len(text)
    if size < _WALK_RUN + 1 or size > _WALK_RUNS * _LONGEST_RUN:
        return False
    # fewest[i]: the fewest runs that make up text[:i] (more than _WALK_RUNS: no way).
    never = _WALK_RUNS + 1
    fewest = [0] + [never] * size
    for end in range(_WALK_RUN, size + 1):
        for start in range(max(0, end - _LONGEST_RUN), end - _WALK_RUN + 1):
            if fewest[start] + 1 >= fewest[end]:
                continue
            if any(text[start:end] in walk for walk in _KEY_WALKS):
                fewest[end] = fewest[start] + 1
    return fewest[size] <= _WALK_RUNS


def _is_repeated_with_tail(folded: str) -> bool:
    """One short pattern repeated, with a few more characters after or before it
    (``abcabcabca1``, ``!xyxyxyxyxy``)."""
    size = len(folded)
    for cut in range(1, _REPEAT_TAIL + 1):
        if size - cut < _REPEAT_HEAD:
            break
        if _is_repeated(folded[: size - cut]) or _is_repeated(folded[cut:]):
            return True
    return False


def _built_on_common(cores: Iterable[str], local: frozenset[str]) -> bool:
    """A core is a common word or password, a word of the place (``local``), a keyboard
    walk, or one character (or two) over and over."""
    for core in cores:
        if core in COMMON_WORDS or core in local or _is_key_walk(core):
            return True
        if len(core) >= _WALK_RUN + 1 and _is_trivial(core):
            return True
    return False


def _letters(text: str) -> str:
    """``text`` with only its letters (Chinese characters included), case folded: what is
    left of a password once the digits and punctuation someone put around a word are gone."""
    return "".join(c for c in text.casefold() if c.isalpha())


#: The shortest username (its letters) a password may not contain anywhere; a shorter one
#: (``li``) would refuse ordinary words, so it is refused only as the password's only word.
MIN_CONTAINED_NAME = 4
#: The shortest name in pinyin a password may not contain anywhere (``liming``; ``lm`` and
#: ``wufang``-length spellings below it only as the password's only word).
MIN_CONTAINED_PINYIN = 5

_NAMED = "密码不能是账号或包含账号"
_REPEATED = "密码不能由一小段字符重复组成"
_COMMON = "密码过于常见或简单，容易被猜中"
_COMMON_DISGUISED = (
    "密码过于常见或简单，容易被猜中（常见密码、键盘上连续的键或本系统的常用词，"
    "加上数字、年份、符号，或把字母换成形近的数字、符号，也一样）"
)
_PERSONAL = "密码不能是本人姓名或其拼音（加上年份、生日等数字或符号也不行）"


def _names_username(folded: str, letters: str, username: str) -> bool:
    """The username in the password: as typed, or its letters (``zhang.san`` for
    ``zhangsan``, ``zhangsan`` for ``zhangsan01``), forwards or reversed, amid digits and
    punctuation."""
    name = username.casefold()
    if name and name in folded:
        return True
    core = _letters(username)
    if not core:
        return False
    if letters in (core, core[::-1]):
        return True
    if len(core) < MIN_CONTAINED_NAME:
        return False
    return core in letters or core[::-1] in letters


def _names_person(letters: str, personal: Iterable[str]) -> bool:
    """The password's letters are one of the person's own words (their name, its pinyin
    or initials), forwards or reversed, once or repeated: ``liming1985``, ``LM19850101``,
    ``1985.Li.Ming!``; a long spelling anywhere in it (``iamliming2024``)."""
    if not letters:
        return False
    for word in {_letters(w) for w in personal}:
        if not word:
            continue
        for spelling in (word, word[::-1]):
            if letters == spelling or (
                len(letters) % len(spelling) == 0
                and letters == spelling * (len(letters) // len(spelling))
            ):
                return True
            if len(spelling) >= MIN_CONTAINED_PINYIN and spelling in letters:
                return True
    return False


def password_problems(
    password: str, username: str, personal: Iterable[str] = (), local: Iterable[str] = ()
) -> list[FieldError]:
    """Every reason ``password`` is refused for ``username`` (empty when it is acceptable):
    at least :data:`MIN_PASSWORD_LENGTH` characters; not a common or trivial password nor
    one short pattern repeated; not built on a common password or word, a keyboard walk or a
    word of ``local`` with digits, a year or symbols around it or look-alike characters in
    it (``P@ssw0rd2026``, ``Qwerty2026!``, ``woaini131452``), nor on a repeated pattern with
    a short tail (``abcabcabca1``); not the username nor containing it (case, reversal and
    the digits or punctuation around it do not matter); not one of the person's own words
    plus digits, such as a year. ``personal``: those words, e.g. the display name and its
    pinyin spellings (the service spells them: this module knows no pinyin). ``local``: the
    place's words, e.g. the county's name and its pinyin."""
    problems: list[str] = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"密码最多 {MAX_PASSWORD_LENGTH} 个字符")
    folded = password.casefold()
    cores = _cores(folded) if len(password) <= MAX_PASSWORD_LENGTH else set()
    places = frozenset(w for word in local if (w := word.strip().casefold()))
    if folded in COMMON_PASSWORDS or _is_trivial(password):
        problems.append(_COMMON)
    elif _is_repeated(folded):
        problems.append(_REPEATED)
    elif _built_on_common(cores, places):
        problems.append(_COMMON_DISGUISED)
    elif _is_repeated_with_tail(folded) or any(
        len(core) >= _REPEATED_CORE and _is_repeated(core) for core in cores
    ):
        problems.append(_REPEATED)
    letters = _letters(password)
    if _names_username(folded, letters, username):
        problems.append(_NAMED)
    elif _names_person(letters, personal):
        problems.append(_PERSONAL)
    return [FieldError("new_password", reason) for reason in problems]


# ----- activation codes ----------------------------------------------------------------------


def new_activation_code() -> str:
    """A fresh code like ``ABCD-EFGH-JKMN``: 12 characters of :data:`CODE_ALPHABET` (about
    59 bits), grouped by four so it can be read out and typed from paper."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def normalise_code(text: str) -> str:
    """A typed code as it is hashed: case, spaces and dashes (ASCII or full-width, as a
    Chinese input method types them) do not matter."""
    return re.sub(r"[\s\-－—_]", "", text).upper()
