"""The class's own digits, as the pages see them: the database connection, the class code,
the writer, the teacher PIN and the "Wrong? It was a ..." button (issue #12).

Storage is :mod:`mnist_core.classroom.class_store` (its tables
:mod:`~mnist_core.classroom.class_schema`, its engines and errors
:mod:`~mnist_core.classroom.class_engine`); this module only wires it to Streamlit. The engine
comes from ``st.connection("classroom", type="sql")``: the URL in ``.streamlit/secrets.toml``
``[connections.classroom]`` when there is one (PostgreSQL for several replicas, or for a
host whose disk is not persistent), else ``$MNIST_STUDIO_DB_URL`` (deploy/compose.yaml sets
it), else a SQLite file at ``$MNIST_STUDIO_CLASS_DB`` or ``var/classroom.sqlite``. Every database failure is shown on the page that hit it, saying
what was not saved; the rest of the app never touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from sqlalchemy.engine import Engine

from mnist_core.classroom import class_engine, class_schema, class_store as cs

CONN_NAME = "classroom"                  # st.connection name and secrets section
DB_ENV = "MNIST_STUDIO_CLASS_DB"         # SQLite file path when no URL is configured
URL_ENV = "MNIST_STUDIO_DB_URL"          # a URL from the environment (deploy/compose.yaml)
PIN_ENV = "MNIST_STUDIO_TEACHER_PIN"     # the teacher PIN from the environment
DEFAULT_DB = Path(__file__).resolve().parent.parent / "var" / "classroom.sqlite"
CODE_KEY = "class_code"                  # session state: this session's class code
WRITER_KEY = "class_writer"              # session state: the writer id or nickname
SESSION_NS_KEY = "class_session_ns"      # session state: namespace for derived digit ids
QUERY_PARAM = "class"                    # ?class=7b


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
            or os.environ.get(URL_ENV) or None)


def sqlite_path() -> Path:
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB).expanduser()


def is_sqlite() -> bool:
    return configured_url() is None


def where_stored() -> str:
    """One line for the page: which kind of database holds the class's digits."""
    if is_sqlite():
        return ("Saved in a SQLite file on this server. On a host whose disk is not "
                "persistent (Streamlit Community Cloud's is not) it is lost on restart: put a "
                "hosted PostgreSQL URL in the app's secrets under [connections.classroom].")
    return "Saved in the PostgreSQL database set in this app's secrets."


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
        if url == "from-parts":
            dialect = str(_conn_section()["dialect"])
            conn = st.connection(CONN_NAME, type="sql", **class_engine.engine_kwargs(dialect))
        else:   # the URL passed on: it wins over secrets, and keys the cached connection
            conn = st.connection(CONN_NAME, type="sql", url=url, **class_engine.engine_kwargs(url))
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


def class_code_picker(key: str) -> str | None:
    """The class code box (pre-filled from ``?class=``); returns the valid code or None,
    after saying what is wrong with the typed one. The code goes into the URL so the page
    can be shared with the class."""
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


def writer_id() -> str:
    """This browser session's writer: a nickname if one was typed, else a random id."""
    if WRITER_KEY not in st.session_state:
        st.session_state[WRITER_KEY] = cs.new_writer_id()
    return st.session_state[WRITER_KEY]


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
    """An optional nickname box; returns the writer id in use."""
    current = writer_id()
    st.text_input("Nickname (optional)", key=key, max_chars=class_engine.DEFAULT.max_writer_len,
                  placeholder=current, on_change=_set_nickname, args=(key,), width=220,
                  help="Only to tell your digits apart on the dashboard; no real names "
                       "needed. Without one you are " + current + ".")
    if st.session_state.get(f"{key}-error"):
        st.error(st.session_state[f"{key}-error"], icon=":material/error:")
    return writer_id()


def digit_id(*parts: object) -> str:
    """A digit id derived from this session and ``parts``: the same input saved again
    (a retry, a double click) gets the same id, so it is stored once."""
    if SESSION_NS_KEY not in st.session_state:
        st.session_state[SESSION_NS_KEY] = str(uuid.uuid4())
    return str(uuid.uuid5(uuid.UUID(st.session_state[SESSION_NS_KEY]),
                          ":".join(map(str, parts))))


# ---------------------------------------------------------------------------------------
# Teacher PIN
# ---------------------------------------------------------------------------------------

def teacher_pin() -> str | None:
    """``[classroom] teacher_pin`` from secrets, else ``$MNIST_STUDIO_TEACHER_PIN``."""
    pin = _secrets_section(CONN_NAME).get("teacher_pin") or os.environ.get(PIN_ENV)
    return str(pin) if pin else None


def teacher_unlocked(key: str) -> bool:
    """A PIN box; True once the typed PIN matches. Without a PIN in secrets, says that the
    teacher's actions are off and how to turn them on, and returns False."""
    pin = teacher_pin()
    if pin is None:
        st.info("Downloading all of the class's digits, importing and deleting need a teacher "
                "PIN, and none is set. Put `teacher_pin = \"...\"` under `[classroom]` in "
                "`.streamlit/secrets.toml` (on Streamlit Community Cloud: Settings → "
                "Secrets).", icon=":material/lock:")
        return False
    typed = st.text_input("Teacher PIN", type="password", key=key, max_chars=UI.max_pin_len,
                          width=220)
    if not typed:
        return False
    if hmac.compare_digest(typed.encode(), pin.encode()):
        return True
    st.error("That is not the teacher PIN.", icon=":material/lock:")
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
        cs.save_digit(engine(), digit)
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
