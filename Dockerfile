# The app (UI + engine) on Python 3.11. Build: docker build -t no-touch-support .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False \
    DATA_DIR=/app/data

RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# Point TORCH_INDEX_URL at a CPU-only PyTorch wheel index to keep the image small.
ARG TORCH_INDEX_URL=""
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url $TORCH_INDEX_URL} torch==2.13.0 \
    && pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --create-home app && mkdir -p -m 700 /app/data && mkdir -p /app/logs && chown app /app/data /app/logs
USER app

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD curl -fsS http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", \
     "--server.headless=true", "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"]
