import pytest

from shorty.core import accounts
from shorty.core.errors import InvalidAccount


def test_email_is_lowercased_and_trimmed():
    assert accounts.normalize_email("  Ada@Example.COM ") == "ada@example.com"


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "a b@c.d", "a@b@c"])
def test_bad_emails(email):
    with pytest.raises(InvalidAccount, match="not an email"):
        accounts.normalize_email(email)


def test_password_length():
    assert accounts.check_password("x" * 10)
    with pytest.raises(InvalidAccount, match="at least 10"):
        accounts.check_password("x" * 9)
    with pytest.raises(InvalidAccount, match="at most"):
        accounts.check_password("x" * 1025)


def test_scopes_are_checked_and_deduplicated():
    assert accounts.check_scopes(("urls:write", "urls:read", "urls:read")) == (
        "urls:read",
        "urls:write",
    )
    with pytest.raises(InvalidAccount, match="Unknown scope"):
        accounts.check_scopes(("urls:read", "root"))


def test_new_keys_are_unique_prefixed_and_long():
    keys = {accounts.new_api_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(k.startswith("shk_") and len(k) == 44 for k in keys)


def test_hash_is_stable_and_not_the_key():
    key = accounts.new_api_key()
    assert accounts.hash_api_key(key) == accounts.hash_api_key(key)
    assert key not in accounts.hash_api_key(key)
    assert len(accounts.hash_api_key(key)) == 64


def test_shown_prefix_reveals_little():
    generated = accounts.new_api_key()
    assert accounts.shown_prefix(generated) == generated[:12]
    assert accounts.shown_prefix("my-own-bootstrap-key-value") == "my-o"


def test_an_admin_reaches_every_owner_a_user_only_themselves():
    admin = accounts.Principal(user_id=1, role="admin", key_id=3, scopes=frozenset({"admin"}))
    user = accounts.Principal(user_id=2, role="user", key_id=4, scopes=frozenset({"admin"}))
    assert admin.owner_scope is None
    assert user.owner_scope == 2  # a user's key holding "admin" is cut down to the role
