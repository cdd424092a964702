"""Voice notes: an inbound audio message ▸ its transcript, as the citizen's text.

``audio.py`` decodes OGG/Opus with PyAV (pure); ``backends.py`` holds the transcribers
(``local`` faster-whisper, ``api`` an OpenAI-compatible endpoint); ``service.py`` runs them
in a bounded worker pool off the event loop and says what Rasa receives.

Must not import Rasa or Sanic; faster-whisper is imported only when the ``local`` backend
is configured.
"""
