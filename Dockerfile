# syntax=docker/dockerfile:1
# The two stowage images, built from one file:
#   --target operator  the unprivileged operator (`stowage run`, the CSI controller and its
#                      csi-provisioner sidecar), uid 65532, read-only root
#   --target helper    the privileged mount helper and NAS server (`stowage agent`) with the
#                      storage clients and servers
#
# Python dependencies come as wheels from build/wheels/ in the build context, so the
# build itself never needs PyPI (`e2e/scripts/build-images.sh` fills that folder:
#   pip download --only-binary=:all: -d build/wheels -r requirements/runtime.txt
# for CPython 3.11 on the image's architecture, plus the build backend of pyproject.toml).
# Debian packages come from the base image's apt sources.
#
# Layers run from the slowest-changing to the fastest: apt, then the pinned wheels, then
# stowage itself, so that a code change rebuilds only the last, small layer.

ARG BASE_IMAGE=debian:bookworm-slim

FROM ${BASE_IMAGE} AS python
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/stowage/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*

# A virtualenv at /opt/stowage with the pinned dependencies, installed offline from the wheels.
FROM python AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY requirements/runtime.txt /src/requirements/runtime.txt
COPY build/wheels/ /wheels/
RUN python3 -m venv /opt/stowage \
 && /opt/stowage/bin/pip install --no-cache-dir --no-index --find-links /wheels \
      -r /src/requirements/runtime.txt

# What the images get of it: the dependencies without the installer.
FROM build AS dependencies
RUN /opt/stowage/bin/python3 -m pip uninstall --yes --quiet pip setuptools

# stowage itself, built by the backend that pyproject.toml names (its wheel is in
# build/wheels too) and installed under /app with the layout of the virtualenv.
FROM build AS stowage
COPY pyproject.toml /src/
COPY operator/ /src/operator/
RUN /opt/stowage/bin/pip wheel --no-cache-dir --no-index --find-links /wheels --no-deps \
      --wheel-dir /dist /src \
 && /opt/stowage/bin/pip install --no-cache-dir --no-index --no-deps --prefix /app /dist/*.whl

# The storage clients and servers; the longest layer, kept above anything stowage changes.
FROM python AS helper
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      glusterfs-client ceph-fuse ceph-common rbd-fuse nfs-common cifs-utils open-iscsi lvm2 \
      xfsprogs e2fsprogs btrfs-progs util-linux mount git openssh-client \
      nfs-ganesha nfs-ganesha-vfs nfs-ganesha-proxy-v4 samba smbclient libnfs-utils libiscsi-bin \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && ln -sf /proc/self/mounts /etc/mtab
# (NFS-Ganesha's VFS FSAL finds the file system of an export through /etc/mtab.)
COPY --from=dependencies /opt/stowage /opt/stowage
COPY --from=stowage /app/ /opt/stowage/
ENTRYPOINT ["stowage"]
CMD ["agent"]

FROM python AS operator
# libiscsi: the userspace initiator that zeroes a released LUN (iscsi wipeOnDelete); libnfs:
# the userspace NFS client with which the CSI controller makes and releases nfs directories.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libiscsi7 libnfs13 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 stowage \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin stowage
# The csi-provisioner sidecar of the chart's operator pod, built from its Go module by
# e2e/scripts/build-binaries.sh and staged in build/bin/ by the image build.
COPY build/bin/csi-provisioner /usr/local/bin/csi-provisioner
COPY --from=dependencies /opt/stowage /opt/stowage
COPY --from=stowage /app/ /opt/stowage/
# Nothing writes outside /tmp (an emptyDir in the chart): the root filesystem can be read-only.
ENV HOME=/tmp
USER 65532:65532
ENTRYPOINT ["stowage"]
CMD ["run"]
