"""Hostile plans (issue 13, "hostile files"): whatever YAML a county office uploads, loading
it either gives a plan or refuses it with field errors, each naming a field and giving a
Chinese reason; never another exception (an unhandled error is a 500 at round creation).

Two generators: the shipped demo plan with one part replaced, removed or added (the errors
a clerk editing a real plan makes, and values no clerk would type), and raw text built from
YAML's own hostile pieces (tags, anchors, control characters), and deep nesting. Bounded: a few
hundred examples, a few seconds.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chuangzheng.plans import calendar_library
from domain.errors import PlanError
from domain.plan import CampaignPlan
from domain.plan_loader import load_plan

ROOT = Path(__file__).resolve().parents[2]
DEMO: dict[str, Any] = yaml.safe_load((ROOT / "plans" / "demo.yaml").read_text("utf-8"))
CALENDARS = calendar_library()
CJK = re.compile(r"[\u4e00-\u9fff]")
#: Examples tried by this module's fuzzers, for docs/reliability.md.
MUTATED_EXAMPLES = 200
RAW_EXAMPLES = 200
#: Plans tried and refused by this process (the figures of docs/reliability.md).
STATS: Counter[str] = Counter()

# Values no plan field expects, and some that almost fit.
hostile_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", " ", "=1+1", "\x00", "9999-12-31", "0001-01-01", "2025-02-30", "∞"]),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    st.just(datetime(2025, 1, 6, 8, 0)),
)
hostile_value = st.recursive(
    hostile_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _containers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a mapping or list in ``node`` (the places a mutation can happen)."""
    found = [path]
    items: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, child in items:
        if isinstance(child, dict | list):
            found.extend(_containers(child, (*path, key)))
    return found


DEMO_CONTAINERS = _containers(DEMO)


@st.composite
def mutated_plans(draw: st.DrawFn) -> dict[str, Any]:
    """The demo plan with one to three parts replaced, removed or added."""
    plan = copy.deepcopy(DEMO)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(DEMO_CONTAINERS))
        node: Any = plan
        try:
            for key in path:
                node = node[key]
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the way there
        if not isinstance(node, dict | list) or not node:
            continue
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        how = draw(st.sampled_from(["replace", "remove", "add"]))
        if how == "replace":
            node[key] = draw(hostile_value)
        elif how == "remove":
            del node[key]
        elif isinstance(node, dict):
            node[draw(st.text(min_size=1, max_size=10))] = draw(hostile_value)
        else:
            node.append(draw(hostile_value))
    return plan


def assert_loads_or_names_fields(text: str) -> CampaignPlan | None:
    """The contract: a plan, or a :class:`PlanError` whose every error names a field and
    gives a reason in Chinese."""
    STATS["tried"] += 1
    try:
        return load_plan(text, calendars=CALENDARS)
    except PlanError as exc:
        STATS["refused"] += 1
        assert exc.errors, "a refusal without any field error"
        for error in exc.errors:
            assert error.field.strip(), error
            assert CJK.search(error.reason), error  # a clerk reads Chinese, not pydantic
        return None


@settings(
    max_examples=MUTATED_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_plans())
def test_a_mutated_plan_loads_or_every_error_names_its_field(plan: dict[str, Any]) -> None:
    assert_loads_or_names_fields(yaml.safe_dump(plan, allow_unicode=True))


YAML_PIECES = st.sampled_from(
    [
        "id: demo\n",
        "rounds:\n",
        "  - ",
        "ladder: ",
        "{",
        "}",
        "[",
        "]",
        ": ",
        "- ",
        "&a ",
        "*a ",
        "*b ",
        "!!python/object/apply:os.system ['true']\n",
        "!!binary AAAA\n",
        "!!timestamp 2025-13-45\n",
        "? ",
        "|\n  ",
        "'",
        '"\\x00"',
        "\t",
        "\n",
        "2025-02-30",
        "0x1F",
        ".inf",
        "~",
        "%YAML 1.1\n---\n",
        "--- \n",
        "...\n",
        "\x00",
        "\ufeff",
        "汉字",
    ]
)
raw_plans = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(YAML_PIECES, st.text(max_size=5)), max_size=40).map("".join),
    st.builds(lambda n: "a:\n" + "".join(f"{' ' * i}- \n" for i in range(n)), st.integers(0, 400)),
)


@settings(max_examples=RAW_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_plans)
# Found by this fuzzer (unhandled in PyYAML's constructors before the fix: 500s).
@example("!!timestamp")
@example("a: !!timestamp 99999-01-01")
@example("a: !!int 0x")
def test_any_text_is_a_plan_or_a_refusal_naming_its_field(text: str) -> None:
    assert_loads_or_names_fields(text)


@pytest.mark.parametrize("depth", [100, 1_000, 20_000])
def test_deep_nesting_is_refused_not_a_crash(depth: int) -> None:
    # Before the fix a few hundred "[" were a RecursionError out of PyYAML: a 500.
    with pytest.raises(PlanError) as refused:
        load_plan("a: " + "[" * depth + "]" * depth, calendars=CALENDARS)
    assert {e.field for e in refused.value.errors} & {"(yaml)", "a"}


def test_an_alias_bomb_is_refused_at_once() -> None:
    # Ten levels of ten aliases each would be 10**10 items if anything walked them.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    for target in ("rounds: *a9", "ladder:\n  rungs: *a9", "calendar:\n  holidays: *a9"):
        with pytest.raises(PlanError) as refused:
            load_plan("\n".join([*lines, target]), calendars=CALENDARS)
        assert len(refused.value.errors) < 100
