# smppgw: SMPP 3.4 gateway to HTTP SMS providers.
#   docker build -t smppgw .
#   docker run -p 2775:2775 -p 8080:8080 -v "$PWD/conf:/app/conf:ro" -v smppgw-var:/app/var smppgw
# The config is read from the mounted conf/; set server.host and http.host to "0.0.0.0" there
# so the ports are reachable from outside the container.
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
CMD ["smppgw", "serve", "--config", "conf/gateway.toml"]
