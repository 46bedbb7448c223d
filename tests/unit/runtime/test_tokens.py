"""Signed prediction tokens: the codec, and labels counted against the token's revision."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
from modelship_runtime.server import cli
from modelship_runtime.server.feedback import (
    MAX_REJECTED_SHOWN,
    PredictionLog,
    TokenLedger,
    apply_feedback,
    parse_feedback,
)
from modelship_runtime.server.metrics import MAX_ACCURACY_SERIES, RuntimeMetrics
from modelship_runtime.server.tokens import (
    MAX_TOKEN_CHARS,
    KeyFileError,
    StringDigest,
    TokenCodec,
    TokenRejected,
    read_key,
)

KEY = bytes(range(32))
NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def codec(
    key: bytes = KEY, model: str = "iris", revision: str = "3f2a9c01bd", variant: str = "fp32"
) -> TokenCodec:
    return TokenCodec(key, model, revision, variant, clock=lambda: NOW)


def reason(codec_: TokenCodec, token: str, retention_s: float = 3600, now: float = NOW) -> str:
    with pytest.raises(TokenRejected) as info:
        codec_.verify(token, retention_s, now)
    return info.value.reason


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("task", "value"),
    [
        ("classification", 0),
        ("classification", 3),
        ("classification", -12345),
        ("classification", 2**64 - 1),
        ("classification", True),
        ("classification", False),
        ("classification", "setosa"),
        ("classification", "é" * 6),
        ("regression", 1.5),
        ("regression", 0.1),
        ("regression", -3e300),
        ("regression", 7),
    ],
)
def test_round_trip(task: str, value: object) -> None:
    c = codec(variant="int8-dynamic")
    (token,) = c.issue(task, [value])  # type: ignore[list-item]
    claims = c.verify(token, 3600)
    assert (claims.revision, claims.variant, claims.task) == ("3f2a9c01bd", "int8-dynamic", task)
    assert claims.value == value and type(claims.value) is type(value)
    assert claims.issued_at == int(NOW)
    assert len(token) < 100 and token.isascii() and "=" not in token and "," not in token


@pytest.mark.parametrize("key", [KEY, b"k" * 16, bytes(range(100))])
def test_the_mac_is_hmac_sha256_over_the_model_and_the_body(key: bytes) -> None:
    (token,) = codec(key=key).issue("classification", [1])
    raw = _raw(token)
    expected = hmac.new(key, b"\x00\x04iris" + raw[:-16], hashlib.sha256).digest()[:16]
    assert raw[-16:] == expected


def test_long_strings_travel_as_a_digest_compared_with_the_label() -> None:
    c = codec()
    name = "a-class-name-much-longer-than-thirty-two-bytes"
    (token,) = c.issue("classification", [name])
    assert len(token) < 100
    assert c.verify(token, 3600).value == StringDigest.of(name)


def test_one_token_per_row_each_distinct() -> None:
    tokens = codec().issue("classification", [1, 1, 2])
    assert len(tokens) == 3 and len(set(tokens)) == 3
    assert [codec().verify(t, 3600).value for t in tokens] == [1, 1, 2]


def test_tampering_with_any_byte_or_character_is_refused() -> None:
    c = codec()
    (token,) = c.issue("classification", [2])
    raw = _raw(token)
    for i in range(len(raw)):
        for flip in (0x01, 0x80):
            tampered = bytearray(raw)
            tampered[i] ^= flip
            assert reason(c, _token(bytes(tampered))) in {"signature", "malformed", "other_model"}
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for i, char in enumerate(token):
        other = alphabet[(alphabet.index(char) + 1) % 64]
        assert reason(c, token[:i] + other + token[i + 1 :]) != ""
    # Non-canonical spellings of the same bytes are not the token either.
    for bad in (token + "=", " " + token, token[:10] + "\n" + token[10:]):
        assert reason(c, bad) == "malformed"
    assert reason(c, token + "A") in {"signature", "malformed"}


def test_wrong_key_and_other_model() -> None:
    (token,) = codec().issue("classification", [1])
    assert reason(codec(key=b"another key of 32 bytes........."), token) == "signature"
    assert reason(codec(model="fraud"), token) == "other_model"
    # Another revision or variant with the same key verifies: that is the point.
    assert codec(revision="2", variant="fp16").verify(token, 3600).revision == "3f2a9c01bd"


def test_expired_and_future_tokens() -> None:
    c = codec()
    (token,) = c.issue("classification", [1])
    assert c.verify(token, 3600, NOW + 3600).value == 1
    assert reason(c, token, 3600, NOW + 3601) == "expired"
    assert reason(c, token, 3600, NOW - 3600) == "future"


@pytest.mark.parametrize(
    "token",
    ["", "A", "AQ", "!!!!", "a" * (MAX_TOKEN_CHARS + 1), _token(b"\x02" + bytes(40))],
)
def test_malformed_and_oversize(token: str) -> None:
    assert reason(codec(), token) in {"malformed", "other_model"}


def test_names_over_255_bytes_and_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="revision"):
        codec(revision="r" * 256)
    with pytest.raises(ValueError, match="16 bytes"):
        codec(key=b"short")


def test_key_file(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"\x00" * 15)
    with pytest.raises(KeyFileError, match="--feedback-key-file"):
        read_key(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        read_key(tmp_path / "absent")
    path.write_bytes(b"\x00\n" * 8)  # raw bytes: nothing is stripped
    assert read_key(path) == b"\x00\n" * 8


def test_cli_refuses_a_short_key_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, key = tmp_path / "m.onnx", tmp_path / "key"
    model.write_bytes(b"")
    key.write_bytes(b"tiny")
    assert cli.main(["--model", str(model), "--name", "m", "--feedback-key-file", str(key)]) == 2
    assert "--feedback-key-file" in capsys.readouterr().err
    args = ["--model", str(model), "--name", "m", "--feedback-key-file", str(key)]
    assert cli.main([*args, "--feedback-retention-s", "0"]) == 2
    assert "--feedback-retention-s" in capsys.readouterr().err


# --- labels with tokens ------------------------------------------------------------------


def _sample(metrics: RuntimeMetrics, name: str, revision: str, variant: str = "fp32") -> float:
    value = metrics.registry.get_sample_value(
        name, {"model": "iris", "revision": revision, "variant": variant}
    )
    return -1.0 if value is None else value


def _pod(revision: str = "1", clock: Clock | None = None) -> tuple[RuntimeMetrics, TokenLedger]:
    metrics = RuntimeMetrics("iris", revision, "fp32")
    c = TokenCodec(KEY, "iris", revision, "fp32", clock=clock or (lambda: NOW))
    return metrics, TokenLedger(c, retention_s=3600, max_seen=100)


def _apply(metrics: RuntimeMetrics, ledger: TokenLedger, body: object) -> dict[str, object]:
    log = PredictionLog(metrics, max_entries=10, retention_s=60)
    return apply_feedback(log, metrics, parse_feedback(body), ledger).as_dict()


def test_labels_count_against_the_revision_in_the_token() -> None:
    _, canary = _pod("2")
    tokens = canary.codec.issue("classification", [1, 0, 2])
    metrics, ledger = _pod("1")
    body = [{"token": t, "label": label} for t, label in zip(tokens, [1, 0, 0], strict=True)]
    assert _apply(metrics, ledger, body) == {
        "matched": 3,
        "unknown": 0,
        "invalid": 0,
        "rejected": [],
    }
    assert _sample(metrics, "modelship_feedback_predictions_total", "2") == 3
    assert _sample(metrics, "modelship_feedback_correct_total", "2") == 2
    assert _sample(metrics, "modelship_feedback_predictions_total", "1") == 0  # own, untouched


def test_regression_tokens_add_absolute_and_squared_error() -> None:
    metrics, ledger = _pod()
    tokens = ledger.codec.issue("regression", [6.0, 1.0])
    _apply(metrics, ledger, [{"token": tokens[0], "label": 5}, {"token": tokens[1], "label": 2.5}])
    # |6 - 5| + |1 - 2.5| = 2.5; 1^2 + 1.5^2 = 3.25
    assert _sample(metrics, "modelship_feedback_absolute_error_total", "1") == 2.5
    assert _sample(metrics, "modelship_feedback_squared_error_total", "1") == 3.25
    bad = ledger.codec.issue("regression", [1.0])[0]
    assert _apply(metrics, ledger, {"token": bad, "label": "x"})["rejected"] == [
        {"index": 0, "reason": "label"}
    ]


def test_replays_expired_forged_and_mixed_with_ids() -> None:
    clock = Clock()
    metrics, ledger = _pod(clock=clock)
    good, other = ledger.codec.issue("classification", [1, 2])
    forged = _token(bytes(len(_raw(good))))
    answer = _apply(
        metrics,
        ledger,
        [
            {"token": good, "label": 1},
            {"token": good, "label": 1},
            {"id": "never-seen", "label": 1},
            {"token": forged, "label": 1},
            {"token": "not a token", "label": 1},
            {"token": other, "label": [2, 2]},
        ],
    )
    assert answer == {
        "matched": 1,
        "unknown": 1,
        "invalid": 4,
        "rejected": [
            {"index": 1, "reason": "replayed"},
            {"index": 3, "reason": "malformed"},
            {"index": 4, "reason": "malformed"},
            {"index": 5, "reason": "label"},
        ],
    }
    assert _sample(metrics, "modelship_feedback_invalid_total", "1") == 4
    clock.now += 3601
    assert _apply(metrics, ledger, {"token": other, "label": 2})["rejected"] == [
        {"index": 0, "reason": "expired"}
    ]


def test_a_label_rejected_for_its_shape_can_be_sent_again() -> None:
    metrics, ledger = _pod()
    (token,) = ledger.codec.issue("classification", [1])
    assert _apply(metrics, ledger, {"token": token, "label": None})["invalid"] == 1
    assert _apply(metrics, ledger, {"token": token, "label": 1})["matched"] == 1


def test_replay_memory_is_bounded() -> None:
    metrics, _ = _pod()
    c = TokenCodec(KEY, "iris", "1", "fp32", clock=lambda: NOW)
    ledger = TokenLedger(c, retention_s=3600, max_seen=5)
    tokens = c.issue("classification", list(range(8)))
    _apply(metrics, ledger, [{"token": t, "label": 0} for t in tokens])
    assert len(ledger.seen) == 5
    # The oldest were forgotten: replaying them here is not detected (documented).
    assert _apply(metrics, ledger, {"token": tokens[0], "label": 0})["matched"] == 1
    assert _apply(metrics, ledger, {"token": tokens[7], "label": 0})["invalid"] == 1


def test_label_sets_are_capped_and_rejections_listed_up_to_ten() -> None:
    metrics, ledger = _pod()
    body = []
    for i in range(MAX_ACCURACY_SERIES + 12):
        issuer = TokenCodec(KEY, "iris", f"r{i}", "fp32", clock=lambda: NOW)
        body.append({"token": issuer.issue("classification", [0])[0], "label": 0})
    answer = _apply(metrics, ledger, body)
    # The pod's own (revision 1) series is one of the MAX_ACCURACY_SERIES.
    assert answer["matched"] == MAX_ACCURACY_SERIES - 1
    assert answer["invalid"] == 13
    rejected = answer["rejected"]
    assert isinstance(rejected, list) and len(rejected) == MAX_REJECTED_SHOWN
    assert rejected[0] == {"index": MAX_ACCURACY_SERIES - 1, "reason": "label_sets"}
    assert len(metrics.accuracy) == MAX_ACCURACY_SERIES


def test_tokens_without_a_key_are_invalid_not_errors() -> None:
    metrics = RuntimeMetrics("iris", "1", "fp32")
    log = PredictionLog(metrics, max_entries=10, retention_s=60)
    (token,) = codec().issue("classification", [1])
    result = apply_feedback(log, metrics, parse_feedback({"token": token, "label": 1}))
    assert result.rejected == [{"index": 0, "reason": "tokens_off"}]
