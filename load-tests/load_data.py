"""The data a load run needs, made and removed over the suite's public API (plain HTTP, outside locust's figures):
a temporary `ml_…` account (or the one given), seed posts to read, and the clean-up of every post the run made,
by id and, when asked, by its title prefix."""

import logging
import secrets
import time
from dataclasses import dataclass, field

import requests

log = logging.getLogger("load-tests")
TIMEOUT_S = 10
SETUP_ATTEMPTS = 3
PAGE_SIZE = 50  # blog-service's largest page


class LoadDataError(RuntimeError):
    pass


def _checked(answer: requests.Response, expected: int, what: str) -> requests.Response:
    if answer.status_code != expected:
        raise LoadDataError(
            f"{what}: {answer.request.method} {answer.url} answered {answer.status_code}, "
            f"expected {expected}: {answer.text[:200]}"
        )
    return answer


@dataclass
class Account:
    username: str
    password: str
    token: str
    user_id: int | None
    temporary: bool

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _post_retrying(http: requests.Session, url: str, body: dict) -> requests.Response:
    """A set-up POST (register, login: a slow password hash each) tried again on 502/503/504, which a busy machine
    gives when the hash outlasts the gateway's timeout."""
    for attempt in range(SETUP_ATTEMPTS):
        answer = http.post(url, json=body, timeout=TIMEOUT_S)
        if answer.status_code not in (502, 503, 504):
            return answer
        log.warning("%s answered %d; trying again", url, answer.status_code)
        time.sleep(1 + attempt)
    return answer


def login(http: requests.Session, url: str, username: str, password: str) -> str:
    answer = _post_retrying(http, f"{url}/api/auth/login", {"username": username, "password": password})
    return _checked(answer, 200, f"login as {username}").json()["access_token"]


def open_account(http: requests.Session, url: str, username: str = "", password: str = "") -> Account:
    """The given account, or a new temporary one (`ml_<random>`) that `close_account` deletes again."""
    if username:
        return Account(username, password, login(http, url, username, password), None, temporary=False)
    username, password = f"ml_{secrets.token_hex(5)}", secrets.token_urlsafe(18)
    account = {"username": username, "email": f"{username}@example.com", "password": password}
    answer = _post_retrying(http, f"{url}/api/users", account)
    if answer.status_code == 409:  # an attempt that timed out at the gateway had registered it after all
        token = login(http, url, username, password)
        verified = http.get(f"{url}/api/auth/verify", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S)
        user_id = int(_checked(verified, 200, "verify the load-test user's token").json()["sub"])
        return Account(username, password, token, user_id, temporary=True)
    user_id = _checked(answer, 201, "register the load-test user").json()["id"]
    return Account(username, password, login(http, url, username, password), user_id, temporary=True)


def close_account(http: requests.Session, url: str, account: Account) -> None:
    if account.temporary:
        answer = http.delete(f"{url}/api/users/{account.user_id}", headers=account.headers, timeout=TIMEOUT_S)
        if answer.status_code not in (204, 404):
            log.warning("could not delete load-test user %s: %s", account.username, answer.status_code)


def create_post(http: requests.Session, url: str, account: Account, title: str) -> int:
    body = {"title": title, "content": f"{title}: a post made by a load test, removed when it ends."}
    answer = http.post(f"{url}/api/posts", json=body, headers=account.headers, timeout=TIMEOUT_S)
    return _checked(answer, 201, "create a post").json()["id"]


def delete_post(http: requests.Session, url: str, account: Account, post_id: int) -> bool:
    """True if the post is gone (deleted now or before)."""
    answer = http.delete(f"{url}/api/posts/{post_id}", headers=account.headers, timeout=TIMEOUT_S)
    return answer.status_code in (204, 404)


def posts_titled(http: requests.Session, url: str, prefix: str) -> list[int]:
    """Ids of every post whose title starts with `prefix` (all pages)."""
    found, page = [], 1
    while True:
        answer = http.get(f"{url}/api/posts", params={"page": page, "size": PAGE_SIZE}, timeout=TIMEOUT_S)
        listing = _checked(answer, 200, "list posts").json()
        found += [item["id"] for item in listing["items"] if item["title"].startswith(prefix)]
        if page >= listing["pages"]:
            return found
        page += 1


@dataclass
class RunData:
    """Everything one run made: its account, the posts it reads and the posts it created."""

    url: str
    account: Account
    prefix: str
    seed_ids: list[int] = field(default_factory=list)
    created_ids: list[int] = field(default_factory=list)

    @classmethod
    def prepare(cls, url: str, *, username: str = "", password: str = "", seed_posts: int = 10) -> "RunData":
        http = requests.Session()
        account = open_account(http, url, username, password)
        data = cls(url, account, prefix=f"ml_{secrets.token_hex(4)}")
        try:
            data.seed_ids = [create_post(http, url, account, f"{data.prefix} seed {n}") for n in range(seed_posts)]
        except BaseException:
            data.clean_up()
            raise
        return data

    def create_outside_figures(self) -> int:
        """A post of this run made over plain HTTP (not counted by locust), e.g. one for a delete to remove."""
        post_id = create_post(requests.Session(), self.url, self.account, f"{self.prefix} to delete")
        self.created_ids.append(post_id)
        return post_id

    def clean_up(self, *, sweep_prefix: bool = False) -> dict[str, int]:
        """Delete the posts this run made by id, then (if asked) whatever still carries its title prefix, then the
        temporary account. Returns how many posts were removed and how many could not be."""
        http = requests.Session()
        removed = failed = 0
        for post_id in self.seed_ids + self.created_ids:
            if delete_post(http, self.url, self.account, post_id):
                removed += 1
            else:
                failed += 1
        if sweep_prefix:
            for post_id in posts_titled(http, self.url, self.prefix):
                if delete_post(http, self.url, self.account, post_id):
                    removed += 1
                else:
                    failed += 1
        close_account(http, self.url, self.account)
        return {"posts_removed": removed, "posts_not_removed": failed}


def sweep(url: str, prefix: str, username: str, password: str) -> dict[str, int]:
    """`mixed_load_plus.sh --cleanup` alone: delete every post titled `prefix…` that this account may delete
    (its own; an admin's token may delete anyone's)."""
    http = requests.Session()
    account = Account(username, password, login(http, url, username, password), None, temporary=False)
    removed = failed = 0
    for post_id in posts_titled(http, url, prefix):
        if delete_post(http, url, account, post_id):
            removed += 1
        else:
            failed += 1
    return {"posts_removed": removed, "posts_not_removed": failed}
