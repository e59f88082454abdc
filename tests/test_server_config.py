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
    """The server sets glibc's mmap and trim thresholds (benchmarks/PHONE_PHOTOS.md)."""
    import platform

    from mnist_core.tuning import return_big_buffers, trim_malloc

    glibc = platform.libc_ver()[0] == "glibc"
    assert return_big_buffers() is glibc
    assert trim_malloc() is glibc


def test_process_tuning_lives_in_one_module():
    """mnist_core.tuning: one BLAS-thread limit for the server, the worker's environment
    and the benchmarks, and the worker's malloc settings."""
    import subprocess
    import sys

    from mnist_core import tuning

    env = tuning.worker_env()
    assert {env[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")} \
        == {str(tuning.BLAS_THREADS)}
    assert env["MALLOC_ARENA_MAX"] == "1" and int(env["MALLOC_MMAP_THRESHOLD_"]) == 32 << 20
    # In a fresh process, so this test session's BLAS is left as it was.
    code = ("import numpy; from mnist_core import tuning; tuning.limit_blas_threads(); "
            "print(tuning.blas_thread_count())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(REPO))
    assert out.stdout.strip() == str(tuning.BLAS_THREADS)
    before = tuning.blas_thread_count()
    with tuning.blas_threads(1):
        assert tuning.blas_thread_count() == 1
    assert tuning.blas_thread_count() == before
