# One image for the api and the workers. CPU torch by default; for GPU workers build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124 .
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /app
RUN pip install --no-cache-dir "torch>=2.4" --index-url ${TORCH_INDEX}
COPY pyproject.toml README.md ./
COPY server server
COPY worker worker
COPY ml ml
COPY frontend frontend
RUN pip install --no-cache-dir . && useradd --create-home neuroreg \
    && mkdir -p /data && chown neuroreg /data
USER neuroreg
ENV NEUROREG_DATA_DIR=/data
EXPOSE 8000
CMD ["neuroreg", "api"]
