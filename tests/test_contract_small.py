"""The small shared rules of gala.contract: loopback, atomic writes, the exit-code table."""

from __future__ import annotations

import json
import os
import threading

import pytest

from gala.contract.atomic import write_json_atomic
from gala.contract.errors import ExitCode, InputError, exit_codes_help
from gala.contract.loopback import is_loopback_host, require_loopback


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.9.9.9", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("192.0.2.1", False), ("example.invalid", False), ("", False),
])
def test_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


def test_require_loopback_refuses_remote_and_malformed_urls_in_one_line():
    require_loopback("http://127.0.0.1:8080", allow_remote=False, where="--host")
    with pytest.raises(InputError, match=r"^--host: http://192\.0\.2\.1:80 is not a loopback address"):
        require_loopback("http://192.0.2.1:80", allow_remote=False, where="--host")
    with pytest.raises(InputError, match=r"^--host: 'ftp://127\.0\.0\.1' is not an http\(s\) URL"):
        require_loopback("ftp://127.0.0.1", allow_remote=False, where="--host")
    require_loopback("http://192.0.2.1:80", allow_remote=True, where="--host")  # the scenario allows it


def test_a_reader_never_sees_half_a_json_file(tmp_path):
    path = tmp_path / "live.json"
    write_json_atomic(path, {"n": 0})
    seen, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            seen.append(json.loads(path.read_text()))  # raises on a half-written file

    reader = threading.Thread(target=read)
    reader.start()
    for n in range(300):
        write_json_atomic(path, {"n": n, "pad": "x" * 20_000})
    stop.set()
    reader.join()
    assert seen and all("n" in doc for doc in seen)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_every_exit_code_has_a_meaning_in_the_help():
    text = exit_codes_help(*ExitCode)
    for code in ExitCode:
        assert f"  {int(code):<4} " in text
    assert InputError("x").exit_code == ExitCode.BAD_INPUT == 2
