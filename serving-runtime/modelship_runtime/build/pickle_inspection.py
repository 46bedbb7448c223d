"""Pickles (and joblib files) inspected before anything loads them: every global they would
import is checked against an allow-list of what scikit-learn, XGBoost and LightGBM models are
made of, so a file whose reduce would call `os.system` is refused by name and never runs.

The inspection runs the pickle machine with inert stand-ins: `find_class` never imports, and a
stand-in that is called or built only records its arguments, so nothing in the file executes.
joblib writes numpy arrays as raw bytes between pickle opcodes; those are skipped by the size
their wrapper declares (or, for object arrays, inspected as the nested pickle they are).

This narrows what a pickle can do; it is not a sandbox. Safe formats (ONNX, XGBoost JSON/UBJ,
LightGBM text, skops) need no inspection and are preferred (docs/build.md).
"""

from __future__ import annotations

import contextlib
import io
import pickle
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, ClassVar

import numpy as np
from joblib.compressor import _COMPRESSORS  # type: ignore[import-untyped]
from joblib.numpy_pickle_utils import _detect_compressor  # type: ignore[import-untyped]

from modelship_runtime.build.errors import ConversionError, UnsafeFormatError

# Libraries whose classes make up the models we convert. Their test helpers are left out: a test
# utility that runs a string is exactly the gadget an attacker looks for.
_ALLOWED_PACKAGES = ("sklearn", "xgboost", "lightgbm", "scipy.sparse", "scipy.stats")
_NEVER_IN = (".tests", "._testing", ".testing", ".conftest")

# Exact globals of the standard library and numpy that pickled models use.
_ALLOWED_GLOBALS = frozenset(
    {
        ("builtins", name)
        for name in (
            "object",
            "dict",
            "list",
            "tuple",
            "set",
            "frozenset",
            "bytearray",
            "bytes",
            "int",
            "float",
            "complex",
            "str",
            "bool",
            "slice",
            "range",
        )
    }
    | {
        ("copyreg", "_reconstructor"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("functools", "partial"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("numpy.random._generator", "Generator"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random", "RandomState"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("joblib.numpy_pickle_utils", "_reconstruct"),
    }
    | {
        ("numpy", name)
        for name in (
            "float16",
            "float32",
            "float64",
            "int8",
            "int16",
            "int32",
            "int64",
            "uint8",
            "uint16",
            "uint32",
            "uint64",
            "bool_",
            "str_",
            "bytes_",
            "object_",
        )
    }
)

_JOBLIB_ARRAY = ("joblib.numpy_pickle", "NumpyArrayWrapper")


def allowed(module: str, name: str) -> bool:
    """Whether a pickle may import `module.name`."""
    if (module, name) in _ALLOWED_GLOBALS:
        return True
    # A dotted name walks attributes (protocol 4): `sklearn.base` + `os.system` would reach
    # os.system through a module sklearn imports. Dunders likewise, except Cython's own
    # unpickling helpers of the allowed packages' classes.
    if "." in name or (name.startswith("__") and not name.startswith("__pyx_unpickle_")):
        return False
    if any(part in f".{module}" for part in _NEVER_IN):
        return False
    return any(module == p or module.startswith(p + ".") for p in _ALLOWED_PACKAGES)


class _Inert:
    """What a global stands for during inspection: calling it or building it records the
    arguments and runs nothing."""

    origin: ClassVar[tuple[str, str]] = ("", "")
    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> _Inert:
        made = object.__new__(cls)
        made.__dict__["args"] = args
        made.__dict__["state"] = None
        return made

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    # Containers are filled by APPENDS, SETITEMS and ADDITEMS: accepted, and dropped.
    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _stand_in(module: str, name: str) -> type[_Inert]:
    return type(name, (_Inert,), {"origin": (module, name)})


class PickleRefused(UnsafeFormatError):
    """The file would import something outside the allow-list (or cannot be inspected)."""


class _Inspector(pickle._Unpickler):  # the pure-Python machine, whose opcodes we can extend
    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: IO[bytes], found: list[str]) -> None:
        super().__init__(file)
        self.file_handle = file
        self.found = found

    def find_class(self, module: str, name: str) -> Any:
        self.found.append(f"{module}.{name}")
        if not allowed(module, name):
            raise PickleRefused(
                f"the pickle imports {module}.{name}, which no scikit-learn, XGBoost or "
                "LightGBM model needs; refused before loading (the unsafe-format opt-in does not "
                "cover it; docs/build.md 'Pickles')"
            )
        return _stand_in(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise PickleRefused("the pickle refers to persistent objects, which are not inspected")

    def load_build(self) -> None:
        state = self.stack[-1]  # type: ignore[attr-defined]
        inst = self.stack[-2]  # type: ignore[attr-defined]
        super().load_build()  # type: ignore[misc]
        if isinstance(inst, _Inert) and inst.origin == _JOBLIB_ARRAY:
            self._skip_joblib_array(state)

    dispatch[pickle.BUILD[0]] = load_build

    def _skip_joblib_array(self, state: Any) -> None:
        """Step over the raw bytes joblib wrote after a NumpyArrayWrapper (its read_array)."""
        if not isinstance(state, dict):
            raise PickleRefused("a joblib array wrapper without its shape and dtype")
        shape, dtype = state.get("shape"), state.get("dtype")
        itemsize, has_objects = _dtype_layout(dtype)
        if has_objects:
            _Inspector(self.file_handle, self.found).load()  # a nested pickle of the objects
            return
        count = 1
        for extent in shape if isinstance(shape, tuple) else ():
            count *= int(extent)
        if "numpy_array_alignment_bytes" in state:
            padding = self.file_handle.read(1)
            _skip(self.file_handle, int.from_bytes(padding, "little"))
        _skip(self.file_handle, count * itemsize)


def _dtype_layout(dtype: Any) -> tuple[int, bool]:
    """(itemsize, holds Python objects) of a pickled numpy dtype, without numpy's unpickling:
    a dtype pickles as numpy.dtype(str, align, copy) then its state tuple."""
    if not isinstance(dtype, _Inert) or dtype.origin != ("numpy", "dtype") or not dtype.args:
        raise PickleRefused("a joblib array wrapper whose dtype is not a numpy dtype")
    code = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    if not isinstance(code, str) or len(code) > 8:
        raise PickleRefused(f"a joblib array of an unknown dtype {code!r}")
    if code == "O" or flags & 0x01:  # NPY_ITEM_REFCOUNT: the items are Python objects
        return 0, True
    try:
        itemsize = elsize if elsize > 0 else np.dtype(code).itemsize
    except TypeError as exc:
        raise PickleRefused(f"a joblib array of an unknown dtype {code!r}") from exc
    return itemsize, False


def _skip(handle: IO[bytes], size: int) -> None:
    while size > 0:
        chunk = handle.read(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the file ends inside a joblib array")
        size -= len(chunk)


def _decompressed(raw: io.BufferedReader, kind: str) -> AbstractContextManager[IO[bytes]]:
    """The pickle stream of a file: joblib's compressed files decompressed as joblib would."""
    if kind != "joblib":
        return contextlib.nullcontext(raw)
    compressor = _detect_compressor(raw)  # peeks at the magic bytes
    if compressor == "compat":
        raise PickleRefused("a joblib file older than joblib 0.10; save the model again")
    if compressor in _COMPRESSORS:
        return io.BufferedReader(_COMPRESSORS[compressor].decompressor_file(raw))
    return contextlib.nullcontext(raw)


# What a damaged pickle raises, while inspected or loaded.
CORRUPT = (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError)


def corrupt(exc: Exception) -> ConversionError:
    return ConversionError(f"source pickle is corrupt or truncated ({type(exc).__name__}: {exc})")


def inspect_pickle(path: Path, kind: str) -> list[str]:
    """Every global the file imports, in order; PickleRefused names the first one outside the
    allow-list (or what else no model pickle does), ConversionError a corrupt file. Nothing in
    the file runs."""
    found: list[str] = []
    with path.open("rb") as raw, _decompressed(raw, kind) as stream:
        try:
            _Inspector(stream, found).load()
        except PickleRefused:
            raise
        except CORRUPT as exc:
            raise corrupt(exc) from exc
        except (TypeError, AttributeError, RecursionError) as exc:
            raise PickleRefused(
                f"the pickle does something no plain model pickle does ({type(exc).__name__}: "
                f"{exc}); refused before loading"
            ) from exc
    return found
