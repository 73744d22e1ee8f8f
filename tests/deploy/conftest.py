"""The Docker Engine the image and Compose tests share: the one DOCKER_HOST names, else the project's private
dockerd (started here only if it is not running, and then stopped at the end), with the stand-in images in it."""

import shutil

import pytest

from tests.support import images
from tests.support.engine import Engine, ensure_engine


@pytest.fixture(scope="session")
def docker_engine() -> Engine:
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is needed (make test installs Debian's docker.io)")
    engine = ensure_engine()
    yield engine
    # The images a rebuild replaced (the build cache that makes the next build quick stays).
    engine.docker("image", "prune", "--force", check=False)
    engine.stop()


@pytest.fixture(scope="session")
def stand_ins(docker_engine) -> dict[str, float]:
    """The official images' stand-ins (made once per engine data root); the seconds each one took now."""
    return images.ensure_stand_ins(docker_engine)
