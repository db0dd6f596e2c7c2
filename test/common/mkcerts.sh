#!/bin/sh
# Makes the TLS test certificates in DIR with the openssl CLI, at test time: no private key is
# ever committed. Everything is for CN/SAN localhost and 127.0.0.1, valid for 2 days.
#
# usage: test/common/mkcerts.sh DIR
#   ca.pem ca.key            root CA (ECDSA P-256), self-signed
#   ec.pem ec.key            server, ECDSA P-256, signed by the root
#   rsa.pem rsa.key          server, RSA-2048, signed by the root
#   int.pem int.key          intermediate CA (ECDSA P-256), signed by the root
#   chain.pem chain.key      server (ECDSA P-256) signed by the intermediate, then the
#                            intermediate: a chain file that verifies against ca.pem only
#   leaf.pem                 the chain's server certificate alone (fails without int.pem)
#   other.key                a key that matches no certificate
#   other-ca.pem             an unrelated root, for a client that does not trust ours
#   garbage.pem              a file that is not PEM
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
d=$1
mkdir -p "$d"
cd "$d"
umask 077

ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() { # name key subject [issuer issuer-key]
    if [ $# -eq 3 ]; then
        openssl req -x509 -new -key "$2" -subj "$3" -days 2 -out "$1" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    else
        openssl req -new -key "$2" -subj "$3" -CA "$4" -CAkey "$5" -days 2 -out "$1" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    fi
}
leaf() { # name key issuer issuer-key
    openssl req -new -key "$2" -subj /CN=localhost -CA "$3" -CAkey "$4" -days 2 -out "$1" \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=CA:FALSE \
        -addext extendedKeyUsage=serverAuth
}

ec_key ca.key
ca ca.pem ca.key "/CN=wspush test root"
ec_key ec.key
leaf ec.pem ec.key ca.pem ca.key
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key 2>/dev/null
leaf rsa.pem rsa.key ca.pem ca.key
ec_key int.key
ca int.pem int.key "/CN=wspush test intermediate" ca.pem ca.key
ec_key chain.key
leaf leaf.pem chain.key int.pem int.key
cat leaf.pem int.pem >chain.pem
ec_key other.key
ec_key other-ca.key
ca other-ca.pem other-ca.key "/CN=someone else"
printf 'this is not a PEM file\n' >garbage.pem
