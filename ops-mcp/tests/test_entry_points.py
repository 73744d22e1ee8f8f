"""`python -m ops_mcp` starts the service like every other service's package; the stdio server has its own entry
point (`python -m ops_mcp.stdio`, exercised end to end in test_over_mcp.py)."""

import httpx

from tests.support.servers import ServiceProcess


async def test_python_m_ops_mcp_serves_http():
    async with ServiceProcess("ops_mcp", {"REDIS_URL": ""}) as process, httpx.AsyncClient(timeout=30) as client:
        health = await client.get(f"{process.url}/health")
        docs = await client.get(f"{process.url}/openapi.json")
    assert health.status_code == 200 and health.json()["service"] == "ops-mcp"
    assert "/api/ops/diagnosis" in docs.json()["paths"]
