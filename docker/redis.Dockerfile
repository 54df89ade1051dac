# Redis from the host's redis-server and the libraries ldd lists (build-images.sh lays out rootfs/).
# Same binary path and entry as the official image, so `redis-server ARGS` works with either.
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
