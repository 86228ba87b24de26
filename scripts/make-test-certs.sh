#!/bin/sh
# Make a test PKI for DICOM TLS with openssl (docs/tls.md; the tests run exactly this script).
#
#   scripts/make-test-certs.sh OUTDIR [HOST]
#
# OUTDIR gets (PEM files; keys unencrypted: test use only):
#   ca.pem ca.key                  the test CA
#   server.pem server.key          a server certificate for HOST (default localhost) and 127.0.0.1
#   client.pem client.key          a client certificate (CN=openigrt-client)
#   expired-server.pem             server.key's certificate, valid Jan 2020 only (expired)
#   expired-client.pem             client.key's certificate, valid Jan 2020 only (expired)
#   other-ca.pem other-ca.key      a second CA that nobody trusts
#   unknown-client.pem             client.key's certificate signed by the other CA
#   wrong-host.pem                 server.key's certificate for another host name only
# RSA 2048-bit keys and SHA-256 signatures (TLS 1.2 with the BCP 195 profile needs RSA).
set -eu
out=${1:?usage: make-test-certs.sh OUTDIR [HOST]}
host=${2:-localhost}
mkdir -p "$out"
cd "$out"

# 1. the CA: a self-signed certificate allowed to sign others
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=OpenIGRT Test CA" \
    -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# 2. a server and a client certificate signed by the CA (the server's names the host and 127.0.0.1)
printf 'subjectAltName=DNS:%s,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$host" > server.ext
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' > client.ext
openssl req -newkey rsa:2048 -nodes -subj "/CN=$host" -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1001 \
    -extfile server.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=openigrt-client" -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -sha256 -days 825 -in client.csr -CA ca.pem -CAkey ca.key -set_serial 0x1002 \
    -extfile client.ext -out client.pem 2>/dev/null

# 3. expired certificates: `openssl ca` with a validity period in the past (no faketime needed)
mkdir -p ca-db
: > ca-db/index.txt
echo 2001 > ca-db/serial
cat > ca.cnf <<'EOF'
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
EOF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr -extfile server.ext -notext \
    -startdate 20200101000000Z -enddate 20200201000000Z -out expired-server.pem 2>/dev/null
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in client.csr -extfile client.ext -notext \
    -startdate 20200101000000Z -enddate 20200201000000Z -out expired-client.pem 2>/dev/null

# 4. a certificate for another host name only (host name verification must refuse it)
printf 'subjectAltName=DNS:not-%s.invalid\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$host" > wrong-host.ext
openssl x509 -req -sha256 -days 825 -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1003 \
    -extfile wrong-host.ext -out wrong-host.pem 2>/dev/null

# 5. a second CA nobody trusts, and a client certificate it signed
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -subj "/CN=Unknown Test CA" \
    -keyout other-ca.key -out other-ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl x509 -req -sha256 -days 825 -in client.csr -CA other-ca.pem -CAkey other-ca.key -set_serial 0x3001 \
    -extfile client.ext -out unknown-client.pem 2>/dev/null

rm -f server.csr client.csr
chmod 600 ./*.key
echo "test PKI in $out: ca.pem server.pem/key client.pem/key expired-*.pem wrong-host.pem other-ca.pem unknown-client.pem"
