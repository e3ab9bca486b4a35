"""Secret random values: API keys, password-reset tokens, invitation secrets.

Not IDs. An ID is public and must only be impossible to enumerate; a secret must be
impossible to guess, is shown once, is stored as a digest, and is compared in constant
time so that response times reveal nothing about how much of a guess was right.
"""

import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits from the operating system's CSPRNG


def new_token(nbytes=TOKEN_BYTES):
    """A URL-safe secret of `nbytes` random bytes (43 characters for 32 bytes)."""
    return secrets.token_urlsafe(nbytes)


def digest(token):
    """What to store instead of the token: a leaked table then reveals no usable secret."""
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token, stored_digest):
    """Whether `token` is the one whose digest was stored, compared in constant time."""
    return hmac.compare_digest(digest(token), stored_digest)
