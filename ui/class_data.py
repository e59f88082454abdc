"""The class's own digits, as the pages see them: the database connection, the class code,
the writer, the class's PIN and the "Wrong? It was a ..." button (issues #12, #25).

A class belongs to the teacher who made it (:mod:`mnist_core.classroom.class_access`):
learners join by its code and can only add digits; its dashboard, export, import, delete
and teaching need its PIN, typed once per session.

Storage is :mod:`mnist_core.classroom.class_store` (its tables
:mod:`~mnist_core.classroom.class_schema`, its engines and errors
:mod:`~mnist_core.classroom.class_engine`); this module only wires it to Streamlit. The engine
comes from ``st.connection("classroom", type="sql")``: the URL in ``.streamlit/secrets.toml``
``[connections.classroom]`` when there is one (PostgreSQL for several replicas, or for a
host whose disk is not persistent), else ``$MNIST_STUDIO_DB_URL``, else a URL the app
builds, quoting each part, from ``$MNIST_STUDIO_DB_HOST`` and its siblings
(deploy/compose.yaml sets them; ``class_engine.url_from_parts``), else a SQLite file at ``$MNIST_STUDIO_CLASS_DB`` or ``var/classroom.sqlite``. Every database failure is shown on the page that hit it, saying
what was not saved; the rest of the app never touches the database.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from sqlalchemy.engine import Engine

from mnist_core.classroom import class_access, class_engine, class_schema, class_store as cs

CONN_NAME = "classroom"                  # st.connection name and secrets section
DB_ENV = "MNIST_STUDIO_CLASS_DB"         # SQLite file path when no URL is configured
URL_ENV = "MNIST_STUDIO_DB_URL"          # a URL from the environment (deploy/compose.yaml)
PIN_ENV = "MNIST_STUDIO_TEACHER_PIN"     # the teacher PIN from the environment
PROXIES_ENV = "MNIST_STUDIO_TRUSTED_PROXIES"   # proxies whose X-Forwarded-For is believed
# The default: a proxy on the same machine (nginx beside the app). Docker's proxy is
# another container: deploy/compose.yaml names the private networks.
DEFAULT_PROXIES = "127.0.0.1, ::1"
DEFAULT_DB = Path(__file__).resolve().parent.parent / "var" / "classroom.sqlite"
CODE_KEY = "class_code"                  # session state: this session's class code
WRITER_KEY = "class_writer"              # session state: the writer id or nickname
SESSION_NS_KEY = "class_session_ns"      # session state: the browser key digit ids derive from
QUERY_PARAM = "class"                    # ?class=7b
WRITER_PARAM = "writer"                  # ?writer=Sam: the writer, kept across replicas
BROWSER_PARAM = "sid"                    # ?sid=...: the browser key digit ids derive from
BROWSER_KEY = re.compile(r"[0-9a-f]{16}")
UNLOCKED_KEY = "class_unlocked"          # session state: codes whose PIN this session typed
CLIENT_KEY = "class_client"              # session state: a random id when no address is known


@dataclass(frozen=True)
class ClassUIConfig:
    """What the class pages accept from a person."""

    max_query_len: int = 64          # a longer ?class= is refused unread
    max_pin_len: int = 64            # a longer typed PIN is refused unread


UI = ClassUIConfig()


# ---------------------------------------------------------------------------------------
# The database
# ---------------------------------------------------------------------------------------

def _secrets_section(name: str) -> dict:
    """``st.secrets[name]`` as a dict, or {} when there are no secrets at all."""
    try:
        return dict(st.secrets.get(name, {}) or {})
    except Exception:  # noqa: BLE001 - no secrets.toml: Streamlit raises on any access
        return {}


def _conn_section() -> dict:
    return dict(_secrets_section("connections").get(CONN_NAME, {}) or {})


def configured_url() -> str | None:
    """The URL from ``[connections.classroom]`` (``url``, or ``dialect``/``host``/...
    parts, which st.connection assembles), if secrets give one."""
    section = _conn_section()
    return (section.get("url") or (section.get("dialect") and "from-parts")
            or os.environ.get(URL_ENV) or class_engine.url_from_parts() or None)


def sqlite_path() -> Path:
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB).expanduser()


def is_sqlite() -> bool:
    return configured_url() is None


def where_stored() -> str:
    """One line for the page: which kind of database holds the class's digits, and what
    of a class is public."""
    if is_sqlite():
        where = ("Saved in a SQLite file on this server. On a host whose disk is not "
                 "persistent (Streamlit Community Cloud's is not) it is lost on restart: put a "
                 "hosted PostgreSQL URL in the app's secrets under [connections.classroom].")
    else:
        where = "Saved in the PostgreSQL database set in this app's secrets."
    return f"{where} {WHAT_IS_PUBLIC}"


WHAT_IS_PUBLIC = ("Who sees what: anyone who can open this app can start a class; anyone "
                  "with a class's code can add digits to it and see how many it has; its "
                  "digits, nicknames and scores are shown only with its teacher's PIN.")


@st.cache_resource(show_spinner=False)
def _migrated(url_key: str, _engine: Engine) -> int:
    # Once per database per server process; a failure is not cached, so the next rerun
    # tries again once the database is back.
    return class_schema.migrate(_engine)


def engine() -> Engine:
    """The class database, its schema created or upgraded; ClassStoreError if it fails."""
    url = configured_url()
    try:
        if url is None:
            url = class_engine.sqlite_url(sqlite_path())
        cfg = class_engine.config_from_env()     # the pool's size: a deployment's setting
        if url == "from-parts":
            dialect = str(_conn_section()["dialect"])
            conn = st.connection(CONN_NAME, type="sql",
                                 **class_engine.engine_kwargs(dialect, cfg))
        else:   # the URL passed on: it wins over secrets, and keys the cached connection
            conn = st.connection(CONN_NAME, type="sql", url=url,
                                 **class_engine.engine_kwargs(url, cfg))
        eng = class_engine.prepare_engine(conn.engine)
    except class_engine.ClassStoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bad URL, a missing driver, a folder we cannot create
        raise class_engine.classify(exc) from exc
    _migrated(str(eng.url), eng)
    return eng


def failure(exc: class_engine.ClassStoreError, not_saved: str | None = None) -> str:
    """What a database failure means for a person: what happened, what was not saved, and
    that the rest of the app still works."""
    lost = f" **Not saved:** {not_saved}." if not_saved else ""
    if exc.kind == "no-class":
        return f"{exc}{lost}"
    return (f"{exc}{lost} The other pages (Draw, Upload, ...) work without it; try again "
            f"in a moment.")


def show_error(exc: class_engine.ClassStoreError, not_saved: str | None = None) -> None:
    st.error(failure(exc, not_saved), icon=":material/database:")


def engine_or_stop(not_saved: str | None = None) -> Engine:
    """:func:`engine`, or the error on the page and the page stopped."""
    try:
        return engine()
    except class_engine.ClassStoreError as exc:
        show_error(exc, not_saved)
        st.stop()


# ---------------------------------------------------------------------------------------
# Who and which class
# ---------------------------------------------------------------------------------------

def _set_code_from_input(key: str) -> None:
    typed = st.session_state.get(key, "")
    try:
        st.session_state[CODE_KEY] = cs.check_class_code(typed)
        st.session_state.pop(f"{key}-error", None)
    except ValueError as exc:
        st.session_state[f"{key}-error"] = str(exc)


def current_class_code() -> str | None:
    """This session's class code: typed earlier, else ``?class=`` when it is valid."""
    code = st.session_state.get(CODE_KEY)
    if code:
        return code
    raw = st.query_params.get(QUERY_PARAM)
    if raw and len(raw) <= UI.max_query_len:
        try:
            st.session_state[CODE_KEY] = cs.check_class_code(raw)
        except ValueError:
            return None
        return st.session_state[CODE_KEY]
    return None


def class_state(code: str) -> str | None:
    """:data:`~mnist_core.classroom.class_access.OPEN`, ``CLOSED`` or None (no such class),
    looked up once per session and code; ClassStoreError when the database fails."""
    known = st.session_state.setdefault("class_states", {})
    if known.get(code) is None:
        known[code] = class_access.class_state(engine(), code)
    return known[code]


def class_code_picker(key: str, allow_closed: bool = False) -> str | None:
    """The class code box (pre-filled from ``?class=``); returns the code of a class that
    exists and is open (or closed, with ``allow_closed``: a class from before PINs, for its
    teacher), or None after saying what is wrong. The code goes into the URL so the page
    can be shared with the class."""
    code = _typed_class_code(key)
    if code is None:
        return None
    try:
        state = class_state(code)
    except class_engine.ClassStoreError as exc:
        # Unchecked, the code is still used: every save is checked again and says what
        # was not saved, so a learner can retry once the database is back.
        show_error(exc)
        return code
    if state is None:
        st.error(f"There is no class {code}. Check the code with your teacher (codes look "
                 f"like 7b-k3m9qx); teachers start a class on the Class dashboard.",
                 icon=":material/error:")
        return None
    if state == class_access.CLOSED and not allow_closed:
        st.error(f"Class {code} was made before classes had their own PIN and is closed "
                 f"until its teacher opens it on the Class dashboard.", icon=":material/lock:")
        return None
    return code


def _typed_class_code(key: str) -> str | None:
    """The code typed or in the address, if it is well formed."""
    raw = st.query_params.get(QUERY_PARAM)
    if raw and len(raw) > UI.max_query_len:
        st.error(f"The class code in the address is too long (at most "
                 f"{class_engine.DEFAULT.max_class_len} characters).", icon=":material/error:")
    elif raw and not st.session_state.get(CODE_KEY):
        try:
            cs.check_class_code(raw)
        except ValueError as exc:
            st.error(f"The address's ?class= is not a class code. {exc}", icon=":material/error:")
    code = current_class_code()
    if key not in st.session_state and code:
        st.session_state[key] = code
    st.text_input("Class code", key=key, max_chars=class_engine.DEFAULT.max_class_len,
                  placeholder="for example 7b", on_change=_set_code_from_input, args=(key,),
                  help="Keeps your class's digits apart from other classes'. Lower-case "
                       "letters, digits and '-'.", width=220)
    error = st.session_state.get(f"{key}-error")
    if error:
        st.error(error, icon=":material/error:")
        return None
    code = current_class_code()
    if code and st.query_params.get(QUERY_PARAM) != code:
        st.query_params[QUERY_PARAM] = code
    return code


def _from_address(name: str, check) -> str | None:
    """``?name=`` when ``check`` accepts it (returns it cleaned), else None."""
    raw = st.query_params.get(name)
    if not raw or len(raw) > UI.max_query_len:
        return None
    try:
        return check(raw)
    except ValueError:
        return None


def _check_browser_key(raw: str) -> str:
    if not BROWSER_KEY.fullmatch(raw):
        raise ValueError("not a browser key")
    return raw


def browser_key() -> str:
    """A random key for this browser tab's learner (16 hex digits): the digit ids of its
    saves derive from it. Kept in the session and in the address (``?sid=``), so a reload
    or a reconnection to another replica keeps it, and a save retried there gets the same
    id (stored once)."""
    if SESSION_NS_KEY not in st.session_state:
        st.session_state[SESSION_NS_KEY] = (_from_address(BROWSER_PARAM, _check_browser_key)
                                            or uuid.uuid4().hex[:16])
    return st.session_state[SESSION_NS_KEY]


def writer_id() -> str:
    """This learner's writer: a nickname if one was typed, else a random id; kept in the
    session and read back from the address (``?writer=``) in a new one."""
    if WRITER_KEY not in st.session_state:
        st.session_state[WRITER_KEY] = (_from_address(WRITER_PARAM, cs.check_writer)
                                        or cs.new_writer_id())
    return st.session_state[WRITER_KEY]


def keep_in_address(**params: object) -> None:
    """Put this learner's writer, browser key and ``params`` in the address (only what
    changed: each change is a message to the browser), where a reload or another replica
    finds them."""
    want = {WRITER_PARAM: writer_id(), BROWSER_PARAM: browser_key(),
            **{k: str(v) for k, v in params.items()}}
    changed = {k: v for k, v in want.items() if st.query_params.get(k) != v}
    if changed:
        st.query_params.update(changed)


ROUND_PARAM = "round"                    # ?round=12: Collect's prompt number
MAX_ROUND = 100_000                       # a larger ?round= is read as 0


def int_from_address(name: str) -> int | None:
    """``?name=`` as a whole number up to :data:`MAX_ROUND`, else None."""
    raw = st.query_params.get(name, "")
    return int(raw) if raw.isdigit() and len(raw) <= 6 and int(raw) <= MAX_ROUND else None


def round_from_address() -> int:
    """Collect's prompt number from ``?round=`` (0 when absent or not a number)."""
    return int_from_address(ROUND_PARAM) or 0


def _set_nickname(key: str) -> None:
    typed = st.session_state.get(key, "").strip()
    if not typed:
        st.session_state.pop(f"{key}-error", None)
        return
    try:
        st.session_state[WRITER_KEY] = cs.check_writer(typed)
        st.session_state.pop(f"{key}-error", None)
    except ValueError as exc:
        st.session_state[f"{key}-error"] = str(exc)


def writer_picker(key: str) -> str:
    """An optional nickname box (showing the nickname a reload or another replica found in
    the address); returns the writer id in use."""
    current = writer_id()
    if key not in st.session_state and not current.startswith("w-"):
        st.session_state[key] = current
    st.text_input("Nickname (optional)", key=key, max_chars=class_engine.DEFAULT.max_writer_len,
                  placeholder=current, on_change=_set_nickname, args=(key,), width=220,
                  help="Only to tell your digits apart on the dashboard; no real names "
                       "needed. Without one you are " + current + ".")
    if st.session_state.get(f"{key}-error"):
        st.error(st.session_state[f"{key}-error"], icon=":material/error:")
    return writer_id()


def digit_id(*parts: object) -> str:
    """A digit id derived from this learner's :func:`browser_key` and ``parts``: the same
    input saved again (a retry, a double click, a save repeated on another replica after a
    failover) gets the same id, so it is stored once."""
    space = uuid.uuid5(uuid.NAMESPACE_OID, "mnist-studio:" + browser_key())
    return str(uuid.uuid5(space, ":".join(map(str, parts))))


# ---------------------------------------------------------------------------------------
# Saves in flight when the server stops
# ---------------------------------------------------------------------------------------

class SavesInFlight:
    """Counts saves running in this process, so that a server told to stop (SIGTERM:
    deploy/serve.py) lets them commit before it exits: Streamlit's script threads are
    daemons, and would otherwise die mid-save at exit."""

    def __init__(self):
        self._n = 0
        self._cond = threading.Condition()

    def __enter__(self):
        with self._cond:
            self._n += 1
        return self

    def __exit__(self, *exc):
        with self._cond:
            self._n -= 1
            self._cond.notify_all()
        return False

    @property
    def count(self) -> int:
        return self._n

    def wait(self, timeout_s: float) -> bool:
        """Wait until none is running (at most ``timeout_s``); True if none is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._n == 0, timeout=timeout_s)


SAVES = SavesInFlight()
EXIT_WAIT_S = 10.0      # at exit, how long a save in flight may still take to commit
atexit.register(SAVES.wait, EXIT_WAIT_S)


def save_digit(digit: cs.Digit) -> bool:
    """:func:`cs.save_digit` into :func:`engine`, counted in :data:`SAVES`."""
    with SAVES:
        return cs.save_digit(engine(), digit)


# ---------------------------------------------------------------------------------------
# Teacher PIN
# ---------------------------------------------------------------------------------------

def teacher_pin() -> str | None:
    """The deployment's teacher PIN, ``[classroom] teacher_pin`` from secrets, else
    ``$MNIST_STUDIO_TEACHER_PIN``: it opens only classes from before classes had their own
    PIN, so their teacher can set one."""
    pin = _secrets_section(CONN_NAME).get("teacher_pin") or os.environ.get(PIN_ENV)
    return str(pin) if pin else None


def trusted_proxies() -> tuple:
    """The proxies whose ``X-Forwarded-For`` names the client: ``[classroom]
    trusted_proxies`` in secrets, else ``$MNIST_STUDIO_TRUSTED_PROXIES``, else loopback.
    A list that does not parse trusts none (and says so in the server log)."""
    text = (_secrets_section(CONN_NAME).get("trusted_proxies")
            or os.environ.get(PROXIES_ENV) or DEFAULT_PROXIES)
    try:
        return class_access.trusted_networks(str(text))
    except ValueError as exc:
        print(f"{PROXIES_ENV}: {exc}; no proxy is trusted", flush=True)
        return ()


def client_id() -> str:
    """Who is typing a PIN, for the limits on wrong ones: the client's address (behind a
    trusted proxy, the one it forwards; a school's one public address is still shared by
    everyone there), else a random id for this session."""
    try:
        peer = st.context.ip_address
        forwarded = st.context.headers.get("X-Forwarded-For")
    except Exception:  # noqa: BLE001 - no request context (a test, a script)
        peer = forwarded = None
    address = class_access.client_address(peer, forwarded, trusted_proxies())
    if address:
        return address
    return st.session_state.setdefault(CLIENT_KEY, "session:" + uuid.uuid4().hex[:16])


def _unlocked() -> set:
    return st.session_state.setdefault(UNLOCKED_KEY, set())


def _try_pin(key: str, code: str) -> None:
    """The PIN box's callback: checked once per typed PIN (a rerun checks nothing again),
    the box emptied, the verdict kept for the page."""
    typed = st.session_state.get(key) or ""
    st.session_state[key] = ""
    if not typed:
        return
    try:
        verdict = class_access.unlock(engine(), code, typed, client_id(), admin_pin=teacher_pin())
    except class_engine.ClassStoreError as exc:
        st.session_state[f"{key}-message"] = failure(exc)
        return
    if verdict.ok:
        _unlocked().add(code)
        st.session_state.pop(f"{key}-message", None)
    else:
        st.session_state[f"{key}-message"] = verdict.message


def class_unlocked(key: str, code: str) -> bool:
    """True once this session has typed class ``code``'s PIN; else a PIN box (and what the
    last PIN typed got) and False."""
    if code in _unlocked():
        return True
    st.text_input(f"PIN of class {code}", type="password", key=key, max_chars=UI.max_pin_len,
                  on_change=_try_pin, args=(key, code), width=260,
                  help="The PIN the teacher chose when starting the class. Wrong PINs are "
                       "limited: a few, then one a minute.")
    message = st.session_state.get(f"{key}-message")
    if message:
        st.error(message, icon=":material/lock:")
    return False


def _new_pin(key: str) -> str | None:
    """A new PIN typed twice; None (after saying why) unless both agree and it is valid."""
    pin = st.text_input("PIN (6 or more characters; keep it from the learners)",
                        type="password", key=f"{key}-pin", max_chars=UI.max_pin_len, width=260)
    again = st.text_input("The PIN again", type="password", key=f"{key}-again",
                          max_chars=UI.max_pin_len, width=260)
    if not pin:
        return None
    if pin != again:
        st.error("The two PINs differ.", icon=":material/error:")
        return None
    try:
        return class_access.check_new_pin(pin)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


def new_class_form(key: str, code_key: str) -> None:
    """Start a class: its name, its PIN twice; the new code (name and a random suffix)
    becomes this session's class, opened, and ``code_key`` (the page's class box) shows it.
    Call before that box is drawn."""
    name = st.text_input("Class name", key=f"{key}-name", max_chars=class_access.ACCESS.name_len,
                         placeholder="for example 7b", width=260,
                         help="Yours to recognise it; a random part is added so that nobody "
                              "can guess the code.")
    pin = _new_pin(key)
    if not st.button("Start the class", key=f"{key}-go", icon=":material/add:",
                     disabled=not (name and pin)):
        return
    try:
        code = class_access.create_class(engine(), class_access.new_class_code(name), pin)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    except class_engine.ClassStoreError as exc:
        show_error(exc, "the new class")
        return
    _unlocked().add(code)
    st.session_state.setdefault("class_states", {})[code] = class_access.OPEN
    st.session_state[CODE_KEY] = st.session_state[code_key] = code
    st.session_state["class_started"] = code
    st.query_params[QUERY_PARAM] = code


def started_note() -> None:
    """After :func:`new_class_form`: the code to hand out, once."""
    code = st.session_state.pop("class_started", None)
    if code:
        st.success(f"Class **{code}** started. Learners join with this code (or this page's "
                   f"address, which holds it); its dashboard needs your PIN.",
                   icon=":material/check:")


def set_pin_form(key: str, code: str) -> bool:
    """For a class from before PINs, opened with the deployment's PIN: set its own.
    True once it has one."""
    if class_state(code) == class_access.OPEN:
        return True
    st.warning(f"Class {code} was made before classes had their own PIN. Set one to open it "
               f"again for its learners.", icon=":material/lock:")
    pin = _new_pin(key)
    if pin and st.button("Set the class PIN", key=f"{key}-go"):
        try:
            class_access.set_pin(engine(), code, pin)
        except class_engine.ClassStoreError as exc:
            show_error(exc, "the new PIN")
            return False
        st.session_state.setdefault("class_states", {})[code] = class_access.OPEN
        st.rerun()
    return False


# ---------------------------------------------------------------------------------------
# Pen strokes
# ---------------------------------------------------------------------------------------

def canvas_strokes(canvas_key: str) -> str | None:
    """The canvas's own JSON (Fabric.js objects: small, lossless, re-renderable), as the
    drawable-canvas component keeps it in session state under its key; None if absent."""
    value = st.session_state.get(canvas_key)
    try:
        raw = value["drawing"]["raw"]  # type: ignore[index]
    except (TypeError, KeyError):
        return None
    if not raw:
        return None
    text = json.dumps(raw, separators=(",", ":"))
    return text if len(text) <= class_engine.DEFAULT.max_strokes_bytes else None


# ---------------------------------------------------------------------------------------
# "Wrong? It was a ..."
# ---------------------------------------------------------------------------------------

def _answers(probs: Mapping[str, np.ndarray]) -> dict[str, int]:
    return {name: int(np.asarray(p).argmax()) for name, p in probs.items()}


def _save_flag(widget: str, x: np.ndarray, answers: dict[str, int], source: str,
               strokes: str | None, digest: str) -> None:
    label = st.session_state.get(widget)
    if label is None:
        return
    code = current_class_code()
    result_key = f"{widget}-result"
    if code is None:
        st.session_state[result_key] = ("warning", "Type your class code above first, then "
                                        "pick the digit again.")
        st.session_state[widget] = None
        return
    digit = cs.Digit(digit_id("flag", digest, label), code, writer_id(), int(label), source,
                     x, answers, strokes)
    try:
        save_digit(digit)
    except class_engine.ClassStoreError as exc:
        st.session_state[result_key] = ("error", failure(
            exc, f"this digit as a {label} (pick it again to retry)"))
        st.session_state[widget] = None
        return
    st.session_state[result_key] = ("success", f"Saved as a {label} for class {code}. "
                                    f"Thank you: the dashboard counts it.")


def flag_wrong(x: np.ndarray, probs: Mapping[str, np.ndarray], class_names: Sequence[str],
               *, source: str, key: str, strokes: str | None = None) -> None:
    """One click under the answers: "Wrong? It was a ..." saves ``x`` (``(28, 28) float32
    in [0, 1]``, the model input) with the corrected label, each model's answer and
    ``source`` (``flag-draw`` or ``flag-upload``) for the class. A new input gets a fresh
    button; saving the same input with the same label twice stores it once."""
    digest = hashlib.sha256(np.ascontiguousarray(x, np.float32).tobytes()).hexdigest()[:16]
    widget = f"flag-{key}-{digest}"
    if current_class_code() is None:   # no class yet: one button, opened on demand
        box = st.popover("Wrong? Save the right digit for your class", icon=":material/flag:")
        with box:
            class_code_picker(f"flag-class-{key}")
    else:
        box = st.container()
    box.pills("Wrong? It was a …", options=list(range(10)),
              format_func=lambda d: class_names[d], key=widget, on_change=_save_flag,
              args=(widget, x, _answers(probs), source, strokes, digest),
              help="Saves this digit with the right label for your class's dashboard.")
    result = st.session_state.get(f"{widget}-result")
    if result:
        kind, message = result
        getattr(box, kind)(message, icon={"success": ":material/check:",
                                         "warning": ":material/info:",
                                         "error": ":material/database:"}[kind])
