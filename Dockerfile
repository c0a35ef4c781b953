# A first image: the server and its Python dependencies.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# A throw-away key: collectstatic must not generate (and so bake in) the real one.
RUN SECRET_KEY=collectstatic-only-not-a-real-secret-key-000 python manage.py collectstatic --noinput -v0
RUN useradd --create-home --uid 1000 csm && mkdir -p var/media && chown -R csm var
USER csm
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["sh", "-c", "python manage.py migrate --noinput && python manage.py serve --host 0.0.0.0 --port 8000"]
