# Prometheus from Debian (2.42) for compose.yaml; its configuration is
# prometheus.yml and the alert rules alert-rules.yml (compose.yaml mounts
# both read-only over these copies). Context: docker/.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /prometheus && chown prometheus:prometheus /prometheus
COPY prometheus.yml alert-rules.yml /etc/prometheus/
USER prometheus
EXPOSE 9090
# No VOLUME: the time series live and go with the container (a test and demo
# stack); mount a named volume on /prometheus to keep them.
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/prometheus", "--web.listen-address=:9090"]
LABEL org.reluserve.stage=prometheus
