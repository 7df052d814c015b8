"""Settings: environment, optional TOML file, and a README table that lists every one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cohortsync.settings import FileSettings, Settings


def test_environment_overrides_the_toml_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "cohortsync.toml"
    config.write_text('port = 9100\nlog_format = "text"\n')
    monkeypatch.setenv("COHORTSYNC_CONFIG", str(config))
    monkeypatch.setenv("COHORTSYNC_PORT", "9200")
    settings = FileSettings()
    assert settings.port == 9200
    assert settings.log_format == "text"


def test_defaults_work_out_of_the_box(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COHORTSYNC_CONFIG", raising=False)
    settings = FileSettings()
    assert settings.database_url == "sqlite:///cohortsync.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`COHORTSYNC_{name.upper()}`" in readme, name
