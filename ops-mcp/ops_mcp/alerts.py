"""The alerts Prometheus raised, as Alertmanager holds them (its API v2 at ALERTMANAGER_URL): what the dashboard's
alerts panel, `GET /api/ops/alerts`, the MCP tool `alerts` and diagnose() show. Alertmanager not set, down or
answering nonsense: "alerts unavailable" with the reason, never an error."""

from typing import Any

import aiohttp

from .schemas import Alert, AlertList

UNAVAILABLE = "alerts unavailable"


def _alert(raw: dict[str, Any]) -> Alert:
    labels = raw.get("labels") or {}
    annotations = raw.get("annotations") or {}
    return Alert(
        name=labels.get("alertname", ""),
        severity=labels.get("severity", ""),
        service=labels.get("job", ""),
        instance=labels.get("instance"),
        summary=annotations.get("summary", ""),
        description=annotations.get("description", ""),
        runbook_url=annotations.get("runbook_url"),
        starts_at=raw.get("startsAt", ""),
        labels=labels,
    )


class AlertsReader:
    def __init__(self, session: aiohttp.ClientSession, url: str, timeout_s: float) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def read(self) -> AlertList:
        if not self.url:
            return AlertList(available=False, error=f"{UNAVAILABLE}: ALERTMANAGER_URL is not set")
        # Firing and neither silenced nor inhibited: what an operator is being asked to act on.
        query = {"active": "true", "silenced": "false", "inhibited": "false"}
        try:
            async with self.session.get(f"{self.url}/api/v2/alerts", params=query, timeout=self.timeout) as answer:
                if answer.status != 200:
                    return self._unavailable(f"Alertmanager answered {answer.status}")
                body = await answer.json(content_type=None)
            alerts = [_alert(raw) for raw in body]
        except TimeoutError:
            return self._unavailable(f"Alertmanager did not answer within {self.timeout.total:g} s")
        except (aiohttp.ClientError, ValueError, TypeError, AttributeError) as exc:
            return self._unavailable(f"{type(exc).__name__}: {exc}"[:300])
        # Pages first, then the oldest first: the order to act in.
        alerts.sort(key=lambda a: (a.severity != "page", a.starts_at))
        return AlertList(available=True, source=self.url, alerts=alerts)

    def _unavailable(self, why: str) -> AlertList:
        return AlertList(available=False, source=self.url, error=f"{UNAVAILABLE}: {why}")
