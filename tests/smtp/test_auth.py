"""SASL wire forms (from the RFCs' and providers' own examples) and the choice of mechanism."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer_gui.smtp import auth
from mailer_gui.smtp.errors import AuthenticationError, SecurityPolicyError
from mailer_gui.smtp.settings import AuthMethod
from mailer_gui.smtp.transcript import Transcript


def test_plain_wire_form() -> None:
    assert base64.b64decode(auth.plain_response("tim", "tanstaaf")) == b"\0tim\0tanstaaf"


def test_cram_md5_rfc2195_example() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    response = auth.cram_md5_response("tim", "tanstaaftanstaaf", challenge)
    assert base64.b64decode(response) == b"tim b913a602c7eda7a495b4e6e7334d3890"


def test_cram_md5_bad_challenge() -> None:
    with pytest.raises(AuthenticationError):
        auth.cram_md5_response("tim", "pw", b"not base64!!")


def test_xoauth2_google_example() -> None:
    # developers.google.com/gmail/imap/xoauth2-protocol
    response = auth.xoauth2_response(
        "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    )
    assert response == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52"
        b"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_login_answers_in_order_whatever_the_prompt() -> None:
    mechanism = auth.mechanism_for("LOGIN", auth.Credentials("ann", "pw"))
    assert mechanism.initial() is None
    assert base64.b64decode(mechanism.respond(b"VXNlcm5hbWU6")) == b"ann"
    assert base64.b64decode(mechanism.respond(b"")) == b"pw"


@pytest.mark.parametrize(
    ("offered", "configured", "expected"),
    [
        (("PLAIN", "LOGIN", "CRAM-MD5"), AuthMethod.AUTO, "CRAM-MD5"),
        (("LOGIN", "PLAIN"), AuthMethod.AUTO, "PLAIN"),
        (("LOGIN",), AuthMethod.AUTO, "LOGIN"),
        (("PLAIN", "CRAM-MD5"), AuthMethod.PLAIN, "PLAIN"),
        (("XOAUTH2", "PLAIN"), AuthMethod.XOAUTH2, "XOAUTH2"),
        (("plain",), AuthMethod.AUTO, "PLAIN"),
    ],
)
def test_choice(offered: tuple[str, ...], configured: AuthMethod, expected: str) -> None:
    assert (
        auth.choose_mechanism(offered, configured, tls_active=True, allow_insecure=False)
        == expected
    )


def test_fixed_mechanism_not_offered_is_an_error_not_a_switch() -> None:
    with pytest.raises(AuthenticationError, match="offers only: LOGIN, PLAIN"):
        auth.choose_mechanism(
            ("PLAIN", "LOGIN"), AuthMethod.CRAM_MD5, tls_active=True, allow_insecure=False
        )


def test_nothing_usable_offered() -> None:
    with pytest.raises(AuthenticationError, match="GSSAPI"):
        auth.choose_mechanism(("GSSAPI",), AuthMethod.AUTO, tls_active=True, allow_insecure=False)


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"])
def test_no_auth_over_cleartext_unless_allowed(name: str) -> None:
    configured = AuthMethod(name.lower())
    with pytest.raises(SecurityPolicyError):
        auth.choose_mechanism((name,), configured, tls_active=False, allow_insecure=False)
    assert auth.choose_mechanism((name,), configured, tls_active=False, allow_insecure=True)


@given(
    password=st.text(min_size=1, max_size=40).filter(
        lambda s: len(s.encode()) >= 3 and s not in "*****"  # the redaction marker
    ),
    username=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=20),
)
def test_transcript_scrubs_secret_in_every_encoding(password: str, username: str) -> None:
    transcript = Transcript()
    transcript.add_secret(password)
    plain = auth.plain_response(username, password).decode()
    login = base64.b64encode(password.encode()).decode()
    oauth = auth.xoauth2_response(username, password).decode()
    for line in (f"server echoed {password} back", plain, login, oauth):
        transcript.note(line)
    text = transcript.render()
    assert password not in text
    assert login not in text
