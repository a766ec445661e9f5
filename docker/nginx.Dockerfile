# nginx from Debian (1.22, with the gRPC proxy module) for compose.yaml; its
# configuration is nginx.conf (compose.yaml mounts it read-only over this
# copy). Context: docker/.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /etc/nginx/sites-enabled/* \
 && for d in body proxy fastcgi uwsgi scgi; do mkdir -p /var/lib/nginx/$d; done \
 && chown -R www-data:www-data /var/lib/nginx /var/log/nginx
COPY nginx.conf /etc/nginx/nginx.conf
USER www-data
EXPOSE 8000 8001
STOPSIGNAL SIGQUIT
ENTRYPOINT ["nginx", "-g", "daemon off;"]
LABEL org.reluserve.stage=nginx
