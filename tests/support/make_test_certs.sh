#!/usr/bin/env bash
# Writes throwaway TLS material for the tests into DIR, with openssl:
#   ca.pem ca.key               the test CA
#   server.pem server.key       signed by it: SAN IP:127.0.0.1, IP:::1, DNS:localhost
#   client.pem client.key       a client certificate signed by it
#   other-ca.pem                a second, unrelated CA
#   other-server.pem/.key       a server certificate signed by the other CA
#   other-client.pem/.key       a client certificate signed by the other CA
# EC P-256 keys (fast to make), valid for 2 days.
#
#   tests/support/make_test_certs.sh DIR
set -euo pipefail
dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"

make_ca() {  # name, subject
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

make_leaf() {  # name, ca, subject, extensions
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$1.key" -out "$1.csr" -subj "/CN=$3" 2>/dev/null
  printf '%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'

make_ca ca "ReluServe test CA"
make_leaf server ca localhost "$server_ext"
make_leaf client ca "reluserve test client" "$client_ext"
make_ca other-ca "Another CA"
make_leaf other-server other-ca localhost "$server_ext"
make_leaf other-client other-ca "stranger" "$client_ext"
rm -f ./*.srl
