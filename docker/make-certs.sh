#!/usr/bin/env bash
# Writes the TLS material and token files that docker/compose.secure.yaml and
# docker/k8s/secure/ mount, into DIR (made 0700), with openssl:
#   ca.pem ca.key          a CA of your own (ca.key is never mounted)
#   server.pem server.key  the replicas' certificate, signed by it; SAN
#                          IP:127.0.0.1 and IP:::1 (the health checks and
#                          probes dial 127.0.0.1), DNS:localhost, DNS:reluserve
#                          (the name nginx and Prometheus check), the compose
#                          replicas reluserve-1..3 and the Services of
#                          docker/k8s/secure in namespace $RELUSERVE_NAMESPACE
#   client.pem client.key  a client certificate signed by it: what nginx,
#                          Prometheus and the health check / probe present to
#                          the replicas under mutual TLS
#   edge.pem edge.key      nginx's own listener certificate (compose)
#   tokens                 the server's --auth-token-file: one random token
#   client-token           the same token alone, for the clients' --token-file
# EC P-256 keys, valid $RELUSERVE_CERT_DAYS days (default 90). The files are
# 0644 in a 0700 directory: compose bind-mounts them with the host's owner and
# mode, and the containers read them as other users (the replicas as UID
# 10001, nginx as www-data, Prometheus as prometheus); nobody else on the host
# can enter DIR. For production, use your own PKI; this is a starting point.
#
#   docker/make-certs.sh DIR
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
namespace=${RELUSERVE_NAMESPACE:-default}
days=${RELUSERVE_CERT_DAYS:-90}
mkdir -p "$dir"
chmod 0700 "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
leaf() {  # name, subject, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
    -days "$days" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

key ca.key
openssl req -x509 -new -key ca.key -days "$days" -subj "/CN=ReluServe CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem 2>/dev/null
sans="IP:127.0.0.1,IP:::1,DNS:localhost,DNS:reluserve"
sans+=",DNS:reluserve-1,DNS:reluserve-2,DNS:reluserve-3"
for s in reluserve-secure reluserve-secure-headless; do
  sans+=",DNS:$s,DNS:$s.$namespace,DNS:$s.$namespace.svc,DNS:$s.$namespace.svc.cluster.local"
done
leaf server reluserve "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$sans"
leaf client reluserve-client "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
leaf edge localhost "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost"
token=$(openssl rand -hex 32)
printf '# ReluServe bearer tokens, one per line (docker/make-certs.sh)\n%s\n' "$token" >tokens
printf '%s\n' "$token" >client-token
rm -f ca.srl
chmod 0644 ./*.pem ./*.key tokens client-token
chmod 0600 ca.key
echo "make-certs: wrote ca, server, client, edge certificates and tokens to $dir"
