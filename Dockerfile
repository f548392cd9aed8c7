# Build wheels in one stage; the final image has no build tools and runs as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY router ./router
COPY backend ./backend
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 DOWNLOAD_DIR=/data/downloads
RUN useradd --create-home --uid 10001 nemobot && mkdir -p /data && chown nemobot /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER nemobot
WORKDIR /data
ENTRYPOINT ["nemobot"]
CMD ["run"]
