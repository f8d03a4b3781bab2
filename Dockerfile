# Same image recipe as the original guide: python:3.11-slim serving on port 7860.
FROM python:3.11-slim

WORKDIR /app
ENV PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False PORT=7860 DATA_DIR=/app/data LOG_FILE=/app/logs/server.log

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --create-home hub && mkdir -p /app/data /app/logs && chown -R hub /app
USER hub

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"7860\")}/health')"
CMD ["python", "app.py"]
