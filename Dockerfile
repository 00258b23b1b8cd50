FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/sdnc sdnc \
    && mkdir -p /var/lib/sdnc && chown sdnc /var/lib/sdnc

USER sdnc
ENV SDNC_HOST=0.0.0.0 \
    SDNC_PORT=8080 \
    SDNC_AUTH=token \
    SDNC_DATA_DIR=/var/lib/sdnc
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/networking/discovery')"
CMD ["sdnc", "serve"]
