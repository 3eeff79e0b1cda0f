"""The server's JSON-lines logs: written by a background thread, to stderr and the rotating file."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path

import pytest

from serving.logs import LOGGER_NAME, log_config, log_event

LOGGERS = (LOGGER_NAME, "uvicorn", "uvicorn.access")


def test_events_reach_stderr_and_the_file_as_json_lines(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "logs" / "serve.log"
    logging.config.dictConfig(log_config(log_file))
    try:
        log_event("session_opened", session_id="abc")
        logging.getLogger("uvicorn.error").warning("port %s is busy", 8000)
        logging.getLogger("uvicorn.error").info("accepted")  # below WARNING: not logged
    finally:
        handlers = {handler for name in LOGGERS for handler in logging.getLogger(name).handlers}
        for handler in handlers:
            handler.close()  # writes what the thread has not written yet
        for name in LOGGERS:
            logging.getLogger(name).handlers.clear()

    from_file = [json.loads(line) for line in log_file.read_text().splitlines()]
    from_stderr = [json.loads(line) for line in capfd.readouterr().err.splitlines()]
    assert from_file == from_stderr
    assert [(e["logger"], e["level"], e["event"]) for e in from_file] == [
        (LOGGER_NAME, "info", "session_opened"),
        ("uvicorn.error", "warning", "port 8000 is busy"),
    ]
    assert from_file[0]["session_id"] == "abc"
