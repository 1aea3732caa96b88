"""Party members (党员名册) for the demo county, generated from the roster's member counts.

Names are made up from common surnames and given-name characters, deterministically (the
same roster gives the same members), so the commitment ledger and its coverage guard can be
tried in ``make run`` without a real member list. Real counties import theirs
(``POST /api/v1/members/import``).
"""

from __future__ import annotations

from domain.members import MemberRoster, PartyMember
from domain.organisation import Roster

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "建国华明军伟芳秀英敏静丽强磊洋艳勇杰娟涛超霞平刚桂兰红玉凤志海燕文斌俊辉"


def demo_member_name(org_index: int, n: int) -> str:
    """A stable, plausible two- or three-character name."""
    seed = org_index * 7919 + n * 104729
    surname = _SURNAMES[seed % len(_SURNAMES)]
    first = _GIVEN[(seed // 7) % len(_GIVEN)]
    if n % 3 == 0:
        return surname + first
    return surname + first + _GIVEN[(seed // 53) % len(_GIVEN)]


def demo_members(roster: Roster) -> MemberRoster:
    """As many members for each organisation as the roster's 党员人数 says."""
    members = [
        PartyMember(org_id=org.id, member_id=f"{org.id}-M{n:03d}", name=demo_member_name(index, n))
        for index, org in enumerate(roster.organisations)
        for n in range(1, org.member_count + 1)
    ]
    return MemberRoster(members=tuple(members))
