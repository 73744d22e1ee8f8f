"""Token revocations, announced over Redis pub/sub so that every verify cache forgets a user within a second.

user-service publishes a user's id after the commit of anything that must end that user's tokens (delete, role or
password change, logout); every `RevocationFeed` subscriber drops what it cached for that user. While the feed is
not known to be listening (no Redis, not yet subscribed, connection lost), caches keep an entry at most
`UNSURE_MAX_AGE_S`, and everything is forgotten when the subscription is (re)made, because messages may have been
missed in between. So a revocation takes effect within a second either way.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from pydantic import Field

from .loops import stop_tasks
from .settings import ServiceSettings

log = logging.getLogger("titanium.revocations")

DEFAULT_CHANNEL = "titanium:identity:revoked"
# How long a cache may trust an entry while revocations might be missed.
UNSURE_MAX_AGE_S = 1.0
REDIS_TIMEOUT_S = 0.5
RECONNECT_DELAY_S = 0.5
# A failed publish is retried this long: past it, every cache has dropped the entry by age anyway.
PUBLISH_RETRY_FOR_S = 35.0

# Called with a user id (as the token's `sub`), or None for "forget everyone".
Listener = Callable[[str | None], None]


class RevocationSettings(ServiceSettings):
    """What a service that checks tokens reads to hear revocations at once (mix into its settings class); pass
    it to `titanium_common.auth_client.settings_token_verifier`. Without Redis, revocations take up to a second."""

    redis_url: str = Field(
        default="", description="The Redis whose pub/sub carries revocations; empty: a revocation takes up to 1 s."
    )
    revocation_channel: str = Field(
        default=DEFAULT_CHANNEL,
        description="The Redis pub/sub channel of revoked users (every verify cache forgets them at once).",
    )


def _redis_client(url: str):
    import redis.asyncio as redis  # only services that announce or hear revocations need redis

    return redis.Redis.from_url(
        url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S, health_check_interval=5
    )


class RevocationFeed:
    """Subscriber (and publisher) of the revocation channel; without a Redis URL it only says "unsure"."""

    def __init__(self, redis_url: str = "", channel: str = DEFAULT_CHANNEL) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.listening = False
        self._listeners: list[Listener] = []
        self._task: asyncio.Task | None = None
        self._publisher = None
        self._unsent: dict[str, float] = {}
        self._retry_task: asyncio.Task | None = None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def max_age_s(self, wanted_s: float) -> float:
        """How long a cache may keep an entry now: what it wants while listening, else at most a second."""
        return wanted_s if self.listening else min(wanted_s, UNSURE_MAX_AGE_S)

    def _tell(self, user_id: str | None) -> None:
        for listener in self._listeners:
            listener(user_id)

    async def start(self) -> None:
        if self.redis_url and self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="revocation-feed")

    async def _listen_forever(self) -> None:
        while True:
            client = _redis_client(self.redis_url)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                # Anything published before this moment may have been missed.
                self._tell(None)
                self.listening = True
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._tell(message["data"].decode("utf-8", "replace"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis failure: unsure until subscribed again
                if self.listening:
                    log.warning("revocation feed lost (%s); verify caches keep entries at most 1 s", exc)
                self.listening = False
                await asyncio.sleep(RECONNECT_DELAY_S)
            finally:
                self.listening = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()

    async def publish(self, user_id: int | str) -> None:
        """Announce that `user_id`'s tokens are revoked (after the commit); a failure is retried in the
        background, and this process forgets the user at once."""
        self._tell(str(user_id))
        if not self.redis_url:
            return
        if not await self._send(str(user_id)):
            self._unsent[str(user_id)] = time.monotonic() + PUBLISH_RETRY_FOR_S
            if self._retry_task is None or self._retry_task.done():
                self._retry_task = asyncio.create_task(self._retry_unsent(), name="revocation-retry")

    async def _send(self, user_id: str) -> bool:
        if self._publisher is None:
            self._publisher = _redis_client(self.redis_url)
        try:
            await self._publisher.publish(self.channel, user_id)
            return True
        except Exception as exc:  # Redis down: retried
            log.warning("could not announce the revocation of user %s (%s); retrying", user_id, exc)
            return False

    async def _retry_unsent(self) -> None:
        while self._unsent:
            await asyncio.sleep(RECONNECT_DELAY_S)
            now = time.monotonic()
            for user_id, give_up_at in list(self._unsent.items()):
                if now > give_up_at or await self._send(user_id):
                    self._unsent.pop(user_id, None)

    async def close(self) -> None:
        await stop_tasks((self._task, self._retry_task))
        self._task = self._retry_task = None
        if self._publisher is not None:
            await self._publisher.aclose()
            self._publisher = None
