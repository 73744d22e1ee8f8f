import io
import json
import logging

import pytest

from titanium_common.logs import accept_request_id, configure_logging, request_id_var


@pytest.mark.parametrize("incoming", ["abc-123", "0af7651916cd43dd8448eb211c80319c", "a.b:c_d"])
def test_well_formed_request_ids_are_kept(incoming):
    assert accept_request_id(incoming) == incoming


@pytest.mark.parametrize("incoming", [None, "", "with space", "line\nbreak", "x" * 129, "<script>"])
def test_other_request_ids_are_replaced(incoming):
    rid = accept_request_id(incoming)
    assert rid != incoming
    assert len(rid) == 32


@pytest.fixture
def restore_root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_service_and_request_id(restore_root_logging):
    configure_logging("demo-service", "INFO", "json")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    token = request_id_var.set("rid-42")
    try:
        logging.getLogger("demo").info("hello %s", "world", extra={"route": "/x"})
    finally:
        request_id_var.reset(token)
    line = json.loads(stream.getvalue())
    assert line["service"] == "demo-service"
    assert line["request_id"] == "rid-42"
    assert line["message"] == "hello world"
    assert line["route"] == "/x"


def test_text_lines_carry_request_id(restore_root_logging):
    configure_logging("demo-service", "INFO", "text")
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    logging.getLogger("demo").info("outside a request")
    assert "[-] demo: outside a request" in stream.getvalue()
