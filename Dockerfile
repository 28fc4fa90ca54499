# news-notifier: the bot in a small image. Build: `docker build -t news-notifier .`
# Settings come from the environment (README: "Running it for real (operators)").

# --- build: install the project and its dependencies into a virtual environment ---------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
# pyproject.toml names README.md as the package's readme: both are needed to build.
COPY pyproject.toml README.md ./
COPY bot ./bot
# Then fail the build, not the first start, if the installed package lacks its built-in
# settings or migrations (run from /, so that /src/bot cannot stand in for it).
RUN /opt/venv/bin/pip install . \
    && cd / && /opt/venv/bin/python -c "from bot.config import load_settings; \
from bot.store.db import migrations; load_settings(environ={}); migrations(); migrations(\"postgresql\")"

# --- runtime: the virtual environment, a non-root user, the database on a volume ---------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NEWS_NOTIFIER_DATABASE=/data/news-notifier.sqlite3
# A fixed uid, so a bind-mounted ./data can be given to it: chown 10001 ./data
RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin news-notifier \
    && mkdir /data && chown news-notifier:news-notifier /data
COPY --from=build /opt/venv /opt/venv
USER news-notifier
WORKDIR /data
# The SQLite database, its WAL and its lock file. A new named volume takes this folder's
# owner, so the bot can write to it.
VOLUME ["/data"]
# Unhealthy when the database does not answer or no feed was checked for
# health.max_silence_seconds (default 30 min). The start period covers the first checks
# after a long downtime.
HEALTHCHECK --interval=60s --timeout=15s --start-period=120s --retries=3 \
    CMD ["news-notifier", "healthcheck"]
# SIGTERM: the bot stops taking work, finishes what is in flight and exits 0 (allow ~30 s).
STOPSIGNAL SIGTERM
CMD ["news-notifier", "run"]
