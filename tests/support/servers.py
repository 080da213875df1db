"""Processes the tests talk to over 127.0.0.1: a free port, and `streamlit run` of the dashboard."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request

from support.paths import ROOT

# (url path, the page's st.title): the order of streamlit_app.PAGES; Compare is the default page, at "/"
PAGES = [
    ("indexes", "Indexes"),
    ("questions", "Question sets"),
    ("labels", "Labels"),
    ("sweep", "Run a sweep"),
    ("", "Compare configurations"),
    ("families", "Compare index variants"),
    ("inspect_question", "Inspect a question"),
    ("reports", "Reports and exports"),
]


# `streamlit run`'s flags for a test: no browser of its own, loopback only, no usage statistics
HEADLESS = ("--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(home, *flags: str):
    """`streamlit run streamlit_app.py` on a free port (plus `flags`); yields (url, port) once healthy."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port), *flags],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "RETRIEVER_LAB_HOME": str(home), "PYTHONPATH": str(ROOT)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "streamlit did not start"
                time.sleep(0.3)
        yield url, port
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a loaded machine: do not leave it running
            server.kill()
            server.wait()
