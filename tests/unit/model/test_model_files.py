"""Model files and numerics that need no loaded model: clear errors, stable log-softmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream_rec.errors import ModelError
from stream_rec.model.files import resolve_model_path
from stream_rec.model.llama import _log_softmax, _row_logsumexp
from stream_rec.model.loading import verify_model


def test_missing_model_path_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found: set STREAM_REC_MODEL_PATH"):
        resolve_model_path(str(tmp_path / "nope.gguf"))


def test_non_gguf_file_is_rejected_before_loading(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelError, match="is not a GGUF file"):
        verify_model(bogus, measure=False)


def test_row_logsumexp_matches_a_float64_reference() -> None:
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(70, 5000)) * 8).astype(np.float32)
    wide = logits.astype(np.float64)
    peak = wide.max(axis=1, keepdims=True)
    expected = (peak + np.log(np.exp(wide - peak).sum(axis=1, keepdims=True)))[:, 0]
    np.testing.assert_allclose(_row_logsumexp(logits, block=32), expected, rtol=1e-5)
    np.testing.assert_allclose(np.exp(_log_softmax(logits)).sum(axis=1), 1.0, rtol=1e-4)
