"""Signed prediction tokens: what a prediction said, verifiable by any pod holding the same key.

A token lets a label count against the revision and variant that made the prediction, on
whatever pod receives it and after restarts, without a shared store. Layout, before base64url
without padding (integers big-endian):

    version (1) | model tag (2) | len (1) revision | len (1) variant | issued (4, unix seconds)
    | nonce (8) | kind (1) | value (0..12) | HMAC-SHA256 (first 16 bytes)

The MAC covers the model name and every byte before it. The nonce keeps two predictions of the
same value in the same second apart (else the second label would look like a replay). `kind`
carries the task (bit 7 set: regression) and how the value is encoded (low bits, `_INT` ...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

VERSION = 1
MAC_BYTES = 16
NONCE_BYTES = 8
MIN_KEY_BYTES = 16
# Longest a token we issue can be (two 255-byte names): anything longer is refused before
# decoding, so a hostile body costs no more than a valid one.
MAX_TOKEN_CHARS = 800
# String predictions longer than this travel as a digest, compared with a digest of the label;
# so a value takes at most 12 bytes and a token of usual names stays under 100 characters.
MAX_INLINE_STRING = 12
DIGEST_BYTES = 12
# A pod whose clock runs behind the issuer's still accepts its tokens within this margin.
MAX_CLOCK_SKEW_S = 300.0

_REGRESSION = 0x80
_INT, _FLOAT32, _FLOAT64, _STR, _STR_DIGEST, _FALSE, _TRUE = range(1, 8)
_HEAD = struct.Struct(">BH")
_ISSUED = struct.Struct(">I")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))

Scalar = int | float | str | bool


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the flag."""


def read_key(path: Path) -> bytes:
    """The raw bytes of a key file (a mounted Secret key): at least MIN_KEY_BYTES of them."""
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"--feedback-key-file {str(path)!r}: cannot read it: {exc}") from exc
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(
            f"--feedback-key-file {str(path)!r} holds {len(key)} bytes; a key needs at least "
            f"{MIN_KEY_BYTES}"
        )
    return key


@dataclass(frozen=True, slots=True)
class StringDigest:
    """A string prediction too long to carry: the first DIGEST_BYTES of its SHA-256."""

    digest: bytes

    @staticmethod
    def of(text: str) -> StringDigest:
        return StringDigest(hashlib.sha256(text.encode()).digest()[:DIGEST_BYTES])


@dataclass(frozen=True, slots=True)
class Claims:
    """What a valid token says."""

    revision: str
    variant: str
    task: str  # "classification" | "regression"
    value: Scalar | StringDigest
    issued_at: int
    mac: bytes


class TokenRejected(Exception):
    """A token that does not count; `reason` is one of the codes docs/runtime.md lists."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def model_tag(model: str) -> int:
    # Public and tiny: only there to name "a token of another model" apart from a forgery.
    return int.from_bytes(hashlib.sha256(model.encode()).digest()[:2], "big")


def _name(text: str, what: str) -> bytes:
    raw = text.encode()
    if not raw or len(raw) > 255:
        raise ValueError(f"a token's {what} must be 1..255 bytes, got {len(raw)}")
    return bytes([len(raw)]) + raw


def _varint(value: int) -> bytes:
    zigzag = value * 2 if value >= 0 else -value * 2 - 1
    out = bytearray()
    while zigzag >= 0x80:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _read_varint(raw: bytes) -> int:
    if not raw or len(raw) > 10 or raw[-1] & 0x80 or any(b & 0x80 == 0 for b in raw[:-1]):
        raise TokenRejected("malformed")
    zigzag = 0
    for shift, byte in enumerate(raw):
        zigzag |= (byte & 0x7F) << (7 * shift)
    return zigzag >> 1 if zigzag & 1 == 0 else -(zigzag >> 1) - 1


def encode_value(value: Scalar) -> bytes:
    """kind (without the task bit) and the value bytes."""
    if value is True:
        return bytes([_TRUE])
    if value is False:
        return bytes([_FALSE])
    if isinstance(value, int):
        if not -(1 << 64) < value < (1 << 64):
            raise ValueError("integer predictions beyond 64 bits cannot be carried in a token")
        return bytes([_INT]) + _varint(value)
    if isinstance(value, float):
        try:
            packed = _F32.pack(value)
        except OverflowError:
            packed = b""
        # float32 outputs (the usual case) round-trip exactly in four bytes.
        if packed and _F32.unpack(packed)[0] == value:
            return bytes([_FLOAT32]) + packed
        return bytes([_FLOAT64]) + _F64.pack(value)
    raw = str(value).encode()
    if len(raw) <= MAX_INLINE_STRING:
        return bytes([_STR]) + raw
    return bytes([_STR_DIGEST]) + StringDigest.of(str(value)).digest


def _decode_value(kind: int, raw: bytes) -> Scalar | StringDigest:
    if kind == _INT:
        return _read_varint(raw)
    if kind == _FLOAT32 and len(raw) == 4:
        return float(_F32.unpack(raw)[0])
    if kind == _FLOAT64 and len(raw) == 8:
        return float(_F64.unpack(raw)[0])
    if kind == _STR and len(raw) <= MAX_INLINE_STRING:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise TokenRejected("malformed") from None
    if kind == _STR_DIGEST and len(raw) == DIGEST_BYTES:
        return StringDigest(raw)
    if kind in (_FALSE, _TRUE) and not raw:
        return kind == _TRUE
    raise TokenRejected("malformed")


def _b64decode(token: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise TokenRejected("malformed") from None
    # The decoder skips stray characters and ignores the spare bits of the last one; only the
    # canonical spelling of the bytes is a token, so no two strings carry the same MAC.
    if base64.urlsafe_b64encode(raw).rstrip(b"=") != token.encode():
        raise TokenRejected("malformed")
    return raw


class TokenCodec:
    """Issues tokens for this pod's (model, revision, variant) and verifies anyone's."""

    def __init__(
        self,
        key: bytes,
        model: str,
        revision: str,
        variant: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(f"a token key needs at least {MIN_KEY_BYTES} bytes")
        self.model = model
        self.clock = clock
        self._tag = model_tag(model)
        model_raw = model.encode()
        # HMAC-SHA256 (RFC 2104) from hashlib states with the padded key already absorbed: the
        # same MAC as `hmac.new(key, context + body, sha256)` in half the time per token. The
        # model name is that context: bound into every MAC without travelling in the token.
        padded = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
        self._inner = hashlib.sha256(padded.translate(_IPAD))
        self._inner.update(struct.pack(">H", len(model_raw)) + model_raw)
        self._outer = hashlib.sha256(padded.translate(_OPAD))
        # Nonces need only be unique, not secret: a random salt per codec and a counter is
        # unique within the process, and across pods only colliding salts (1 in 2**32) could
        # make two tokens of the same value, second and revision equal.
        self._salt = int.from_bytes(os.urandom(4), "big")
        self._serial = itertools.count()
        self._nonce = struct.Struct(">IL")
        # Encoded (kind, value) bytes of recent class predictions: the same few values recur.
        self._encoded: dict[tuple[type, Scalar, int], bytes] = {}
        self._prefix = (
            _HEAD.pack(VERSION, self._tag) + _name(revision, "revision") + _name(variant, "variant")
        )

    def _sign(self, body: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(body)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:MAC_BYTES]

    def _encode(self, value: Scalar, task_bit: int) -> bytes:
        cache_key = (value.__class__, value, task_bit)  # 1 and True are different values
        encoded = self._encoded.get(cache_key)
        if encoded is None:
            raw = encode_value(value)
            encoded = bytes([raw[0] | task_bit]) + raw[1:]
            if not isinstance(value, float) and len(self._encoded) < 4096:
                self._encoded[cache_key] = encoded
        return encoded

    def issue(self, task: str, values: Sequence[Scalar], now: float | None = None) -> list[str]:
        """One token per row; all rows of a request share the issue time."""
        issued = int(self.clock() if now is None else now)
        head = self._prefix + _ISSUED.pack(issued & 0xFFFFFFFF)
        task_bit = _REGRESSION if task == "regression" else 0
        sign, encode, b64 = self._sign, self._encode, base64.urlsafe_b64encode
        nonce, serial = self._nonce.pack, self._serial
        tokens: list[str] = []
        for value in values:
            body = head + nonce(self._salt, next(serial) & 0xFFFFFFFF) + encode(value, task_bit)
            tokens.append(b64(body + sign(body)).rstrip(b"=").decode("ascii"))
        return tokens

    def verify(self, token: str, retention_s: float, now: float | None = None) -> Claims:
        """The claims of a token this key signed for this model, issued within `retention_s`."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenRejected("malformed")
        raw = _b64decode(token)
        # version, tag, two name lengths, issued, nonce, kind, MAC: the least a token holds.
        if len(raw) < 3 + 2 + 4 + NONCE_BYTES + 1 + MAC_BYTES or raw[0] != VERSION:
            raise TokenRejected("malformed")
        if _HEAD.unpack_from(raw)[1] != self._tag:
            raise TokenRejected("other_model")
        body, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(self._sign(body), mac):
            raise TokenRejected("signature")
        # Signed by us, so well formed unless an issuer had a bug; still parse defensively.
        try:
            at = 3
            revision = body[at + 1 : at + 1 + body[at]].decode()
            at += 1 + body[at]
            variant = body[at + 1 : at + 1 + body[at]].decode()
            at += 1 + body[at]
            (issued,) = _ISSUED.unpack_from(body, at)
            at += 4 + NONCE_BYTES
            kind = body[at]
        except (IndexError, struct.error, UnicodeDecodeError):
            raise TokenRejected("malformed") from None
        if not revision or not variant:
            raise TokenRejected("malformed")
        value = _decode_value(kind & ~_REGRESSION, body[at + 1 :])
        age = (self.clock() if now is None else now) - issued
        if age > retention_s:
            raise TokenRejected("expired")
        if age < -MAX_CLOCK_SKEW_S:
            raise TokenRejected("future")
        task = "regression" if kind & _REGRESSION else "classification"
        return Claims(revision, variant, task, value, issued, mac)


class SeenTokens:
    """MACs of tokens this pod has counted, oldest first, bounded by count and by age.

    Only this pod's memory: a token replayed to another pod within retention counts again.
    """

    def __init__(self, max_entries: int, retention_s: float) -> None:
        self._seen: OrderedDict[bytes, int] = OrderedDict()
        self.max_entries = max_entries
        self.retention_s = retention_s

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, mac: bytes) -> bool:
        return mac in self._seen

    def add(self, claims: Claims, now: float) -> None:
        seen = self._seen
        seen[claims.mac] = claims.issued_at
        # A forgotten token older than retention is refused as expired anyway.
        horizon = now - self.retention_s
        while seen and (len(seen) > self.max_entries or next(iter(seen.values())) < horizon):
            seen.popitem(last=False)
