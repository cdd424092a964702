"""`make validate` refuses a WhatsApp template response without its name or language."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.check_responses import main, problems
from tests.support.stack import ROOT


def test_a_template_response_without_name_or_language_is_named_with_the_problem() -> None:
    domain = {
        "responses": {
            "utter_ok": [{"text": "oi"}],
            "utter_lembrete": [
                {"custom": {"whatsapp": {"type": "template", "template": {"name": "x"}}}},
                {
                    "custom": {
                        "whatsapp": {
                            "type": "template",
                            "template": {"language": {"code": "pt_BR"}},
                        }
                    }
                },
            ],
        }
    }
    assert problems(domain) == [
        "utter_lembrete[0]: template needs 'language: {code: pt_BR}'"
        " (or another approved language)",
        "utter_lembrete[1]: template needs a 'name' (the approved template's name)",
    ]


def test_the_check_fails_on_a_bad_domain_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    domain = tmp_path / "domain.yml"
    domain.write_text(
        "responses:\n  utter_x:\n    - custom:\n        whatsapp: {type: template, template: {}}\n",
        encoding="utf-8",
    )
    assert main([str(domain)]) == 1
    assert "utter_x[0]: template needs a 'name'" in capsys.readouterr().err


def test_the_project_domain_passes() -> None:
    assert main([str(ROOT / "domain.yml")]) == 0
