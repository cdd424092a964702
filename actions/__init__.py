"""Custom actions of the Nova Aurora bot (run by the rasa-sdk action server)."""
