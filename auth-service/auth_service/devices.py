"""Device cookies (OWASP's "Slow Down Online Guessing Attacks with Device Cookies"): a browser or client that logged
in to an account gets a signed cookie naming a device id and that account; its later logins to the account are
throttled on that device's own counter, so a stranger's failures elsewhere never lock it out.

The value is `<device id>.<HMAC-SHA256 of "<device id>|<account>">`, keyed by a key derived from the token secret:
it cannot be forged, and it is worth nothing for another account.
"""

import hashlib
import hmac
import secrets

COOKIE_NAME = "titanium_device"
# Logins are at /api/auth/login and the original system's /api/login.
COOKIE_PATH = "/api"


class DeviceCookies:
    def __init__(self, token_secret: str, max_age_s: int) -> None:
        self._key = hashlib.sha256(b"titanium device cookie\0" + token_secret.encode()).digest()
        self.max_age_s = max_age_s

    def _signature(self, device: str, username: str) -> str:
        message = f"{device}|{username.lower()}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, username: str, device: str | None = None) -> str:
        """A cookie value for this account: the device's own id kept when it had a valid one, else a new one."""
        device = device or secrets.token_urlsafe(16)
        return f"{device}.{self._signature(device, username)}"

    def device_of(self, cookie: str | None, username: str) -> str | None:
        """The device id of a valid cookie of this account; None for no cookie, a forged one or another account's."""
        if not cookie or len(cookie) > 200:
            return None
        device, _, signature = cookie.partition(".")
        if not device or not hmac.compare_digest(signature, self._signature(device, username)):
            return None
        return device
