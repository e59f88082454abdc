"""The Streamlit settings a hosted server needs (.streamlit/config.toml, issue #14)."""

from __future__ import annotations

import tomllib

from conftest import REPO

from mnist_core.preprocess import MAX_BYTES


def settings() -> dict:
    return tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())


def test_no_file_watcher_and_no_rerun_on_save():
    # With the watcher on, one open tab kept a core busy and flooded the log (see the file).
    server = settings()["server"]
    assert server["fileWatcherType"] == "none" and server["runOnSave"] is False
    assert server["headless"] is True


def test_users_see_no_error_details_and_no_usage_stats_are_sent():
    config = settings()
    assert config["client"]["showErrorDetails"] == "none"
    assert config["client"]["showErrorLinks"] is False
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["enableXsrfProtection"] is True


def test_upload_limit_matches_decode_image():
    assert settings()["server"]["maxUploadSize"] * 2**20 == MAX_BYTES


def test_streamlit_reads_every_setting_as_written(monkeypatch):
    from streamlit import config

    monkeypatch.chdir(REPO)  # Streamlit reads ./.streamlit/config.toml
    monkeypatch.delenv("STREAMLIT_CLIENT_SHOW_ERROR_DETAILS", raising=False)  # conftest's
    config.get_config_options(force_reparse=True)
    for section, values in settings().items():
        if section == "theme":
            continue
        for key, value in values.items():
            assert config.get_option(f"{section}.{key}") == value, (section, key)


def test_the_server_hands_big_freed_buffers_back():
    """ui.data sets glibc's mmap and trim thresholds (benchmarks/PHONE_PHOTOS.md)."""
    import platform

    from ui.data import return_big_buffers

    assert return_big_buffers() is (platform.libc_ver()[0] == "glibc")
