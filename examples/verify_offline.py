#!/usr/bin/env python3
"""Verify a G60 talent credential (or a recognition attestation) without our code.

Only PyJWT (with its `crypto` extra, for Ed25519) and the standard library:
the issuer's keys come from the city's JWKS, the status from the W3C
Bitstring Status List credentials the token names, both over plain HTTP.

    pip install 'pyjwt[crypto]'
    python3 examples/verify_offline.py --server http://127.0.0.1:50052 TOKEN   # or - for stdin

--server is the corridor's HTTP port you trust (where `/v1/cities/<city>/jwks`
is served). Exit status: 0 valid, 1 not valid (bad signature, not a talent
credential or attestation, outside its validity window, revoked, suspended,
an attestation of a REJECTED decision), 2 could not check (usage, network, a
status list that does not verify).
"""

import argparse
import base64
import gzip
import json
import re
import sys
import urllib.error
import urllib.request

import jwt

LEEWAY = 60  # seconds of clock skew tolerated


class CannotCheck(Exception):
    """The check could not be run (network, malformed answer)."""


def fetch(url):
    if not url.startswith(("http://", "https://")):
        raise CannotCheck(f"{url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()
    except (urllib.error.URLError, OSError) as e:
        raise CannotCheck(f"GET {url}: {e}") from e


def city_of(issuer):
    prefix = "urn:g60:city:"
    if not isinstance(issuer, str) or not re.fullmatch(re.escape(prefix) + r"[a-z0-9-]{1,32}", issuer):
        raise jwt.InvalidTokenError(f"issuer {issuer!r} is not a corridor city")
    return issuer[len(prefix):]


def verify_jws(token, server, typ):
    """Checks the signature with the issuing city's published keys; returns the claims."""
    header = jwt.get_unverified_header(token)
    if header.get("typ") != typ or header.get("alg") != "EdDSA":
        raise jwt.InvalidTokenError(f"header {header} is not typ {typ}, alg EdDSA")
    city = city_of(jwt.decode(token, options={"verify_signature": False}).get("iss"))
    jwks = json.loads(fetch(f"{server}/v1/cities/{city}/jwks"))
    jwk = next((k for k in jwks["keys"] if k.get("kid") == header.get("kid")), None)
    if jwk is None:
        raise jwt.InvalidTokenError(f"key {header.get('kid')!r} is not one of {city}'s keys")
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        options={"require": ["iss", "iat", "nbf"], "verify_aud": False},
        leeway=LEEWAY,
    )
    if claims.get("issuer") != claims["iss"]:
        raise jwt.InvalidTokenError("issuer and iss differ")
    # The key must have been current when the token was issued.
    if claims["iat"] < jwk.get("nbf", 0) - LEEWAY or claims["iat"] > jwk.get("exp", 2**62) + LEEWAY:
        raise jwt.InvalidTokenError(f"issued outside the signing window of key {jwk['kid']}")
    return city, claims


def bit(encoded_list, index):
    if not encoded_list.startswith("u"):
        raise CannotCheck("encodedList is not multibase base64url")
    raw = encoded_list[1:]
    bits = gzip.decompress(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    if index // 8 >= len(bits):
        raise CannotCheck(f"index {index} is past the list")
    return bits[index // 8] >> (7 - index % 8) & 1 == 1  # index 0: left-most bit


def status(entry, server, city):
    """True when the entry's bit is set, checked against the signed list."""
    url = entry["statusListCredential"]
    try:
        list_city, lst = verify_jws(fetch(url), server, "vc+jwt")
    except jwt.PyJWTError as e:
        raise CannotCheck(f"the status list {url} does not verify: {e}") from e
    subject = lst["credentialSubject"]
    if list_city != city or lst.get("id") != url or "BitstringStatusListCredential" not in lst["type"]:
        raise CannotCheck(f"{url} is not {city}'s status list")
    if subject.get("statusPurpose") != entry["statusPurpose"]:
        raise CannotCheck(f"{url} is not a {entry['statusPurpose']} list")
    return bit(subject["encodedList"], int(entry["statusListIndex"]))


def verify(token, server):
    """Returns (valid, lines of a report)."""
    report = []
    try:
        city, claims = verify_jws(token, server, "vc+jwt")
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as e:
        return False, [f"validity window: FAILED ({e})"]
    except jwt.PyJWTError as e:
        return False, [f"signature: FAILED ({e})"]
    kinds = claims.get("type", [])
    report.append(f"signature: passed ({' '.join(kinds)} issued by {city})")
    subject = claims.get("credentialSubject", {})
    valid = True
    if "RecognitionAttestation" in kinds:
        r, q = subject["recognition"], subject["qualification"]
        report.append(
            f"recognition: {r['outcome']} of {q['category']} {q['series']} level "
            f"{q['level']} from {r['sourceCity']} in {r['targetCity']}"
        )
        if r["outcome"] == "REJECTED":
            valid = False
            report.append("recognition: FAILED (the decision was REJECTED)")
    elif "TalentCredential" in kinds:
        q = subject["qualification"]
        report.append(f"credential: {subject['name']}, {q['title']} ({q['category']}, level {q['level']})")
    else:
        return False, report + [f"type: FAILED ({kinds} is not a talent credential or a recognition attestation)"]
    until = claims.get("validUntil", "no end")
    report.append(f"validity window: passed (from {claims.get('validFrom')} until {until})")
    entries = claims.get("credentialStatus", [])
    if not entries:
        report.append("status: not published for this token (check it online)")
    for e in entries:
        if status(e, server, city):
            valid = False
            word = "revoked" if e["statusPurpose"] == "revocation" else "suspended"
            report.append(f"status: FAILED ({word}: bit {e['statusListIndex']} of {e['statusListCredential']})")
        else:
            report.append(f"status: passed (not {e['statusPurpose']}, bit {e['statusListIndex']})")
    return valid, report


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("token", help="the VC-JWT, or - to read it from stdin")
    p.add_argument("--server", default="http://127.0.0.1:50052", help="the corridor's HTTP port")
    args = p.parse_args()
    token = (sys.stdin.read() if args.token == "-" else args.token).strip()
    try:
        valid, report = verify(token, args.server.rstrip("/"))
    except (CannotCheck, KeyError, ValueError, OSError) as e:
        print(f"could not check: {e}", file=sys.stderr)
        return 2
    print("\n".join(report))
    print("VALID" if valid else "NOT VALID")
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
