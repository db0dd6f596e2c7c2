#!/usr/bin/python3
"""JWT fixtures for test_jwt.c, made fresh on every run: no private key is committed.

usage: /usr/bin/python3 jwt_fixtures.py gen DIR
           keys made with the openssl CLI in DIR, and DIR/pyjwt.txt: one "NAME TOKEN" line per
           token PyJWT minted with them (see TOKENS below for what each one is)
       /usr/bin/python3 jwt_fixtures.py check FILE
           FILE: "ok|bad ALG KEYFILE TOKEN SUB" lines (tokens test_jwt.c minted); PyJWT
           verifies each with ALG and the key in KEYFILE; exits 0 when every "ok" line
           verifies with that sub and every "bad" one is refused, else prints what differed

Debian's /usr/bin/python3 has python3-jwt (PyJWT 2.6) and python3-cryptography; a pyenv
python3 on PATH may have neither, hence the absolute path.
"""

import os
import subprocess
import sys
import time

import jwt

HS_SECRET = "wspush-test-only-hs-secret-0123456789abcdef0123456789abcdef"  # 58 bytes
AUD, ISS = "wspush", "issuer-1"  # test_jwt.c's policy


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_keys(d):
    """Private keys NAME.pem and public keys NAME.pub, test-only, made here."""
    def genpkey(name, *opts):
        openssl("genpkey", *opts, "-out", os.path.join(d, name + ".pem"))
        openssl("pkey", "-in", os.path.join(d, name + ".pem"), "-pubout",
                "-out", os.path.join(d, name + ".pub"))
    genpkey("rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    genpkey("rsa-other", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
    genpkey("rsa1024", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024")
    genpkey("ec256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    genpkey("ec256b", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
    genpkey("ec384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
    genpkey("k256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1")
    genpkey("ed25519", "-algorithm", "ED25519")
    openssl("pkey", "-in", os.path.join(d, "ec256.pem"), "-aes256", "-passout", "pass:test",
            "-out", os.path.join(d, "ec256-encrypted.pem"))
    openssl("rsa", "-in", os.path.join(d, "rsa.pem"), "-RSAPublicKey_out",
            "-out", os.path.join(d, "rsa-pkcs1.pub"))
    # ec256.pem as `openssl ecparam -genkey` writes it: EC PARAMETERS, then EC PRIVATE KEY.
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-out",
            os.path.join(d, "ec256-traditional.pem"))
    with open(os.path.join(d, "hs.key"), "w") as f:
        f.write(HS_SECRET + "\n")  # the newline an editor adds: the loader drops it


def tokens(d):
    """NAME: (alg, private key file or None for the HS secret, claims, extra headers)."""
    now = int(time.time())
    base = {"sub": "user-1", "exp": now + 3600, "iat": now}

    def c(**kw):
        out = dict(base)
        for k, v in kw.items():
            if v is None:
                out.pop(k, None)
            else:
                out[k] = v
        return out
    t = {}
    for alg, key in (("HS256", None), ("HS384", None), ("HS512", None), ("RS256", "rsa"),
                     ("RS384", "rsa"), ("RS512", "rsa"), ("ES256", "ec256"),
                     ("ES384", "ec384")):
        t["ok-" + alg] = (alg, key, c(sub="user-" + alg), None)
    hs = lambda claims, h=None: ("HS256", None, claims, h)  # noqa: E731
    t["ok-channels"] = hs(c(channels=["news", "sport:eu"]))
    t["ok-channels-empty"] = hs(c(channels=[]))
    t["ok-channels-8"] = hs(c(channels=["c%d" % i for i in range(8)]))
    t["ok-channel-64"] = hs(c(channels=["n" * 64]))
    t["ok-float-exp"] = hs(c(exp=now + 3600.25))
    t["ok-aud-iss"] = hs(c(aud=AUD, iss=ISS))
    t["ok-aud-array"] = hs(c(aud=["other", AUD], iss=ISS))
    t["ok-sub-64"] = hs(c(sub="s" * 64))
    t["ok-sub-utf8"] = hs(c(sub="\u00fc" * 32))  # 64 bytes of UTF-8
    t["ok-kid-typ"] = hs(c(), {"kid": "k1", "typ": "at+jwt"})
    t["bad-sig-hs"] = ("HS256", "other-secret", c(), None)
    t["bad-sig-es"] = ("ES256", "ec256b", c(), None)
    t["bad-sig-rs"] = ("RS256", "rsa-other", c(), None)
    t["alg-none"] = ("none", None, c(), None)
    t["alg-hs384"] = ("HS384", None, c(), None)  # the right secret, another HS alg
    t["alg-rs256"] = ("RS256", "rsa", c(), None)
    t["expired"] = hs(c(exp=now - 3600))
    t["nbf-future"] = hs(c(nbf=now + 3600))
    t["iat-future"] = hs(c(iat=now + 3600))
    t["nbf-past"] = hs(c(nbf=now - 3600))
    t["aud-wrong"] = hs(c(aud="other", iss=ISS))
    t["aud-wrong-array"] = hs(c(aud=["a", "b"], iss=ISS))
    t["aud-longer"] = hs(c(aud=[AUD + "x"], iss=ISS))  # a prefix is no match
    t["aud-missing"] = hs(c(iss=ISS))
    t["aud-number"] = hs(c(aud=7, iss=ISS))
    t["aud-array-number"] = hs(c(aud=[AUD, 7], iss=ISS))
    t["iss-wrong"] = hs(c(aud=AUD, iss="evil"))
    t["iss-missing"] = hs(c(aud=AUD))
    t["iss-longer"] = hs(c(aud=AUD, iss=ISS + "2"))
    t["iss-number"] = hs(c(aud=AUD, iss=1))
    t["sub-missing"] = hs(c(sub=None))
    t["sub-65"] = hs(c(sub="s" * 65))
    t["sub-empty"] = hs(c(sub=""))
    t["sub-number"] = hs(c(sub=12345))
    t["exp-string"] = hs(c(exp="soon"))
    t["exp-missing"] = hs(c(exp=None))
    t["exp-bool"] = hs(c(exp=True))
    t["nbf-string"] = hs(c(nbf="now"))
    t["channels-9"] = hs(c(channels=["c%d" % i for i in range(9)]))
    t["channels-non-string"] = hs(c(channels=["a", 1]))
    t["channels-name-65"] = hs(c(channels=["n" * 65]))
    t["channels-name-empty"] = hs(c(channels=[""]))
    t["channels-string"] = hs(c(channels="news"))
    return t


def gen(d):
    make_keys(d)
    lines = []
    for name, (alg, key, claims, headers) in tokens(d).items():
        if alg == "none":
            secret = None
        elif key is None:
            secret = HS_SECRET
        elif key == "other-secret":
            secret = HS_SECRET + "-other"
        else:
            with open(os.path.join(d, key + ".pem"), "rb") as f:
                secret = f.read()
        tok = jwt.encode(claims, secret, algorithm=alg, headers=headers)
        lines.append("%s %s\n" % (name, tok))
    with open(os.path.join(d, "pyjwt.txt"), "w") as f:
        f.writelines(lines)


def read_key(path):
    with open(path, "rb") as f:
        b = f.read()
    if b.startswith(b"-----BEGIN"):
        return b
    return b[:-2] if b.endswith(b"\r\n") else b[:-1] if b.endswith(b"\n") else b


def check(path):
    failures = 0
    with open(path) as f:
        for n, line in enumerate(f, 1):
            want, alg, keyfile, token, sub = line.split()
            try:
                claims = jwt.decode(token, read_key(keyfile), algorithms=[alg],
                                    options={"verify_aud": False})
                got = "ok" if claims.get("sub") == sub else "bad"
            except jwt.InvalidTokenError:
                got = "bad"
            if got != want:
                failures += 1
                print("line %d: %s %s: PyJWT says %s" % (n, alg, want, got))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "gen":
        gen(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
