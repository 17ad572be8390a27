# vqtune with Ray: the image of the `vqtune`, `ray-head` and `ray-worker` services of docker-compose.yml.
# torch is pinned by constraints.txt (2.13.0); on Linux the registry's build of it carries CUDA for GPU workers.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/vqtune
COPY pyproject.toml constraints.txt README.md ./
COPY vqtune ./vqtune
RUN pip install -c constraints.txt .
COPY search_spaces ./search_spaces
WORKDIR /opt/vqtune
ENTRYPOINT ["vqtune"]
CMD ["--help"]
