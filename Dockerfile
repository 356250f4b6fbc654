# points-ledger: the HTTP service. Runs with LEDGER_ENV=production, so it needs
# LEDGER_DATABASE_URL; run `points-ledger migrate` once per release before serving.
FROM python:3.11-slim AS build
RUN pip install --no-cache-dir "uv>=0.5,<1"
WORKDIR /src
COPY pyproject.toml uv.lock README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN uv build --wheel --out-dir /dist \
 && uv export --frozen --no-dev --no-emit-project --format requirements-txt > /dist/requirements.txt

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LEDGER_ENV=production
COPY --from=build /dist /dist
RUN pip install --no-cache-dir -r /dist/requirements.txt /dist/*.whl \
 && rm -rf /dist \
 && useradd --system --uid 10001 --no-create-home ledger
USER ledger
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["points-ledger", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
