# The webhook ingress (python -m bot.addons.whatsapp.ingress), the one process the internet
# reaches: on a current Python with current aiohttp, apart from rasa run (Python 3.10, Rasa
# 3.6). It imports no Rasa (tests/test_layout.py), so it needs only what
# deploy/requirements-ingress.txt lists, exported from deploy/ingress/uv.lock.
#   docker build -f deploy/ingress.Dockerfile -t nova-aurora/ingress .
FROM python:3.12.12-slim

COPY deploy/requirements-ingress.txt /tmp/requirements.txt
# Wheels only (no compiler in the image, none added), no cache left behind.
RUN python -m pip install --no-cache-dir --no-deps --only-binary=:all: -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

WORKDIR /app
COPY bot /app/bot
COPY credentials.yml /app/
ENV PYTHONPATH=/app PYTHONUNBUFFERED=1

# Unprivileged, as the Rasa images (uid 1001); the code stays owned by root, read-only.
USER 1001
EXPOSE 5006
ENTRYPOINT ["python", "-m", "bot.addons.whatsapp.ingress"]
