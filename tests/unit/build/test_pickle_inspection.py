"""Pickles inspected before loading: what models are made of passes, anything else is refused
by name, and nothing in a refused file runs (even with the unsafe-format opt-in)."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import joblib
import numpy as np
import pytest
from modelship_runtime.build.conversion import convert_model
from modelship_runtime.build.errors import ConversionError
from modelship_runtime.build.pickle_inspection import PickleRefused, allowed, inspect_pickle
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.support.pickles import RunsCommand


def _models() -> dict[str, object]:
    rng = np.random.default_rng(0)
    x = rng.random((120, 4))
    y = (x[:, 0] > 0.5).astype(int)
    return {
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y),
        "forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        # Its estimators are an object array: joblib writes them as a nested pickle.
        "boosting": GradientBoostingRegressor(n_estimators=3, random_state=0).fit(x, x[:, 1]),
    }


@pytest.mark.parametrize("how", ["pickle", "joblib", "zlib", "gzip", "xz", "bz2"])
def test_model_pickles_pass_in_every_form_joblib_writes(tmp_path: Path, how: str) -> None:
    for name, model in _models().items():
        path = tmp_path / f"{name}.{how}"
        if how == "pickle":
            path.write_bytes(pickle.dumps(model, protocol=5))
        else:
            joblib.dump(model, path, compress=None if how == "joblib" else (how, 3))
        found = inspect_pickle(path, "pickle" if how == "pickle" else "joblib")
        assert any(g.startswith("sklearn.") for g in found), found


def test_a_reduce_calling_os_system_is_refused_by_name_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(RunsCommand(marker)))
    # Even with the opt-in that allows pickles at all.
    with pytest.raises(PickleRefused, match=r"imports (posix|os)\.system"):
        convert_model("sklearn", path, signature=None, allow_unsafe=True)
    assert not marker.exists()


def test_an_evil_object_hidden_in_a_joblib_object_array_is_found(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "model.joblib"
    hidden = np.empty(1, dtype=object)
    hidden[0] = RunsCommand(marker)
    joblib.dump({"model": _models()["pipeline"], "extra": hidden}, path)
    with pytest.raises(PickleRefused, match=r"(posix|os)\.system"):
        inspect_pickle(path, "joblib")
    assert not marker.exists()


def _stack_global(module: str, name: str) -> bytes:
    """A protocol-4 pickle that imports module.name and calls it with ('id',)."""

    def unicode(text: str) -> bytes:
        data = text.encode()
        return b"\x8c" + struct.pack("<B", len(data)) + data  # SHORT_BINUNICODE

    return (
        b"\x80\x04"
        + unicode(module)
        + unicode(name)
        + b"\x93"  # STACK_GLOBAL
        + unicode("id")
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE
        + b"."
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        # A dotted name walks attributes: os.system through a module sklearn imports.
        ("sklearn.base", "os.system"),
        # numpy's test helpers run strings.
        ("numpy.testing._private.utils", "runstring"),
        ("sklearn.utils._testing", "assert_run_python_script_without_output"),
        ("sklearn.base", "__builtins__"),
    ],
)
def test_gadgets_are_refused_by_name(tmp_path: Path, module: str, name: str) -> None:
    path = tmp_path / "gadget.pkl"
    path.write_bytes(_stack_global(module, name))
    with pytest.raises(PickleRefused, match=f"imports {module}.{name}"):
        inspect_pickle(path, "pickle")


@pytest.mark.parametrize(
    ("module", "name", "ok"),
    [
        ("sklearn.tree._tree", "Tree", True),
        ("xgboost.core", "Booster", True),
        ("lightgbm.basic", "Booster", True),
        ("numpy._core.multiarray", "_reconstruct", True),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence", True),
        ("numpy", "load", False),
        ("os", "system", False),
        ("sklearnx", "Thing", False),
        ("sklearn.tests.test_base", "T", False),
    ],
)
def test_allow_list(module: str, name: str, ok: bool) -> None:
    assert allowed(module, name) is ok


def test_a_truncated_file_is_corrupt_not_loaded(tmp_path: Path) -> None:
    whole = tmp_path / "whole.joblib"
    joblib.dump(_models()["forest"], whole)
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ConversionError, match="corrupt or truncated"):
        inspect_pickle(cut, "joblib")
