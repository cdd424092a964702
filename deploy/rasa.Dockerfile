# `rasa run` with the WhatsApp channel, and the webhook ingress (same code, same packages).
# Build from the repository root after `make train` (the model is part of the image):
#   docker build -f deploy/rasa.Dockerfile -t nova-aurora/rasa .
# deploy/requirements-rasa.txt is generated from uv.lock (python -m scripts.image_requirements):
# the locked versions of what bot/ imports, installed without resolving anything else.
FROM rasa/rasa:3.6.21-full

USER root
COPY deploy/requirements-rasa.txt /tmp/requirements.txt
# Wheels only (no compiler in the image, none added), no cache left behind.
RUN python -m pip install --no-cache-dir --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

WORKDIR /app
COPY bot /app/bot
COPY scripts/__init__.py scripts/endpoints.py /app/scripts/
COPY credentials.yml /app/
COPY models/nova-aurora.tar.gz /app/models/nova-aurora.tar.gz
ENV PYTHONPATH=/app

# The official images' unprivileged user; the code and model stay owned by root, read-only.
USER 1001
