"""Data tests never see the user's $ROBUSTMI_DATA."""

import pytest


@pytest.fixture(autouse=True)
def _no_user_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTMI_DATA", raising=False)
