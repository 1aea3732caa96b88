"""The password hasher's profiles: the standard argon2id parameters every deployment uses,
and the test suites' fast ones (``CZ_PASSWORD_HASHING=fast``, set by tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from argon2 import PasswordHasher, Type
from argon2.exceptions import VerifyMismatchError

from chuangzheng.services.password_hashing import configured_hashing, hasher_for


def test_the_standard_profile_is_argon2id_at_rfc_9106_strength() -> None:
    standard = hasher_for("standard")
    assert standard.type is Type.ID
    assert (standard.time_cost, standard.memory_cost, standard.parallelism) == (3, 65536, 4)
    assert standard.hash("密码-测试-123").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_a_hash_carries_its_parameters_so_any_profile_verifies_it() -> None:
    fast, standard = hasher_for("fast"), hasher_for("standard")
    made_fast = fast.hash("密码-测试-123")
    assert made_fast.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert standard.verify(made_fast, "密码-测试-123")
    with pytest.raises(VerifyMismatchError):
        standard.verify(made_fast, "另一个密码-123")


@pytest.mark.parametrize(
    ("value", "profile"), [(None, "standard"), ("", "standard"), ("fast", "fast")]
)
def test_the_variable_names_a_profile(value: str | None, profile: str) -> None:
    assert configured_hashing(value) == profile


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="expected 'standard' or 'fast'"):
        configured_hashing("md5")


def test_a_process_without_the_variable_hashes_with_the_standard_parameters() -> None:
    # The suite itself runs with the fast profile; a process started without the variable
    # (as every deployment is) must build the standard hasher.
    code = (
        "from chuangzheng.services.sign_in import hash_password;"
        "print(hash_password('密码-测试-123'))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), out.stderr
    assert PasswordHasher().verify(out.stdout.strip(), "密码-测试-123")
