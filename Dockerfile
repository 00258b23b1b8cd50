# Two images from one build: the controller (the default, last stage) and the Linux host agent
# (--target agent). Both run the same installed package.
FROM python:3.11-slim AS base

WORKDIR /app
COPY pyproject.toml README.md ./
COPY controller ./controller
COPY migrations ./migrations
RUN pip install --no-cache-dir .

# The host agent: realizes its host's policy in the kernel (network namespaces, VXLAN,
# nftables, tc), so it runs as root in the host's network namespace:
#   docker run --network host --privileged -v /run/netns:/run/netns:shared \
#     -e SDNC_URL=... -e SDNC_AGENT_SERVER=... -e SDNC_AGENT_TOKEN=... sdnc-agent
FROM base AS agent
RUN apt-get update \
    && apt-get install -y --no-install-recommends iproute2 nftables \
    && rm -rf /var/lib/apt/lists/*
ENV SDNC_AGENT_STATE_DIR=/var/lib/sdnc-agent
VOLUME /var/lib/sdnc-agent
CMD ["sdnc", "agent"]

FROM base AS controller
RUN useradd --system --home /var/lib/sdnc sdnc \
    && mkdir -p /var/lib/sdnc && chown sdnc /var/lib/sdnc
USER sdnc
ENV SDNC_HOST=0.0.0.0 \
    SDNC_PORT=8080 \
    SDNC_DATA_DIR=/var/lib/sdnc
EXPOSE 8080
# Ready (database reachable, schema current, change follower caught up), not merely alive.
HEALTHCHECK --interval=10s --timeout=5s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz')"
CMD ["sdnc", "serve"]
