"""Custom actions of the Nova Aurora bot (run by the rasa-sdk action server)."""

import sys

from bot.addons.whatsapp.masking import MASK_NUMBERS, add_filter


def _in_the_action_server() -> bool:
    """True under ``python -m rasa_sdk`` (the compose image, ``make run``), which imports
    this package once its logging is configured; not when tests import it."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return bool(spec and spec.name.startswith("rasa_sdk"))


if _in_the_action_server():
    add_filter(MASK_NUMBERS, "rasa_sdk")
    import os

    from actions.actions import handoff_after
    from actions.handoff import survey_on
    from actions.knowledge_client import KnowledgeSettings

    # At start, not at the first question: a bad PRIVACY_PSEUDONYM_KEY (or handoff setting)
    # stops the server here, with the variable's name.
    KnowledgeSettings.from_env()
    handoff_after(os.environ)
    survey_on(os.environ)
