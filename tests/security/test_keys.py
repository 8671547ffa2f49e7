"""The API key store: only hashes at rest, constant-time verify, env hashes, concurrent writers lose nothing."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from fleetmind.security import KeyStore, UnknownKeyError, hash_key


def test_create_stores_only_the_hash(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("laptop")
    raw = (tmp_path / "keys.json").read_text()
    assert key not in raw
    assert record.sha256 == hash_key(key) in raw
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert store.verify(key)
    assert not store.verify(key + "x")
    assert not store.verify("")
    assert not store.verify(None)


def test_revoke(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create()
    other, _ = store.create("other")
    store.revoke(record.id)
    assert not store.verify(key)
    assert store.verify(other)
    with pytest.raises(UnknownKeyError):
        store.revoke(record.id)


def test_a_second_store_sees_changes_on_the_next_check(tmp_path: Path) -> None:
    reader = KeyStore(tmp_path / "keys.json")
    assert reader.is_empty()
    key, record = KeyStore(tmp_path / "keys.json").create()
    assert reader.verify(key)
    KeyStore(tmp_path / "keys.json").revoke(record.id)
    assert not reader.verify(key)


@pytest.mark.parametrize("var", ["FLEETMIND_API_KEYS", "PIECAT_API_KEYS"])
def test_hashes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str) -> None:
    monkeypatch.setenv(var, f" {hash_key('alpha').upper()} ,{hash_key('beta')},")
    store = KeyStore(tmp_path / "keys.json")
    assert store.verify("alpha") and store.verify("beta")
    assert not store.verify("gamma")


@pytest.mark.parametrize("name", ["", " ", "x" * 65, "tab\there"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        KeyStore(tmp_path / "keys.json").create(name)


def test_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"keys\.json"):
        KeyStore(tmp_path / "keys.json").verify("x")


def _create_many(path: str, n: int) -> None:
    store = KeyStore(Path(path))
    for i in range(n):
        store.create(f"k{i}")


def test_concurrent_creators_lose_no_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create_many, args=(str(path), 10)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(json.loads(path.read_text())["keys"]) == 40


def test_identify_names_the_record_a_key_belongs_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = KeyStore(tmp_path / "keys.json")
    key, record = store.create("alice")
    assert store.identify(key) == record
    assert store.identify("fm-not-a-key") is None and store.identify(None) is None and store.identify("") is None
    store.revoke(record.id)
    assert store.identify(key) is None
    env_key, other = "fm-from-the-environment", "fm-another-from-the-environment"
    monkeypatch.setenv("FLEETMIND_API_KEYS", f"{hash_key(env_key)},admin:{hash_key(other)},root:{hash_key('x')}")
    found, second = store.identify(env_key), store.identify(other)
    # each environment key is its own tenant, with the scope written before its hash (operator without one)
    assert found is not None and (found.id, found.name, found.scope) == (
        "env-" + hash_key(env_key)[:12],
        "env",
        "operator",
    )
    assert second is not None and second.id != found.id and second.scope == "admin"
    assert store.identify("x") is None  # an unknown scope grants nothing


def test_keys_have_scopes_and_old_records_count_as_operator(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    store = KeyStore(path)
    chat, chat_record = store.create("client")
    admin, admin_record = store.create("owner", scope="admin")
    assert chat_record.scope == "chat" and admin_record.scope == "admin"
    assert KeyStore(path).identify(admin) == admin_record
    assert chat_record.allows("chat") and not chat_record.allows("operator")
    assert admin_record.allows("operator") and admin_record.allows("chat")
    with pytest.raises(ValueError, match="scope"):
        store.create("typo", scope="root")  # type: ignore[arg-type]
    # a record written before keys had scopes: it keeps opening Mission Control, and no more
    raw = json.loads(path.read_text())
    del raw["keys"][0]["scope"]
    path.write_text(json.dumps(raw))
    legacy = KeyStore(path).identify(chat)
    assert legacy is not None and legacy.scope == "operator" and not legacy.allows("admin")
