"""The launcher's restarts: a service that keeps exiting is restarted with a growing back-off, up to the limit,
then left down, each step logged; one stopped on purpose is not restarted."""

import io
import time

from tests.support.polling import eventually_blocking
from titanium_common.catalog import Service
from titanium_dev.suite import RestartPolicy, Suite, free_port

# `python -m` of a module that does not exist: exits at once with code 1, like a service that crashes on start.
CRASHER = Service("crasher", "titanium_common.no_such_module", 0, "CRASHER_URL")


def _wait_exit(suite: Suite) -> None:
    eventually_blocking(lambda: not suite.processes["crasher"].running, 30, 0.02, what="the crasher's exit")


def test_restarts_back_off_then_stop_at_the_limit(tmp_path):
    log = io.StringIO()
    policy = RestartPolicy(first_delay_s=0.1, max_delay_s=0.4, limit=3, window_s=60)
    suite = Suite(ports={"crasher": free_port()}, data_dir=tmp_path, start_redis=False, echo=log,
                  services=(CRASHER,), restart=policy)  # fmt: skip
    try:
        suite._launch(CRASHER)
        delays = []
        while not suite._restarts.get("crasher") or not suite._restarts["crasher"].gave_up:
            _wait_exit(suite)
            now = time.monotonic()
            suite.restart_exited(now)  # notices the exit, schedules the restart
            state = suite._restarts["crasher"]
            if state.gave_up:
                break
            delays.append(round(state.due - now, 2))
            suite.restart_exited(state.due)  # restarts it
        assert delays == [0.1, 0.2, 0.4]
        text = log.getvalue()
        assert text.count("crasher restarted") == 3 and "after 3 restarts within 60 s: not restarted again" in text
        assert "No module named titanium_common.no_such_module" in text
    finally:
        suite.stop()


def test_a_service_stopped_on_purpose_is_not_restarted(tmp_path):
    suite = Suite(ports={"crasher": free_port()}, data_dir=tmp_path, start_redis=False, echo=None,
                  services=(CRASHER,), restart=RestartPolicy(first_delay_s=0))  # fmt: skip
    try:
        suite._launch(CRASHER)
        suite.stop_service("crasher")
        suite.restart_exited(time.monotonic() + 1)
        assert "crasher" not in suite._restarts
    finally:
        suite.stop()
