"""Each service's README lists every setting it reads, as its settings classes define them (`make docs`)."""

import shutil
import subprocess
import sys

from pydantic import Field, create_model

from tests.support.deploy import SERVICES
from titanium_common.settings import ServiceSettings
from titanium_dev import settings_docs

REPO_ROOT = settings_docs.REPO_ROOT


def test_every_readme_settings_table_is_what_the_code_gives():
    problems = settings_docs.differences()
    assert not problems, "\n".join(problems)


def test_every_service_folder_is_covered_with_the_kit_settings_it_inherits():
    found = {service.folder: service for service in settings_docs.services()}
    assert set(found) == set(SERVICES) and len(found) >= 9
    for folder, service in found.items():
        readme = (REPO_ROOT / folder / "README.md").read_text()
        for cls in service.classes:
            for name in cls.model_fields:
                assert f"| `{name.upper()}` |" in readme, f"{folder}/README.md does not list {name.upper()}"
        assert "From the kit's `ServiceSettings`" in readme


def test_a_stale_table_or_a_setting_without_meaning_is_reported(tmp_path):
    """The check fails on a README edited by hand, and on a field the generator cannot explain."""
    for service in settings_docs.services():
        (tmp_path / service.folder).mkdir()
        shutil.copy(REPO_ROOT / service.folder / "README.md", tmp_path / service.folder / "README.md")
    for path in REPO_ROOT.glob("*/*/settings.py"):
        (tmp_path / path.parts[-3] / path.parent.name).mkdir(parents=True, exist_ok=True)
        (tmp_path / path.parts[-3] / path.parent.name / "settings.py").touch()
    assert settings_docs.differences(tmp_path) == []

    readme = tmp_path / "edge-config" / "README.md"
    readme.write_text(readme.read_text().replace("| `HEALTH_INTERVAL_S` | `10.0` |", "| `HEALTH_INTERVAL_S` | `5.0` |"))
    assert settings_docs.differences(tmp_path) == [
        "edge-config/README.md: its settings table differs from the code (run `make docs`)"
    ]
    assert readme in settings_docs.write(tmp_path)
    assert settings_docs.differences(tmp_path) == []

    class Undocumented(ServiceSettings):
        documented: int = Field(default=1, description="Has a meaning.")
        undocumented: int = 2

    service = settings_docs.Service("toy", (Undocumented,))
    assert [where.rsplit(": ", 1)[1] for where in settings_docs.missing_descriptions([service])] == [
        "Undocumented.undocumented"
    ]


def test_secrets_never_show_a_value_and_machine_paths_are_described():
    class WithSecret(ServiceSettings):
        api_key: str = Field(default="s3cr3t-value", description="A key.")
        jwt_secret: str = Field(default="", description="A key.")

    block = settings_docs.table(settings_docs.Service("toy", (WithSecret,)), [])
    assert "s3cr3t-value" not in block
    assert "| `API_KEY` | a secret, not shown | A key. |" in block
    assert "| `JWT_SECRET` | empty (a secret) | A key. |" in block
    dashboard = (REPO_ROOT / "dashboard-ui" / "README.md").read_text()
    assert str(REPO_ROOT) not in dashboard


def test_the_make_target_and_the_check_mode_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "titanium_dev.settings_docs", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "\ndocs: install\n\t$(PYTHON) -m titanium_dev.settings_docs\n" in makefile
    assert " docs " in makefile.split(".PHONY:", 1)[1].split("\n\n", 1)[0]


def test_settings_made_at_run_time_are_listed_under_the_class_that_adds_them():
    """A settings class built from a list (as URL settings may be, one per service) still gets every row."""
    addresses = create_model(
        "Addresses",
        __base__=ServiceSettings,
        toy_service_url=(str, Field(default="http://127.0.0.1:9999", description="Where the toy service is.")),
    )
    toy = type("ToySettings", (addresses,), {"__annotations__": {"port": int}, "port": 9999, "__module__": __name__})
    block = settings_docs.table(settings_docs.Service("toy", (toy,)), [])
    assert "| `TOY_SERVICE_URL` | `http://127.0.0.1:9999` | Where the toy service is. |" in block
    assert "| `PORT` | `9999` | The port the service listens on. |" in block
    assert "From the kit's `Addresses`" in block
