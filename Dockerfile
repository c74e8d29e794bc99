# The hookline image: one program, every service (`hookline api|router|deliverer|projector|replayer`).
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hookline hookline
COPY core core
COPY schemas schemas
COPY producers producers
COPY router router
COPY deliverer deliverer
COPY api api
RUN pip install --no-cache-dir . && useradd --system hookline
USER hookline
ENTRYPOINT ["hookline"]
