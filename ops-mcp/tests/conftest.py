"""ops-mcp tests: diagnose()'s rules on their own, and the service against real services on loopback."""

import functools

from tests.support.polling import eventually

# What the services do in the background (samples, health rounds) takes a moment.
until = functools.partial(eventually, timeout_s=20.0, every_s=0.1)
