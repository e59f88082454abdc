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

# MNIST for Train live and Teach, fetched when the image is built (the server may be
# offline; without it those pages would try to download it at run time): keras's own
# mnist.npz, checked against keras's SHA-256, 11 MB.
ENV MNIST_DATA=/opt/mnist
RUN python -c "import hashlib, os, urllib.request; \
url = 'https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz'; \
data = urllib.request.urlopen(url, timeout=120).read(); \
assert hashlib.sha256(data).hexdigest() == \
    '731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1', 'mnist.npz: bad SHA-256'; \
os.makedirs('/opt/mnist', exist_ok=True); open('/opt/mnist/mnist.npz', 'wb').write(data)"

# The app, its pages and the trained artifacts (baked in: the image needs no volume),
# owned by root so the server cannot change them.
COPY app.py ./
COPY app_pages/ app_pages/
COPY ui/ ui/
COPY mnist_core/ mnist_core/
COPY artifacts/ artifacts/
COPY .streamlit/ .streamlit/
COPY deploy/serve.py deploy/

USER studio
# The port Streamlit listens on (deploy/compose.yaml gives each replica its own).
ENV MNIST_STUDIO_PORT=8501
EXPOSE 8501
# Streamlit's own liveness endpoint, asked by serve.py (the slim image has no curl).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "deploy/serve.py", "--check"]
# serve.py runs `streamlit run app.py` on $MNIST_STUDIO_PORT, restarts it when it dies or
# stops answering, and stops it gracefully on SIGTERM (deploy/serve.py).
CMD ["python", "deploy/serve.py"]
