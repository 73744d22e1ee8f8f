"""`python -m ops_mcp`: the MCP server on stdio, for a desktop assistant (the service itself: `ops-mcp`)."""

import logging
import sys

from .remote import run_stdio
from .settings import StdioSettings

settings = StdioSettings()
# stdout carries the protocol: every log line goes to stderr.
logging.basicConfig(stream=sys.stderr, level=settings.log_level)
run_stdio(settings)
