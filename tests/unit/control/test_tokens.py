import base64
import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callstream.control.tokens import (
    TokenClaims,
    check_control_auth,
    control_auth,
    new_jti,
    sign_token,
    verify_token,
    ws_path,
)
from callstream.exceptions import AuthError, ConfigError, TokenError

KEY = b"k" * 32
CLAIMS = TokenClaims(jti=new_jti(), call_uuid="call-1", exp=2_000_000_000, agent="echo")


def test_round_trip_and_path_safety():
    token = sign_token(CLAIMS, KEY)
    assert verify_token(token, KEY, now=1_900_000_000) == CLAIMS
    assert ws_path(token) == "/v1/audio/" + token
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


def test_signature_is_hmac_sha256_of_the_body():
    body, mac = sign_token(CLAIMS, KEY).split(".")
    expected = hmac.new(KEY, body.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4)) == expected
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    assert claims["call_uuid"] == "call-1" and claims["agent"] == "echo"


def test_forged_expired_and_malformed_tokens_are_refused():
    token = sign_token(CLAIMS, KEY)
    with pytest.raises(TokenError, match="bad signature"):
        verify_token(token, b"x" * 32, now=0)
    _body, mac = token.split(".")
    other = sign_token(TokenClaims(jti="j", call_uuid="call-2", exp=2_000_000_000), KEY)
    with pytest.raises(TokenError, match="bad signature"):
        verify_token(other.split(".")[0] + "." + mac, KEY, now=0)
    with pytest.raises(TokenError, match="expired"):
        verify_token(token, KEY, now=2_000_000_000)
    for bad in ["", "abc", "a.b.c", "x" * 600, "!!.??"]:
        with pytest.raises(TokenError, match=r"malformed|bad signature"):
            verify_token(bad, KEY, now=0)


@given(st.text(max_size=200))
def test_any_string_is_refused_without_crashing(text):
    with pytest.raises(TokenError):
        verify_token(text, KEY, now=0)


def test_signed_garbage_claims_are_malformed():
    body = base64.urlsafe_b64encode(b'{"jti": 5}').rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(KEY, body.encode(), hashlib.sha256).digest())
    with pytest.raises(TokenError, match="malformed"):
        verify_token(body + "." + mac.rstrip(b"=").decode(), KEY, now=0)


def test_a_claim_of_a_newer_version_is_ignored_so_a_rolling_deploy_keeps_its_calls():
    """A task still on the last version verifies a token a newer Lambda signed: a claim it does
    not know is ignored (the signature vouches for it), the ones it knows hold."""
    claims = {"jti": "j", "call_uuid": "call-1", "exp": 2_000_000_000, "voice": "new-claim"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    mac = base64.urlsafe_b64encode(hmac.new(KEY, body.encode(), hashlib.sha256).digest())
    verified = verify_token(body + "." + mac.rstrip(b"=").decode(), KEY, now=0)
    assert (verified.jti, verified.call_uuid, verified.agent) == ("j", "call-1", "none")


def test_short_key_is_refused():
    with pytest.raises(ConfigError, match="16 bytes"):
        sign_token(CLAIMS, b"short")


def test_control_auth():
    header = "Bearer " + control_auth("s-1", KEY)
    check_control_auth("s-1", header, KEY)
    for bad in [
        "",
        "Bearer",
        "Basic " + control_auth("s-1", KEY),
        "Bearer " + control_auth("s-2", KEY),
    ]:
        with pytest.raises(AuthError):
            check_control_auth("s-1", bad, KEY)
