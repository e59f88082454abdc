# MNIST Studio: the app on the shipped artifacts, nothing trained or downloaded at start.
#   docker build -t mnist-studio .
#   docker run -p 8501:8501 mnist-studio            -> http://localhost:8501
# Several replicas behind a proxy, plus PostgreSQL: deploy/compose.yaml.
FROM python:3.12-slim

# No .pyc litter, logs straight to the container's output, no pip cache in the image.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The server runs as an unprivileged user that owns nothing but its home, where the one
# thing the app writes lives: the class's digits in SQLite when no database URL is set
# (`docker run -v studio-data:/home/studio/data ...` keeps them across containers;
# deploy/compose.yaml gives every replica PostgreSQL instead).
RUN useradd --create-home --uid 10001 studio \
    && install -d -o studio -g studio /home/studio/data
ENV MNIST_STUDIO_CLASS_DB=/home/studio/data/classroom.sqlite
WORKDIR /app

# Dependencies first, so a code change does not reinstall TensorFlow.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The app, its pages and the trained artifacts (baked in: the image needs no volume),
# owned by root so the server cannot change them.
COPY app.py ./
COPY app_pages/ app_pages/
COPY ui/ ui/
COPY mnist_core/ mnist_core/
COPY artifacts/ artifacts/
COPY .streamlit/ .streamlit/

USER studio
EXPOSE 8501
# Streamlit's own liveness endpoint; the slim image has no curl, Python has urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
CMD ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0"]
