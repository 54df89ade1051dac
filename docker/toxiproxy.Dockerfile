# Toxiproxy's static server (CGO_ENABLED=0), laid out like the official image (ENTRYPOINT /toxiproxy).
FROM scratch
COPY toxiproxy /toxiproxy
EXPOSE 8474
ENTRYPOINT ["/toxiproxy"]
CMD ["-host=0.0.0.0"]
