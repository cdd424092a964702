# The action server (`start --actions actions`) and the knowledge service (`python -m knowledge`).
# Build from the repository root:
#   docker build -f deploy/sdk.Dockerfile -t nova-aurora/sdk .
# deploy/requirements-sdk.txt is generated from uv.lock (python -m scripts.image_requirements):
# the locked versions of what actions/ and knowledge/ import (aiohttp and its dependencies,
# which rasa-sdk's image lacks), installed without resolving anything else.
FROM rasa/rasa-sdk:3.6.2

USER root
COPY deploy/requirements-sdk.txt /tmp/requirements.txt
# Wheels only (no compiler in the image, none added), no cache left behind.
RUN python -m pip install --no-cache-dir --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

WORKDIR /app
COPY actions /app/actions
COPY knowledge /app/knowledge
# The product's log masking (bot/addons/whatsapp/masking.py, standard library only): the
# package's __init__ files import lazily, so this loads without Rasa.
COPY bot/__init__.py /app/bot/
COPY bot/addons/__init__.py /app/bot/addons/
COPY bot/addons/whatsapp/__init__.py bot/addons/whatsapp/masking.py /app/bot/addons/whatsapp/

# The official images' unprivileged user; the code stays owned by root, read-only.
USER 1001
