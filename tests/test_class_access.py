"""Classes that belong to their teacher (mnist_core.classroom.class_access) on SQLite and
PostgreSQL: PINs stored hashed, codes not guessable, wrong PINs limited per client and per
class (1,000 guesses take longer than a school day), and a SQLite file deleted or replaced
while the app runs refused rather than written into."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from class_db import CHEAP, open_classes, pin_of, store_engine, store_url  # noqa: F401
from mnist_core.classroom import class_access as ca, class_engine, class_schema, class_store as cs

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


def digit(code="7b", label=3) -> cs.Digit:
    return cs.Digit(cs.new_digit_id(), code, "ana", label, "collect",
                    np.full((28, 28), 7, np.uint8))


def test_a_pin_is_stored_salted_and_hashed(store_engine):
    ca.create_class(store_engine, "9z", "same-pin", CHEAP)
    ca.create_class(store_engine, "9y", "same-pin", CHEAP)
    with store_engine.connect() as conn:
        stored = dict(conn.execute(sa.select(class_schema.classes_table.c.code,
                                             class_schema.classes_table.c.pin_hash)).all())
    assert stored["9z"] != stored["9y"]                       # a salt each
    assert all("same-pin" not in h and h.startswith("scrypt$") for h in stored.values())
    assert ca.pin_matches("same-pin", stored["9z"]) and not ca.pin_matches("same-pim", stored["9z"])
    assert not ca.pin_matches("same-pin", "md5$garbage")


@pytest.mark.parametrize("pin", ["", "12345", " 123456", "x" * 65])
def test_a_weak_or_odd_pin_is_refused(store_engine, pin):
    with pytest.raises(ValueError, match="A class PIN is 6-64 characters"):
        ca.create_class(store_engine, "9z", pin, CHEAP)
    assert ca.class_state(store_engine, "9z") is None


def test_a_taken_code_is_refused(store_engine):
    with pytest.raises(ValueError, match="already a class 7b"):
        ca.create_class(store_engine, "7b", "another-pin", CHEAP)
    assert ca.unlock(store_engine, "7b", pin_of("7b"), "me", CHEAP).ok   # the first kept


@pytest.mark.parametrize("name", ["", "x" * 10, "7B!", "é", "a b"])
def test_a_bad_class_name_says_what_one_is(name):
    with pytest.raises(ValueError, match="A class name is 1-9"):
        ca.new_class_code(name)


def test_codes_carry_a_random_suffix():
    codes = {ca.new_class_code("7b") for _ in range(50)}
    assert len(codes) == 50
    assert all(re.fullmatch(r"7b-[a-z2-9]{6}", c) and cs.check_class_code(c) == c for c in codes)


def test_digits_go_only_into_an_open_class(store_engine):
    with pytest.raises(class_engine.ClassStoreError, match="no open class 9z") as info:
        cs.save_digit(store_engine, digit("9z"))
    assert info.value.kind == "no-class" and len(cs.load_class(store_engine, "9z")) == 0
    assert cs.save_digit(store_engine, digit("7b"))


def test_one_client_gets_five_wrong_pins_per_window(store_engine):
    for k in range(5):
        v = ca.unlock(store_engine, "7b" if k % 2 else "8a", "wrong-pin", "kid", CHEAP, now=T0)
        assert not v.ok and "not the PIN" in v.message and v.wait_s == 0
    right = ca.unlock(store_engine, "8a", pin_of("8a"), "kid", CHEAP, now=T0)
    assert not right.ok and "Too many wrong PINs from here" in right.message
    assert right.wait_s == pytest.approx(CHEAP.window_s)      # refused unchecked
    later = T0 + timedelta(seconds=CHEAP.window_s + 1)
    assert ca.unlock(store_engine, "8a", pin_of("8a"), "kid", CHEAP, now=later).ok
    assert ca.unlock(store_engine, "8a", pin_of("8a"), "teacher", CHEAP, now=T0).ok


def test_a_class_slows_down_after_five_wrong_pins_and_its_teacher_waits_a_minute(store_engine):
    for k in range(5):
        assert not ca.unlock(store_engine, "7b", "wrong-pin", f"kid{k}", CHEAP, now=T0).ok
    v = ca.unlock(store_engine, "7b", pin_of("7b"), "teacher", CHEAP, now=T0)
    assert not v.ok and "Class 7b has had too many wrong PINs" in v.message
    assert 0 < v.wait_s <= CHEAP.class_spacing_s
    assert ca.unlock(store_engine, "8a", pin_of("8a"), "teacher", CHEAP, now=T0).ok  # others not
    assert ca.unlock(store_engine, "7b", pin_of("7b"), "teacher", CHEAP,
                     now=T0 + timedelta(seconds=v.wait_s)).ok


GUESSES = 200   # enough to show the steady rate; 1,000 at that rate take over 16 hours


def test_guesses_come_one_a_minute_so_a_thousand_take_over_16_hours(store_engine):
    """Every guess from a new client (no per-client limit helps): the guesser waits as
    told and guesses again; the clock is simulated. After the first few, one guess a
    minute: GUESSES take (GUESSES - 5) minutes or more, 1,000 over 16 hours."""
    now, checked, k = T0, 0, 0
    while checked < GUESSES:
        k += 1
        v = ca.unlock(store_engine, "7b", f"guess-{k:06d}", f"bot{k}", CHEAP, now=now)
        assert not v.ok
        if v.wait_s:
            now += timedelta(seconds=v.wait_s)
        else:
            checked += 1
    free, spacing = CHEAP.class_free_failures, CHEAP.class_spacing_s
    assert now - T0 >= timedelta(seconds=(GUESSES - free - 1) * spacing)
    assert (1000 - free - 1) * spacing > 16 * 3600     # the same rate, 1,000 guesses


def test_an_unknown_class_counts_as_a_wrong_guess(store_engine):
    for k in range(5):
        v = ca.unlock(store_engine, f"guess-{k}", "123456", "prober", CHEAP, now=T0)
        assert not v.ok and "There is no class" in v.message
    assert "Too many" in ca.unlock(store_engine, "7b", pin_of("7b"), "prober", CHEAP,
                                   now=T0).message


# -- simultaneous PINs: no extra tries -----------------------------------------------------

RACERS = 8
# scrypt as costly as the app's, so the racers' checks overlap as real ones do
RACE_COST = ca.AccessConfig(scrypt_n=2**12)


def _race(engine, calls) -> list[ca.Verdict]:
    """Run ``calls`` (functions returning a Verdict) at the same moment, one thread each."""
    import threading
    start, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(k):
        start.wait()
        out[k] = calls[k]()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(v is not None for v in out), "a racer did not finish"
    return out


def _checked(verdicts) -> int:
    """How many of ``verdicts`` had their PIN checked (not refused for too many)."""
    return sum(1 for v in verdicts if not v.wait_s)


def test_simultaneous_wrong_pins_from_one_client_get_no_extra_try(store_engine):
    """With one try left, RACERS wrong PINs typed at once (two tabs, a script) get one
    check between them, not one each."""
    for k in range(RACE_COST.client_failures - 1):
        assert not ca.unlock(store_engine, "8a", f"wrong-{k}-pin", "kid", RACE_COST, now=T0).ok
    verdicts = _race(store_engine, [
        (lambda k=k: ca.unlock(store_engine, "7b", f"race-{k}-pin", "kid", RACE_COST, now=T0))
        for k in range(RACERS)])
    assert _checked(verdicts) == 1, [v.message for v in verdicts]
    assert all("Too many wrong PINs from here" in v.message for v in verdicts if v.wait_s)


def test_simultaneous_guesses_at_a_spaced_class_get_one_try(store_engine):
    """A class past its free wrong PINs takes one try a minute, even when RACERS clients
    guess in the same instant."""
    for k in range(RACE_COST.class_free_failures):
        assert not ca.unlock(store_engine, "7b", f"wrong-{k}-pin", f"bot{k}", RACE_COST, now=T0).ok
    later = T0 + timedelta(seconds=RACE_COST.class_spacing_s + 1)
    verdicts = _race(store_engine, [
        (lambda k=k: ca.unlock(store_engine, "7b", f"race-{k}-pin", f"racer{k}", RACE_COST,
                               now=later)) for k in range(RACERS)])
    assert _checked(verdicts) == 1, [v.message for v in verdicts]


def test_a_right_pin_is_not_counted_as_a_wrong_one(store_engine):
    for _ in range(RACE_COST.client_failures + 2):
        assert ca.unlock(store_engine, "7b", pin_of("7b"), "teacher", RACE_COST, now=T0).ok
    with store_engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count())
                            .select_from(class_schema.failures_table)).scalar() == 0


# -- who is typing: the address behind a trusted proxy ---------------------------------------

TRUSTED = ca.trusted_networks("127.0.0.1, 10.0.0.0/8")


@pytest.mark.parametrize("peer, forwarded, expected", [
    ("203.0.113.7", None, "ip:203.0.113.7"),                 # no proxy: the peer itself
    ("203.0.113.7", "198.51.100.1", "ip:203.0.113.7"),       # an untrusted peer's header is ignored
    ("127.0.0.1", "198.51.100.1", "ip:198.51.100.1"),        # nginx on the same host
    ("10.1.2.3", "198.51.100.1, 10.9.9.9", "ip:198.51.100.1"),   # two proxies of ours
    ("127.0.0.1", "6.6.6.6, 198.51.100.1", "ip:198.51.100.1"),   # a forged first hop is skipped
    ("127.0.0.1", None, "ip:127.0.0.1"),                     # a trusted peer, no header
    ("127.0.0.1", "not-an-address", "ip:127.0.0.1"),         # a garbled header: the peer
    ("127.0.0.1", ", ".join(["1.1.1.1"] * 200), "ip:1.1.1.1"),        # a huge header: bounded
    (None, None, None),
])
def test_the_client_is_the_first_address_not_of_a_trusted_proxy(peer, forwarded, expected):
    assert ca.client_address(peer, forwarded, TRUSTED) == expected


def test_behind_a_trusted_proxy_each_client_has_its_own_count(store_engine):
    """Behind nginx every request comes from 127.0.0.1: without trusting its
    X-Forwarded-For one learner's wrong PINs would lock the whole school out."""
    guesser = ca.client_address("127.0.0.1", "198.51.100.1", TRUSTED)
    teacher = ca.client_address("127.0.0.1", "198.51.100.2", TRUSTED)
    for k in range(CHEAP.client_failures):
        assert not ca.unlock(store_engine, "8a", f"wrong-{k}-pin", guesser, CHEAP, now=T0).ok
    assert "Too many" in ca.unlock(store_engine, "7b", pin_of("7b"), guesser, CHEAP, now=T0).message
    assert ca.unlock(store_engine, "7b", pin_of("7b"), teacher, CHEAP, now=T0).ok


@pytest.mark.parametrize("text", ["", "127.0.0.1", "10.0.0.0/8, ::1", " 192.168.0.0/16 "])
def test_trusted_proxies_are_read_from_a_list(text):
    nets = ca.trusted_networks(text)
    assert len(nets) == len([t for t in text.split(",") if t.strip()])


def test_a_bad_trusted_proxy_entry_says_which():
    with pytest.raises(ValueError, match="not an address or network: 'nginx'"):
        ca.trusted_networks("127.0.0.1, nginx")


# -- a SQLite file deleted or replaced while the app runs ----------------------------------

@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_vanished_sqlite_file_is_said_and_nothing_acknowledged(tmp_path, how):
    path = tmp_path / "c.sqlite"
    engine = class_engine.make_engine(class_engine.sqlite_url(path))
    class_schema.migrate(engine)
    open_classes(engine, ("7b",))
    assert cs.save_digit(engine, digit())
    path.unlink()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"c.sqlite{extra}").unlink(missing_ok=True)
    if how == "replaced":
        path.write_bytes(b"")
    for _ in range(2):                          # the next saves, and a retry, all refused
        with pytest.raises(class_engine.ClassStoreError, match="deleted or replaced") as info:
            cs.save_digit(engine, digit())
        assert info.value.kind == "vanished"
    engine.dispose()   # a fresh connection opens a new, empty file (its inode maybe reused)
    with pytest.raises(class_engine.ClassStoreError, match="replaced") as info:
        cs.save_digit(engine, digit())
    assert info.value.kind in ("vanished", "schema")


@pytest.mark.parametrize("text, kind, words", [
    ("disk I/O error", "disk", "disk I/O error"),
    ("file is not a database", "damaged", "damaged"),
    ("no such table: class_digits", "schema", "missing its tables"),
    ("attempt to write a readonly database", "read-only", "read-only"),
    ("database or disk is full", "full", "full"),
    ("something odd at /srv/app/var/classroom.sqlite", "error", "unexpected error"),
])
def test_every_database_error_names_its_kind(text, kind, words):
    err = class_engine.classify(sa.exc.OperationalError("INSERT", {}, Exception(text)))
    assert err.kind == kind and words in str(err)
    assert "OperationalError" not in str(err) and "/srv" not in str(err)
