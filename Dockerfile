# smppgw: SMPP 3.4 gateway to HTTP SMS providers.
#   docker build -t smppgw .
#   docker run --stop-timeout 30 -p 2775:2775 -p 8080:8080 \
#     -v "$PWD/conf:/app/conf:ro" -v smppgw-var:/app/var smppgw
# The config is read from the mounted conf/; set server.host and http.host to "0.0.0.0" there
# so the ports are reachable from outside the container. deploy/compose.yaml runs it with
# Redis, Prometheus and Grafana.
FROM python:3.11-slim

RUN useradd --create-home --uid 10001 smppgw
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smppgw ./smppgw
RUN pip install --no-cache-dir . && mkdir -p /app/var /app/conf && chown smppgw /app/var
COPY conf ./conf

USER smppgw
EXPOSE 2775 8080
VOLUME ["/app/var"]

# /healthz answers 200 while the gateway is started and its store takes work, 503 otherwise
# (urlopen raises on 503: exit 1). No curl in the slim image: Python's urllib. Another [http]
# port than 8080: set SMPPGW_HEALTHZ (e.g. docker run -e SMPPGW_HEALTHZ=http://127.0.0.1:9000/healthz).
ENV SMPPGW_HEALTHZ=http://127.0.0.1:8080/healthz
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['SMPPGW_HEALTHZ'], timeout=4)"]

# SIGTERM drains: stop listening, unbind every session, give answers up to 5 s, let the
# store commit what it holds, exit. Docker's default stop timeout (10 s) is usually enough;
# give it more room (docker run --stop-timeout 30, compose stop_grace_period: 30s) so a busy
# store is never cut short by SIGKILL.
STOPSIGNAL SIGTERM
CMD ["smppgw", "serve", "--config", "conf/gateway.toml"]
