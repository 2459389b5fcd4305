#!/bin/bash
# make_vectors.sh -- how the RFC 3161 vectors in this directory were made (kept for review and
# regeneration; tests read the files, they do not run this). Every token is OpenSSL's own
# `openssl ts -reply`, so sinkd's checks are tested against an implementation it did not write.
# Needs openssl and faketime (Debian packages). Run from this directory.
set -euo pipefail
rm -f ./*.pem ./*.tsq ./*.tsr ./*.txt serial
# The checkpoint: C2SP worked example B (the 8-leaf test tree), as log/checkpoints/8 holds it.
printf 'example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n\xe2\x80\x94 example.com/testlog OBSjYCxDpu8fyr7NuKXgNXWu25Ks4wrlnX0eQ6wwwqxrq024FLZEvzeTT+bFbmvjSu2f7p78iGvweJAOSG9YRH8huA0=\n' >checkpoint
k=$(mktemp -d)
trap 'rm -rf "$k"' EXIT
ca() { # name subject (valid from 2020, so it was valid when the 2024 token was signed)
    faketime "2020-01-01 00:00:00" openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$k/$1.key" \
        -out "$1.pem" -days 36500 -subj "$2" -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
ca ca "/CN=sinkd test TSA root"
ca other-ca "/CN=some other root"
printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\n' >"$k/ext"
tsa_cert() { # name subject days [faketime]
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$k/$1.key" \
        -out "$k/$1.csr" -subj "$2" 2>/dev/null
    ${4:+faketime "$4"} openssl x509 -req -in "$k/$1.csr" -CA ca.pem -CAkey "$k/ca.key" \
        -CAcreateserial -CAserial "$k/ca.srl" -days "$3" -extfile "$k/ext" -out "$1.pem" 2>/dev/null
}
tsa_cert tsa "/O=sinkd tests/CN=sinkd test TSA" 36500
# Valid for 30 days in 2024 only: its tokens from then must still verify (judged at genTime).
tsa_cert tsa-2024 "/O=sinkd tests/CN=sinkd test TSA 2024" 30 "2024-03-01 00:00:00"
cat >"$k/tsa.cnf" <<CNF
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = $k/serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
accuracy = secs:1
ess_cert_id_alg = sha256
ess_cert_id_chain = no
CNF
echo 01 >"$k/serial"
reply() { # tsa query out [faketime]
    ${4:+faketime "$4"} openssl ts -reply -queryfile "$2" -inkey "$k/$1.key" -signer "$1.pem" \
        -config "$k/tsa.cnf" -out "$3" 2>/dev/null
}
openssl ts -query -data checkpoint -sha256 -cert -out req.tsq
openssl ts -query -data checkpoint -sha256 -cert -out req-other.tsq # same imprint, another nonce
openssl ts -query -data checkpoint -sha256 -out req-nocert.tsq
openssl ts -query -data checkpoint -sha1 -cert -out req-sha1.tsq
reply tsa req.tsq resp.tsr
reply tsa req-nocert.tsq resp-nocert.tsr
reply tsa req-sha1.tsq resp-rejected.tsr
reply tsa-2024 req.tsq resp-2024.tsr "2024-03-10 12:00:00"
# What OpenSSL itself says, for the tests to compare with.
for r in resp resp-2024; do
    openssl ts -reply -in "$r.tsr" -text 2>/dev/null | sed -n 's/^Time stamp: //p' >"$r.time.txt"
    date -u -d "$(head -1 "$r.time.txt")" +%s >>"$r.time.txt" # the same, as POSIX seconds
    openssl ts -verify -data checkpoint -in "$r.tsr" -CAfile ca.pem -attime "$(date -d "$(head -1 "$r.time.txt")" +%s)" >/dev/null 2>&1 &&
        echo "openssl ts -verify: OK" >>"$r.time.txt" || echo "openssl ts -verify: FAILED" >>"$r.time.txt"
done
ls -l
