# Two images of the same code, one per kind of torch:
#   docker build --target cpu  -t neuroreg:cpu  .   # CPU-only torch: the api and CPU workers
#   docker build --target cuda -t neuroreg:cuda .   # CUDA torch: GPU workers
# docker-compose.yml builds both (`docker compose up -d --build`). With no --target the
# build is the last stage, cuda. The cuda image's torch is PyPI's Linux build (CUDA 13.0,
# which needs an NVIDIA driver of 580 or newer); for an older driver take torch from one of
# PyTorch's CUDA indexes, e.g. --build-arg CUDA_TORCH_INDEX=https://download.pytorch.org/whl/cu126
# torch and torchvision (torchattacks needs it) go in first, from their index, and stay
# pinned while the project installs, so pip keeps them and pulls no second torch.
ARG TORCH_VERSION=2.13.0
ARG TORCHVISION_VERSION=0.28.0

# what both images run on: Python, the unprivileged user, the data volume, the command
FROM python:3.11-slim AS base
RUN useradd --create-home neuroreg && mkdir -p /data && chown neuroreg /data
WORKDIR /app
ENV NEUROREG_DATA_DIR=/data
EXPOSE 8000
CMD ["neuroreg", "api"]

# the project: every package pyproject.toml's [tool.setuptools.packages.find] includes
FROM scratch AS source
COPY pyproject.toml README.md /app/
COPY cli /app/cli
COPY core /app/core
COPY server /app/server
COPY worker /app/worker
COPY ml /app/ml
COPY frontend /app/frontend
COPY neuroreg /app/neuroreg

FROM base AS cpu
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ARG CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu
# the api draws a study's report (GET /api/studies/{id}/report) in headless chromium
RUN apt-get update && apt-get install -y --no-install-recommends chromium \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir --index-url ${CPU_TORCH_INDEX} \
        torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION}
COPY --from=source /app /app
RUN printf 'torch==%s\ntorchvision==%s\n' ${TORCH_VERSION} ${TORCHVISION_VERSION} > /tmp/torch.txt \
    && pip install --no-cache-dir --constraint /tmp/torch.txt . && rm /tmp/torch.txt \
    && python -c "import torch; assert torch.version.cuda is None, torch.__version__"
USER neuroreg

FROM base AS cuda
ARG TORCH_VERSION
ARG TORCHVISION_VERSION
ARG CUDA_TORCH_INDEX=https://pypi.org/simple
RUN pip install --no-cache-dir --index-url ${CUDA_TORCH_INDEX} \
        torch==${TORCH_VERSION} torchvision==${TORCHVISION_VERSION}
COPY --from=source /app /app
RUN printf 'torch==%s\ntorchvision==%s\n' ${TORCH_VERSION} ${TORCHVISION_VERSION} > /tmp/torch.txt \
    && pip install --no-cache-dir --constraint /tmp/torch.txt . && rm /tmp/torch.txt \
    && python -c "import torch; assert torch.version.cuda, torch.__version__"
USER neuroreg
