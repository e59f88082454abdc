"""Classes that belong to their teacher: creating a class with its own PIN (stored as a
salted scrypt hash), opening it with that PIN, and the limits on wrong PINs.

A class's code is its teacher's short name for it and a random suffix (``7b-k3m9qx``),
so codes cannot be guessed; learners join by typing it (or following the teacher's link)
and can only add digits to a class that exists and is open (:mod:`.class_store` checks on
every save). Seeing a class's digits, exporting, importing and deleting need the class's
PIN. Wrong PINs are limited per client and per class (:class:`AccessConfig`), counted in
the database so every replica sees them: a thousand guesses take more than a day.

A class from before classes had PINs (schema version 3 migrates them) has none: it is
closed, its digits kept, until the deployment's teacher PIN opens it and sets its own.

This module never imports streamlit.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .class_engine import database_errors
from .class_schema import classes_table, failures_table
from .class_store import check_class_code, writing


@dataclass(frozen=True)
class AccessConfig:
    """Class PINs and how many wrong ones are tolerated."""

    min_pin_len: int = 6             # a class PIN: 6+ characters (10^6 guesses at least)
    max_pin_len: int = 64            # longer is refused unhashed
    scrypt_n: int = 2**14            # scrypt cost: ~40 ms and 16 MB per check
    scrypt_r: int = 8
    scrypt_p: int = 1
    salt_bytes: int = 16
    name_len: int = 9                # the teacher's part of a code; "-" and the suffix follow
    suffix_len: int = 6              # random characters: 31^6 = 887 million codes per name
    suffix_alphabet: str = "abcdefghjkmnpqrstuvwxyz23456789"   # no 0/o, 1/l/i to mix up
    window_s: float = 900.0          # wrong PINs count for this long
    client_failures: int = 5         # wrong PINs one client may type per window, all classes
    class_free_failures: int = 5     # wrong PINs for one class per window at full speed...
    class_spacing_s: float = 60.0    # ...then one try for that class per this many seconds,
                                     # whoever types it: 1,000 guesses take over 16 hours


ACCESS = AccessConfig()
OPEN, CLOSED = "open", "closed"      # a class with its own PIN; one from before PINs


@dataclass(frozen=True)
class Verdict:
    """What a typed PIN got: ``ok``, else a message for a person and, when refused
    unchecked for too many wrong PINs, how many seconds to wait."""

    ok: bool
    message: str = ""
    wait_s: float = 0.0


# ---------------------------------------------------------------------------------------
# PINs and codes
# ---------------------------------------------------------------------------------------

def check_new_pin(pin: str, cfg: AccessConfig = ACCESS) -> str:
    """``pin`` if it may be a class PIN; else ValueError saying what one is."""
    pin = pin or ""
    if not cfg.min_pin_len <= len(pin) <= cfg.max_pin_len or pin != pin.strip():
        raise ValueError(f"A class PIN is {cfg.min_pin_len}-{cfg.max_pin_len} characters "
                         f"(no spaces around it): keep it from the learners.")
    return pin


def hash_pin(pin: str, cfg: AccessConfig = ACCESS, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex) of ``pin``."""
    salt = salt if salt is not None else secrets.token_bytes(cfg.salt_bytes)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=cfg.scrypt_n, r=cfg.scrypt_r,
                            p=cfg.scrypt_p, dklen=32)
    return f"scrypt${cfg.scrypt_n}${cfg.scrypt_r}${cfg.scrypt_p}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str | None) -> bool:
    """Whether ``pin`` hashes to ``stored`` (:func:`hash_pin`), in constant time."""
    try:
        kind, n, r, p, salt, digest = (stored or "").split("$")
        if kind != "scrypt" or len(pin) > ACCESS.max_pin_len:
            return False
        got = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def new_class_code(name: str, cfg: AccessConfig = ACCESS) -> str:
    """``name`` (the teacher's: 1-9 of ``a-z 0-9 -``) and a random suffix: ``7b-k3m9qx``."""
    name = (name or "").strip().lower()
    if not name or len(name) > cfg.name_len or not all(
            c.isascii() and (c.isalnum() or c == "-") for c in name):
        raise ValueError(f"A class name is 1-{cfg.name_len} lower-case letters, digits or "
                         f"'-' (for example 7b or year-5).")
    suffix = "".join(secrets.choice(cfg.suffix_alphabet) for _ in range(cfg.suffix_len))
    return check_class_code(f"{name}-{suffix}")


# ---------------------------------------------------------------------------------------
# Classes
# ---------------------------------------------------------------------------------------

def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def _utc(at: datetime) -> datetime:
    """A time read back (SQLite gives naive UTC, PostgreSQL aware) as aware UTC."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at


def create_class(engine: Engine, code: str, pin: str, cfg: AccessConfig = ACCESS,
                 now: datetime | None = None) -> str:
    """Create class ``code`` with ``pin``; returns the code. ValueError for a bad code or
    PIN or a code already taken; ClassStoreError when the database fails."""
    code = check_class_code(code)
    row = {"code": code, "pin_hash": hash_pin(check_new_pin(pin, cfg), cfg),
           "created_at": _now(now)}
    with database_errors():
        with engine.begin() as conn:
            if conn.execute(sa.select(classes_table.c.code)
                            .where(classes_table.c.code == code)).first():
                raise ValueError(f"There is already a class {code}.")
            conn.execute(classes_table.insert(), [row])
    return code


def class_state(engine: Engine, code: str) -> str | None:
    """:data:`OPEN`, :data:`CLOSED` (from before PINs), or None: no such class."""
    code = check_class_code(code)
    with database_errors():
        with engine.connect() as conn:
            row = conn.execute(sa.select(classes_table.c.pin_hash)
                               .where(classes_table.c.code == code)).first()
    if row is None:
        return None
    return OPEN if row.pin_hash else CLOSED


def set_pin(engine: Engine, code: str, pin: str, cfg: AccessConfig = ACCESS) -> None:
    """Give class ``code`` a new PIN (a closed class opens). The caller has checked the
    current credential (:func:`unlock`)."""
    code = check_class_code(code)
    stored = hash_pin(check_new_pin(pin, cfg), cfg)
    with database_errors():
        with engine.begin() as conn:
            conn.execute(classes_table.update().where(classes_table.c.code == code)
                         .values(pin_hash=stored))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} seconds" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def unlock(engine: Engine, code: str, pin: str, client: str, cfg: AccessConfig = ACCESS,
           admin_pin: str | None = None, now: datetime | None = None) -> Verdict:
    """Check ``pin`` for class ``code``, typed by ``client`` (an address or a session id).

    Refused unchecked while ``client`` has typed ``client_failures`` wrong PINs within
    ``window_s``, or, once the class has had ``class_free_failures`` wrong ones within it,
    until ``class_spacing_s`` after its last. A closed class (from before PINs) opens with
    ``admin_pin``, the deployment's teacher PIN. Every wrong PIN is recorded.
    """
    code = check_class_code(code)
    now = _now(now)
    since = now - timedelta(seconds=cfg.window_s)
    f = failures_table
    client = (client or "unknown")[:64]
    # The attempt is recorded and the earlier ones counted in one transaction that holds
    # the table's write lock, so attempts typed at once (two tabs, a script) are counted one
    # after another and get no try beyond the limits. A refused or right PIN takes its row
    # back; a wrong one leaves it as the record of the failure.
    with database_errors():
        with writing(engine) as conn:
            if conn.dialect.name == "postgresql":   # SQLite's IMMEDIATE already serialises
                conn.exec_driver_sql(f"LOCK TABLE {f.name} IN SHARE ROW EXCLUSIVE MODE")
            mine_id = conn.execute(f.insert().values(class_code=code, client=client, at=now)
                                   ).inserted_primary_key[0]
            others = (f.c.id != mine_id) & (f.c.at > since)
            mine, oldest = conn.execute(sa.select(sa.func.count(), sa.func.min(f.c.at)).where(
                others & (f.c.client == client))).one()
            theirs, last = conn.execute(sa.select(sa.func.count(), sa.func.max(f.c.at)).where(
                others & (f.c.class_code == code))).one()
            row = conn.execute(sa.select(classes_table.c.pin_hash)
                               .where(classes_table.c.code == code)).first()
    refused = _refusal(cfg, now, code, mine, oldest, theirs, last)
    if refused is not None:
        _take_back(engine, mine_id)
        return refused
    if row is None:
        ok, problem = False, f"There is no class {code}."
    elif row.pin_hash:
        ok, problem = pin_matches(pin, row.pin_hash), f"That is not the PIN of class {code}."
    else:
        ok = bool(admin_pin) and hmac.compare_digest(pin.encode(), admin_pin.encode())
        problem = (f"Class {code} was made before classes had their own PIN: the deployment's "
                   f"teacher PIN opens it." if admin_pin else
                   f"Class {code} was made before classes had their own PIN, and this "
                   f"deployment has no teacher PIN to open it (set teacher_pin under "
                   f"[classroom] in the app's secrets).")
    if ok:
        _take_back(engine, mine_id)
        return Verdict(True)
    with database_errors():
        with engine.begin() as conn:
            conn.execute(f.delete().where(f.c.at < since))    # old ones no longer count
    return Verdict(False, problem)


def _refusal(cfg: AccessConfig, now: datetime, code: str, mine: int, oldest, theirs: int,
             last) -> Verdict | None:
    """The refusal for a client with ``mine`` wrong PINs in the window (the oldest at
    ``oldest``) at a class with ``theirs`` (the last at ``last``), or None: check it."""
    if mine >= cfg.client_failures:
        wait = (_utc(oldest) + timedelta(seconds=cfg.window_s) - now).total_seconds()
        return Verdict(False, f"Too many wrong PINs from here: try again in "
                              f"{_minutes(max(wait, 1))}.", max(wait, 1.0))
    if theirs >= cfg.class_free_failures:
        wait = (_utc(last) + timedelta(seconds=cfg.class_spacing_s) - now).total_seconds()
        if wait > 0:
            return Verdict(False, f"Class {code} has had too many wrong PINs lately: the next "
                                  f"try in {_minutes(max(wait, 1))}.", max(wait, 1.0))
    return None


def _take_back(engine: Engine, attempt_id: int) -> None:
    """Remove an attempt's row: it was refused unchecked, or its PIN was right."""
    with database_errors():
        with engine.begin() as conn:
            conn.execute(failures_table.delete().where(failures_table.c.id == attempt_id))


# ---------------------------------------------------------------------------------------
# Who is typing
# ---------------------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_FORWARDED_HOPS = 32      # X-Forwarded-For entries read from the right; more are a forgery


def trusted_networks(text: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> the proxies whose X-Forwarded-For is believed.
    ValueError names an entry that is neither an address nor a network."""
    nets = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"Trusted proxies: not an address or network: {entry[:40]!r}") from None
    return tuple(nets)


def _address(text: str | None):
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[Network, ...]) -> str | None:
    """Who typed a PIN, for the per-client limit: ``"ip:ADDRESS"``, or None if unknown.

    ``peer`` is the address the server sees; behind a proxy it is the proxy's, the same
    for every learner. Only when ``peer`` is a ``trusted`` proxy is ``forwarded_for``
    (``X-Forwarded-For``: client, proxy1, proxy2...) read, from the right, skipping our own
    proxies: the first other address is the client's (entries left of it could be forged).
    """
    here = _address(peer)
    if here is None:
        return None
    hops = (forwarded_for or "").split(",")[-MAX_FORWARDED_HOPS:]
    while any(here in net for net in trusted) and hops:
        hop = _address(hops.pop())
        if hop is None:
            break          # garbled: trust no further than the last good address
        here = hop
    return f"ip:{here}"[:64]
